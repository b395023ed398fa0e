"""The boosted-tree classifier two-sample test: scikit-learn's ``HistGradientBoostingClassifier``
learns to tell generated from true events, and its cross-validated ROC AUC is 0.5 when the two
samples are indistinguishable to it and 1 when they separate perfectly.

Gradient-boosted trees are the field's standard classifier for this test: they need no input scaling
(a tree is invariant to monotone maps of each input), they find narrow features (a mass peak, an
edge) that a small MLP smooths over, and they train in seconds. The MLP of
:mod:`qinn_lib.evaluation.two_sample` stays as a second opinion.

Two input sets (``derived``): the five raw features, or the five plus M_ll and ΔR
(:func:`qinn_lib.evaluation.two_sample.classifier_inputs`), the observables the paper singles out:
a model can get every feature's marginal right and still miss M_ll, which the trees then see
directly instead of having to learn ``2 pT1 pT2 (cosh Δη − cos Δφ)``.

The AUC and its error: stratified ``n_folds``-fold cross-validation (5), each fold's held-out AUC
from a classifier trained on the other folds; the AUC is the mean over the folds and its error the
fold spread, ``std / sqrt(n_folds)`` (ddof = 1). Unlike a Hanley–McNeil error of one held-out set
this contains the training variability; the folds share training events, so it is an approximate
error (no unbiased estimator of the variance of a cross-validated score exists: Bengio & Grandvalet
2004), and with 5 folds it has 4 degrees of freedom (a test against 0.5 takes Student's t).

Cost (measured on the paper profile's shipped models, 50 000 test events, one OpenMP thread, idle
machine; raw / with M_ll and ΔR): on 10 000 events per class 0.2-1.1 s / 0.3-1.4 s, on 20 000
0.5-1.5 s / 0.6-1.7 s, on 50 000 1.0-3.0 s / 1.6-3.3 s (QINN slowest, 16k INN fastest:
scikit-learn's early stopping, on above 10 000 training events, stops sooner when there is less to
learn). The default :data:`BDT_MAX_EVENTS` is 20 000 per class, the MLP's event count, so the two
opinions see the same data and one model's two AUCs take about 3 s. The AUC grows with the event
count (a classifier learns more from more events; raw, 10k / 20k / 50k: QINN 0.798 / 0.807 / 0.811,
2k INN 0.629 / 0.643 / 0.661, 16k INN 0.510 / 0.513 / 0.522, each ±0.001-0.006), so compare AUCs at
one count only. Run on one OpenMP thread by default: beside two training workers, two threads took
50-300 s for fits that take 1-3 s on one (:func:`qinn_lib.threads.native_threads`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from qinn_lib.evaluation.two_sample import classifier_inputs
from qinn_lib.events.observables import check_features
from qinn_lib.threads import native_threads

__all__ = ["BDT_FOLDS", "BDT_MAX_EVENTS", "bdt_auc"]

#: Default events per class of :func:`bdt_auc` (module docstring: the MLP's count, about 3 s).
BDT_MAX_EVENTS = 20_000
#: Default cross-validation folds of :func:`bdt_auc` (module docstring; the quick profile uses fewer:
#: :func:`qinn_lib.evaluation.evaluate.bdt_folds_for`).
BDT_FOLDS = 5


def _inputs(features: np.ndarray, derived: bool) -> np.ndarray:
    x = classifier_inputs(features) if derived else features
    return x[np.all(np.isfinite(x), axis=1)]  # e.g. M_ll overflowing for extreme generated eta


def bdt_auc(truth: Any, generated: Any, *, seed: int, derived: bool = False, max_events: int = BDT_MAX_EVENTS,
            n_folds: int = BDT_FOLDS, threads: int | None = 1) -> dict[str, Any]:
    """Cross-validated ROC AUC of gradient-boosted trees trained to tell ``generated`` (label 1) from
    ``truth`` (label 0), both ``(N, 5)`` physical features (module docstring).

    Each class is subsampled to ``n = min(len(truth), len(generated), max_events)`` events (balanced);
    non-finite generated rows, and rows whose M_ll or ΔR overflow (``derived``), are dropped first.
    ``seed`` fixes the subsamples, the folds and the trees (scikit-learn's ``random_state``: the
    early-stopping split). ``threads``: native threads for the fits (``None``: leave them alone).

    Returns ``{"auc", "auc_err" (fold spread / sqrt(n_folds)), "fold_aucs", "n_events" (per class),
    "n_folds", "derived"}``.
    """
    for name, v, lo in (("max_events", max_events, 2), ("n_folds", n_folds, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"bdt_auc: {name} must be an integer >= {lo}, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"bdt_auc: seed must be an integer, got {seed!r}")
    t = check_features(truth, "bdt_auc(truth)")
    g = np.asarray(generated, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != t.shape[1]:
        raise ValueError(f"bdt_auc(generated): expected shape (N, {t.shape[1]}), got {g.shape}")
    g = g[np.all(np.isfinite(g), axis=1)]
    xt_all = _inputs(t, derived)
    xg_all = _inputs(g, derived) if len(g) else np.empty((0, xt_all.shape[1]))
    n = min(len(xt_all), len(xg_all), int(max_events))
    if n < 5 * n_folds:
        raise ValueError(f"bdt_auc: too few finite events per class ({n}) for {n_folds} folds")

    rng = np.random.default_rng(int(seed))
    xt = xt_all[rng.permutation(len(xt_all))[:n]]
    xg = xg_all[rng.permutation(len(xg_all))[:n]]
    x = np.concatenate([xt, xg])
    y = np.concatenate([np.zeros(n, dtype=np.int8), np.ones(n, dtype=np.int8)])
    folds = StratifiedKFold(n_splits=int(n_folds), shuffle=True, random_state=int(seed))
    aucs = []
    with native_threads(threads):
        for train, test in folds.split(x, y):
            clf = HistGradientBoostingClassifier(random_state=int(seed)).fit(x[train], y[train])
            aucs.append(float(roc_auc_score(y[test], clf.predict_proba(x[test])[:, 1])))
    a = np.asarray(aucs)
    return {"auc": float(a.mean()), "auc_err": float(a.std(ddof=1) / math.sqrt(a.size)), "fold_aucs": aucs,
            "n_events": int(n), "n_folds": int(n_folds), "derived": bool(derived)}
