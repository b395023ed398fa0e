"""On which scale each metric is tested: a declared choice per metric, made before looking at any
comparison (issue 21), not chosen per result.

A metric that is positive and skewed over seeds (a distance, a divergence, a relative error) is
tested on its logarithm: its seeds spread multiplicatively (one bad seed is a factor, not an
offset), the log is roughly symmetric where the raw value is not, and a difference of mean logs
is a *ratio* (b / a), which reads the same for a 0.0006 JS as for a 0.02 one. A classifier AUC is
bounded below by ½ (indistinguishable), so its distance from ½ is the positive quantity.
A log-likelihood is already a log: NLL differences are log-likelihood ratios per event, tested raw.

=============================================  ===============  ======================================
metric                                         scale            effect reported
=============================================  ===============  ======================================
``js/*`` (Jensen–Shannon, base 2)              log              ratio b / a
``w1/*`` (1-d Wasserstein)                     log              ratio b / a
``auc``, ``auc_bdt``, ``auc_bdt_derived``      log(AUC − ½)     ratio of (AUC − ½), b / a
``fpd`` (Fréchet physics distance)             log              ratio b / a
``kpd`` (kernel physics distance)              log              ratio b / a
``recon_*``, ``reading/*`` (round-trip error)  log              ratio b / a
``fold_fraction``                              log              ratio b / a
``peak_share_error/*``                         log              ratio b / a
``density_normalisation`` (Z)                  log              ratio b / a
``train_seconds``                              log              ratio b / a
``nll``, ``nll_normalised``                    raw              difference b − a (nats / event)
``log_z``, ``peak_excess/*``                   raw (signed)     difference b − a
any other metric                               raw              difference b − a
=============================================  ===============  ======================================

A log scale needs every value above its floor (0, or ½ for an AUC). The unbiased KPD can be
negative for a model indistinguishable from the truth, an AUC can fall below ½ by chance, a fold
fraction can be 0: then that comparison falls back to the raw scale and its ``transform`` field
says so ("raw (log needs values > 0)"), so the reader sees the scale actually used.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["LOG", "LOG_AUC", "RAW", "RULES", "rule_for", "apply", "effect_from_difference", "effect_kind",
           "margin_on_scale"]

LOG = "log"
LOG_AUC = "log(AUC - 1/2)"
RAW = "raw"

#: (exact name or prefix ending in "/" or "_", scale), first match wins; see the module docstring.
RULES: tuple[tuple[str, str], ...] = (
    ("auc", LOG_AUC), ("auc_bdt", LOG_AUC), ("auc_bdt_derived", LOG_AUC),
    ("nll", RAW), ("nll_normalised", RAW), ("log_z", RAW),
    ("fpd", LOG), ("kpd", LOG), ("fold_fraction", LOG), ("density_normalisation", LOG), ("train_seconds", LOG),
    ("js/", LOG), ("w1/", LOG), ("recon_", LOG), ("reading/", LOG), ("peak_share_error/", LOG),
    ("peak_excess/", RAW),
)


def rule_for(metric: str) -> str:
    """The declared scale of ``metric`` (:data:`RULES`; raw for a metric not listed)."""
    for name, scale in RULES:
        if metric == name or (name.endswith(("/", "_")) and metric.startswith(name)):
            return scale
    return RAW


def apply(metric: str, *samples: Sequence[float]) -> tuple[list[np.ndarray], str]:
    """``samples`` on ``metric``'s declared scale, and the name of the scale actually used: the
    declared one, or ``"raw (log needs values > 0)"`` / ``"raw (log needs AUC > 1/2)"`` when some
    value is at or below the log's floor (the same scale for every sample, so they stay comparable)."""
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    scale = rule_for(metric)
    if scale == RAW:
        return arrays, RAW
    floor = 0.5 if scale == LOG_AUC else 0.0
    if any(np.any(~(a > floor)) for a in arrays):
        return arrays, f"raw (log needs {'AUC > 1/2' if scale == LOG_AUC else 'values > 0'})"
    return [np.log(a - floor) for a in arrays], scale


def effect_kind(scale: str) -> str:
    """How an effect on ``scale`` is reported: a ratio b / a on a log scale, else b − a."""
    return "ratio b/a" if scale in (LOG, LOG_AUC) else "difference b-a"


def effect_from_difference(diff: float, scale: str) -> float:
    """A difference of means on ``scale`` as the reported effect: exp(diff) (a ratio of geometric
    means; of AUC − ½ for an AUC) on a log scale, the difference itself on a raw one."""
    if scale in (LOG, LOG_AUC):
        return math.exp(diff) if math.isfinite(diff) else float("nan")
    return float(diff)


def margin_on_scale(margin: float, scale: str) -> float:
    """An equivalence margin as a bound on the difference of means on ``scale``: a ratio bound r > 1
    (equivalent when 1/r < b/a < r) is ln r on a log scale; on a raw scale the margin is the
    largest difference |b − a| still called equivalent."""
    if scale in (LOG, LOG_AUC):
        if not margin > 1:
            raise ValueError(f"an equivalence margin on a log scale is a ratio > 1, got {margin!r}")
        return math.log(margin)
    if not margin > 0:
        raise ValueError(f"an equivalence margin on the raw scale is a difference > 0, got {margin!r}")
    return float(margin)

