"""How many seeds an undecided statement would need (statsmodels' power of the t-test).

The assumption, stated wherever the number is shown: the effect and the seed spread observed now
(on the test's scale, :mod:`.transforms`) are the true ones; both ensembles get the same number of
seeds; the test is the primary one (Welch / paired t) at the strictest Holm level α / m (m: the
hypotheses of the notebook's family, so the estimate holds whatever the other p-values are); power
0.8. An equivalence statement needs its confidence interval inside the margin: its power is that of
the one-sided test against the nearer margin, with effect (margin − |observed difference|) / spread.
With the effect observed on 3 seeds the estimate is itself uncertain (a factor 2 either way is
common); it says which statements are within reach, not an exact budget.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["POWER", "MAX_SEEDS", "seeds_needed"]

#: Power the estimate asks for.
POWER = 0.8
#: Beyond this many seeds per ensemble the estimate reports "more than MAX_SEEDS seeds".
MAX_SEEDS = 1000


def seeds_needed(b: np.ndarray, a: np.ndarray, *, alpha: float, paired: bool = False,
                 equivalence_margin: float | None = None, power: float = POWER) -> tuple[int | None, str]:
    """``(seeds, why)``: seeds per ensemble (pairs, if ``paired``) for the primary test at level
    ``alpha`` to reach ``power`` against the observed effect, or ``(None, why)`` when there is no
    estimate: ``why`` is "1 seed" or "no seed spread" (nothing to estimate from), "no difference
    observed" (a zero effect), "observed difference outside the margin" (equivalence out of
    reach), or "more than 1000 seeds". ``b``, ``a``: the samples on the test's scale;
    ``equivalence_margin``: the margin on that scale for an equivalence statement."""
    from statsmodels.stats.power import TTestIndPower, TTestPower

    if min(a.size, b.size) < 2:
        return None, "1 seed"
    if paired:
        d = b - a
        diff, sd = float(d.mean()), float(d.std(ddof=1))
    else:
        diff = float(b.mean() - a.mean())
        sd = math.sqrt(0.5 * (float(a.var(ddof=1)) + float(b.var(ddof=1))))  # pooled, equal seeds per side
    if not sd > 0:
        return None, "no seed spread"
    # A two-sided test at level alpha rejects in the observed direction with the power of the
    # one-sided test at alpha / 2 (its other tail adds under alpha / 2 of wrong-sign rejections,
    # which do not count); statsmodels' two-sided power returns NaN for large effects at small alpha.
    if equivalence_margin is None:
        effect, level = abs(diff) / sd, alpha / 2
    else:
        effect, level = (equivalence_margin - abs(diff)) / sd, alpha
    if not effect > 0:
        return None, "no difference observed" if equivalence_margin is None else "observed difference outside the margin"
    # The power at every seed count from 2 to MAX_SEEDS and the first that reaches the target (a
    # scan: statsmodels' root finder fails to converge for very large or very small effects).
    counts = np.arange(2, MAX_SEEDS + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            achieved = TTestPower().power(effect_size=effect, nobs=counts, alpha=level, alternative="larger")
        else:
            achieved = TTestIndPower().power(effect_size=effect, nobs1=counts, alpha=level, ratio=1.0,
                                             alternative="larger")
    reached = np.asarray(achieved) >= power
    if not reached.any():
        return None, f"more than {MAX_SEEDS} seeds"
    return int(counts[np.argmax(reached)]), ""
