"""The tests behind every verdict, as thin wrappers of scipy.stats and statsmodels (no statistics by
hand): each takes two samples already on the metric's scale (:mod:`.transforms`), ``b`` first, so
every difference reads b − a, and returns plain floats (NaN where a test cannot run: fewer than two
seeds on a side, or no spread at all).

- :func:`welch` — the primary test for two independent seed ensembles: Welch's two-sided t-test
  (``scipy.stats.ttest_ind(equal_var=False)``), with its t confidence interval of b − a;
- :func:`paired_t` — the primary test for two quantities measured on the same seeds (the same
  trained models): ``scipy.stats.ttest_rel``;
- :func:`permutation` — the robustness check of :func:`welch`: the exact two-sided permutation test
  of the difference of means (``scipy.stats.permutation_test``, every relabelling enumerated while
  there are at most :data:`EXACT_LIMIT`, else that many seeded random ones); it assumes no normality.
  With 3 vs 3 seeds its smallest p is 2/20 = 0.1, which is why 3 seeds decide nothing alone;
- :func:`wilcoxon` — the robustness check of :func:`paired_t`: the exact signed-rank test
  (``scipy.stats.wilcoxon(method="exact")``; with 3 pairs its smallest p is 0.25);
- :func:`bootstrap_difference` — the percentile bootstrap interval of the difference of means over
  seeds (``scipy.stats.bootstrap``, seeded; each ensemble resampled on its own, or the pairs
  together). With 3-5 seeds a bootstrap interval is narrower than the t interval (it cannot see
  the tails the few seeds do not show), so the verdict comes from the test, not from the interval;
- :func:`bootstrap_mean` — the same interval for one ensemble's mean (the figures' error bars);
- :func:`tost` — equivalence: two one-sided tests against ``±margin`` (statsmodels'
  ``ttost_ind(usevar="unequal")`` / ``ttost_paired``); a small p shows the difference is inside the
  margin, which a large p of :func:`welch` never does.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import stats

__all__ = ["EXACT_LIMIT", "N_BOOTSTRAP", "welch", "paired_t", "holm", "permutation", "wilcoxon", "bootstrap_difference",
           "bootstrap_mean", "tost"]

#: Largest number of relabellings the permutation test enumerates exactly (6 vs 6 seeds: 924).
EXACT_LIMIT = 100_000
#: Bootstrap resamples of every interval.
N_BOOTSTRAP = 9999

_NAN = float("nan")


def _spread(*samples: np.ndarray) -> bool:
    """Whether the samples vary at all (a test of a difference needs some seed spread)."""
    return any(np.ptp(s) > 0 for s in samples if s.size)


def welch(b: np.ndarray, a: np.ndarray) -> dict[str, Any]:
    """Welch's two-sided t-test of mean(b) = mean(a): ``statistic`` t, ``df``, ``p`` and the 95 %
    t interval ``ci_t`` of mean(b) − mean(a). NaN with fewer than 2 values on a side or no spread."""
    if min(a.size, b.size) < 2 or not _spread(a, b):
        return {"statistic": _NAN, "df": _NAN, "p": _NAN, "ci_t": [_NAN, _NAN]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nearly equal values (an AUC at 1): t is still defined
        res = stats.ttest_ind(b, a, equal_var=False)
        ci = res.confidence_interval(0.95)
    return {"statistic": float(res.statistic), "df": float(res.df), "p": float(res.pvalue),
            "ci_t": [float(ci.low), float(ci.high)]}


def paired_t(b: np.ndarray, a: np.ndarray) -> dict[str, Any]:
    """The paired two-sided t-test of mean(b − a) = 0 over the pairs (same seeds), as :func:`welch`."""
    if a.size != b.size:
        raise ValueError(f"paired_t: the samples must pair up, got {b.size} and {a.size} values")
    if a.size < 2 or not _spread(b - a):
        return {"statistic": _NAN, "df": _NAN, "p": _NAN, "ci_t": [_NAN, _NAN]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_rel(b, a)
        ci = res.confidence_interval(0.95)
    return {"statistic": float(res.statistic), "df": float(res.df), "p": float(res.pvalue),
            "ci_t": [float(ci.low), float(ci.high)]}


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def permutation(b: np.ndarray, a: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """The two-sided permutation test of the difference of means: ``p``, ``n_permutations`` and
    ``exact`` (every relabelling enumerated). NaN with fewer than 2 values on a side."""
    if min(a.size, b.size) < 2:
        return {"p": _NAN, "n_permutations": 0, "exact": False}
    n_labellings = math.comb(a.size + b.size, a.size)
    exact = n_labellings <= EXACT_LIMIT
    res = stats.permutation_test((b, a), _mean_difference, permutation_type="independent", vectorized=True,
                                 n_resamples=np.inf if exact else EXACT_LIMIT, alternative="two-sided",
                                 rng=np.random.default_rng(seed))
    return {"p": float(res.pvalue), "n_permutations": int(n_labellings if exact else EXACT_LIMIT), "exact": exact}


def wilcoxon(b: np.ndarray, a: np.ndarray) -> dict[str, Any]:
    """The exact two-sided Wilcoxon signed-rank test of the pairs' differences b − a: ``p``.
    NaN with fewer than 2 pairs or no difference at all."""
    d = b - a
    if d.size < 2 or not np.any(d != 0):
        return {"p": _NAN}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy falls back from "exact" when pairs tie; the p stays valid
        res = stats.wilcoxon(d, method="exact")
    return {"p": float(res.pvalue)}


def bootstrap_difference(b: np.ndarray, a: np.ndarray, *, paired: bool = False, seed: int = 0,
                         confidence: float = 0.95) -> list[float]:
    """The percentile bootstrap interval ``[low, high]`` of mean(b) − mean(a) over seeds (seeded;
    :data:`N_BOOTSTRAP` resamples). ``[NaN, NaN]`` with fewer than 2 values on a side."""
    if min(a.size, b.size) < 2:
        return [_NAN, _NAN]
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all resamples equal (no spread): the interval is that one value
        if paired:
            res = stats.bootstrap((b - a,), np.mean, vectorized=True, n_resamples=N_BOOTSTRAP,
                                  method="percentile", confidence_level=confidence, rng=rng)
        else:
            res = stats.bootstrap((b, a), _mean_difference, vectorized=True, n_resamples=N_BOOTSTRAP,
                                  method="percentile", confidence_level=confidence, rng=rng)
    ci = res.confidence_interval
    return [float(ci.low), float(ci.high)]


def bootstrap_mean(values: np.ndarray, *, seed: int = 0, confidence: float = 0.95) -> list[float]:
    """The percentile bootstrap interval ``[low, high]`` of the mean of ``values`` over seeds: it
    lies within [min, max] of the values, so it respects any bound they respect (a fraction stays
    >= 0), unlike mean ± std. One value: ``[v, v]``; none: ``[NaN, NaN]``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        v = float(values[0]) if values.size else _NAN
        return [v, v]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((values,), np.mean, vectorized=True, n_resamples=N_BOOTSTRAP, method="percentile",
                              confidence_level=confidence, rng=np.random.default_rng(seed))
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def tost(b: np.ndarray, a: np.ndarray, margin: float, *, paired: bool = False) -> float:
    """p of the two one-sided tests that −margin < mean(b) − mean(a) < margin (Welch's variance for
    independent samples). NaN with fewer than 2 values on a side or no spread."""
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    if not margin > 0:
        raise ValueError(f"tost: margin must be > 0, got {margin!r}")
    if min(a.size, b.size) < 2 or not (_spread(b - a) if paired else _spread(a, b)):
        return _NAN
    if paired:
        p, _, _ = ttost_paired(b, a, -margin, margin)
    else:
        p, _, _ = ttost_ind(b, a, -margin, margin, usevar="unequal")
    return float(p)


def holm(p_values: Sequence[float], *, alpha: float) -> list[float]:
    """Holm-adjusted p-values (``statsmodels``' ``multipletests``) of the finite ones among
    ``p_values``, in their order; a NaN (a test that could not run) stays NaN and is not counted."""
    from statsmodels.stats.multitest import multipletests  # deferred: statsmodels is slow to import

    out = [_NAN] * len(p_values)
    finite = [i for i, p in enumerate(p_values) if math.isfinite(p)]
    if finite:
        _, adjusted, _, _ = multipletests([p_values[i] for i in finite], alpha=alpha, method="holm")
        for i, q in zip(finite, adjusted):
            out[i] = float(q)
    return out
