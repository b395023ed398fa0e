""""As good as exact simulation", decided by tests against a stated margin (issue 21).

A device result is *as good as* exact simulation when a two one-sided test (TOST) shows that it
lies within a declared margin of the exact value, and *not as good* when a two-sided test shows a
difference that lies outside the margin; anything else is *undecided*. Nothing is called equal
because a difference was not found.

- **Margins**, declared before looking at any result, on each metric's tested scale
  (:mod:`qinn_lib.evaluation.statistics.transforms`): a ratio of :data:`RATIO_MARGIN` either way for
  every positive metric tested on its logarithm (JS, W1, FPD, KPD, the reconstruction deviation;
  AUC − ½ for the AUCs), i.e. "within 25 % of exact simulation's value"; :data:`NLL_MARGIN` nats per
  event for the test NLL (a likelihood ratio of e^0.05 ≈ 1.05 per event).
- **Pairing.** Every device is evaluated on the same latent sample and classifier per evaluation
  seed and on the same test events (:mod:`qinn_lib.hardware.sweeps`), so the tests are paired: over
  evaluation seeds for metrics of a generated sample, over test events for the per-event averages
  (reconstruction deviation, NLL; a device with shots contributes each event's mean over seeds).
  ``statsmodels``' ``ttost_paired`` and ``scipy.stats.ttest_rel`` through
  :mod:`qinn_lib.evaluation.statistics.hypothesis_tests`.
- **Level.** A threshold ("from N = 10⁴ on", "up to p = 10⁻⁴") needs every metric of its group to
  pass (an intersection–union test: each at the level, no correction needed within) at its point and
  at every more favourable one (a fixed-sequence test: no correction along the scan). Notebook 07
  states :data:`STATEMENTS_PER_AXIS` thresholds per scan axis; each point test runs at α divided by
  their number (Bonferroni over the notebook's threshold statements: Holm's first, most
  conservative, step, used because the thresholds are chosen by the scan).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from qinn_lib.evaluation.statistics import ALPHA, transforms
from qinn_lib.evaluation.statistics import hypothesis_tests as ht

__all__ = ["RATIO_MARGIN", "NLL_MARGIN", "STATEMENTS_PER_AXIS", "margin", "margin_words", "point_level",
           "paired_tests", "verdict"]

#: Equivalence margin of every log-scale metric: device / exact within (1/1.25, 1.25).
RATIO_MARGIN = 1.25
#: Equivalence margin of the test NLL, nats per event (raw scale).
NLL_MARGIN = 0.05
#: Threshold statements notebook 07 makes per scan axis: the distributions, the inverse and the NLL
#: (``sweeps.GROUPS``), the field's measures together, and each of the four field measures alone.
STATEMENTS_PER_AXIS = 8

_NAN = float("nan")


def margin(metric: str) -> float:
    """The declared margin of ``metric``: a ratio on a log scale, a difference on the raw one."""
    return RATIO_MARGIN if transforms.rule_for(metric) in (transforms.LOG, transforms.LOG_AUC) else NLL_MARGIN


def margin_words(metric: str) -> str:
    scale = transforms.rule_for(metric)
    return f"×{RATIO_MARGIN:g}" if scale in (transforms.LOG, transforms.LOG_AUC) else f"±{NLL_MARGIN:g} nats/event"


def point_level(n_axes: int, alpha: float = ALPHA) -> float:
    """The level of one point test when notebook 07 scans ``n_axes`` axes (see the module docstring)."""
    if n_axes < 1:
        raise ValueError(f"point_level: n_axes must be >= 1, got {n_axes!r}")
    return alpha / (n_axes * STATEMENTS_PER_AXIS)


def paired_tests(exact: Sequence[float], device: Sequence[float], metric: str) -> dict[str, Any]:
    """TOST and the two-sided paired t-test of ``device`` against ``exact`` (paired values: the same
    seeds or the same events) on ``metric``'s declared scale, with its declared margin.

    Returns ``p_tost`` and ``p_diff`` (NaN when undefined: fewer than 2 pairs, no spread of the
    differences, or the log scale fell back to raw, where a ratio margin means nothing), ``diff_t``
    (mean difference on the tested scale), ``margin_t`` (the margin on that scale), ``scale``, ``n``
    and ``nonfinite`` (the device gave a non-finite value: then it is not as good, whatever the rest)."""
    a, b = np.asarray(exact, dtype=np.float64), np.asarray(device, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_tests({metric}): {a.size} exact and {b.size} device values do not pair up")
    keep = np.isfinite(a)
    out: dict[str, Any] = {"n": int(keep.sum()), "nonfinite": bool(not np.all(np.isfinite(b[keep])))}
    if out["nonfinite"]:
        return {**out, "p_tost": _NAN, "p_diff": _NAN, "diff_t": math.inf, "margin_t": _NAN, "scale": ""}
    (ta, tb), scale = transforms.apply(metric, a[keep], b[keep])
    margin_t = (transforms.margin_on_scale(margin(metric), scale) if scale == transforms.rule_for(metric) else _NAN)
    diff_t = float(np.mean(tb - ta)) if ta.size else _NAN
    if ta.size >= 2 and np.ptp(tb - ta) == 0:
        # Every pair differs by exactly the same amount (identical values, e.g. a noise strength too
        # small to change a float): the t statistics are infinite, so both tests are certain, the
        # limit of scipy's (undefined, NaN) answer as the spread of the differences goes to 0.
        inside = abs(diff_t) < margin_t if math.isfinite(margin_t) else None
        p_tost = _NAN if inside is None else 0.0 if inside else 1.0
        return {**out, "p_tost": p_tost, "p_diff": 1.0 if diff_t == 0 else 0.0, "diff_t": diff_t,
                "margin_t": margin_t, "scale": scale}
    p_tost = ht.tost(tb, ta, margin_t, paired=True) if math.isfinite(margin_t) else _NAN
    return {**out, "p_tost": p_tost, "p_diff": ht.paired_t(tb, ta)["p"], "diff_t": diff_t, "margin_t": margin_t,
            "scale": scale}


def verdict(tests: dict[str, Any], level: float) -> bool | None:
    """True: equivalent within the margin (TOST p < ``level``); False: a non-finite device value, or a
    difference (p < ``level``) outside the margin; None: undecided."""
    if tests.get("nonfinite") or tests["diff_t"] == math.inf:
        return False
    if tests["p_tost"] < level:
        return True
    if tests["p_diff"] < level and abs(tests["diff_t"]) > tests["margin_t"]:
        return False
    return None
