"""The classifier two-sample test (notebooks 04-07): a small MLP learns to tell generated from true
events, and its held-out ROC AUC is 0.5 when the two samples are indistinguishable to it and 1 when
they separate perfectly. Split out of :mod:`qinn_lib.evaluation.evaluate` (which re-exports it): one job per
module."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qinn_lib.evaluation.distances import sample_1d
from qinn_lib.events.observables import check_features, reconstruct
from qinn_lib.threads import torch_threads

__all__ = ["auc_mann_whitney", "auc_standard_error", "classifier_inputs", "classifier_auc"]


def auc_mann_whitney(scores_pos: Any, scores_neg: Any) -> float:
    """ROC AUC = P(score of a positive > score of a negative) + P(tie) / 2, from ranks.

    Mann–Whitney: with R the sum of the (tie-averaged) ranks of the positives in the pooled
    sample, ``AUC = (R - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``.
    """
    from scipy.stats import rankdata


    pos = sample_1d(scores_pos, "scores_pos")
    neg = sample_1d(scores_neg, "scores_neg")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks for ties
    n_pos, n_neg = pos.size, neg.size
    r_pos = ranks[:n_pos].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC estimated from ``n_pos`` and ``n_neg``
    held-out scores: ``Q1 = A/(2-A)``, ``Q2 = 2A²/(1+A)``,
    ``SE² = [A(1-A) + (n_pos-1)(Q1-A²) + (n_neg-1)(Q2-A²)] / (n_pos n_neg)``."""
    a = float(auc)
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    var = (a * (1.0 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return float(math.sqrt(max(var, 0.0)))


def classifier_inputs(features: np.ndarray) -> np.ndarray:
    """The five features plus M_ll and Delta R (the observables the paper singles out), ``(N, 7)``:
    ``M_ll² = 2 pT1 pT2 (cosh Δη − cos Δφ)`` (massless leptons), ``ΔR = √(Δη² + |Δφ|²)``, from
    :func:`qinn_lib.events.observables.reconstruct`."""
    obs = reconstruct(features)
    return np.column_stack([features, obs["m_ll"], obs["delta_r"]])


def classifier_auc(truth: Any, generated: Any, *, seed: int, hidden: int = 64, epochs: int = 20,
                   max_events: int = 20_000, batch_size: int = 512, lr: float = 1e-3,
                   test_fraction: float = 0.3) -> dict[str, float]:
    """Classifier two-sample test: held-out ROC AUC of an MLP trained to tell generated (label 1)
    from true (label 0) events.

    Inputs are the five physical features plus ``M_ll`` and ``Delta R``, standardised with the mean
    and standard deviation of the truth sample. Each class is subsampled to the same size
    ``n = min(len(truth), len(generated), max_events)`` (balanced 50/50), and each class is split
    into ``1 - test_fraction`` for training and ``test_fraction`` for the AUC. The MLP
    (``7 -> hidden -> hidden -> 1``, SiLU) is trained with Adam on the binary cross-entropy for a
    fixed number of ``epochs``. Everything is seeded by ``seed`` (the global torch RNG is left
    untouched). Non-finite generated rows are dropped first.

    Returns
    -------
    ``{"auc", "auc_sem" (Hanley–McNeil, evaluation noise only, not training variability),
    "n_train", "n_test" (events per class)}``. 0.5 = indistinguishable to the classifier.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"classifier_auc: test_fraction must be in (0, 1), got {test_fraction}")
    for name, v in (("hidden", hidden), ("epochs", epochs), ("max_events", max_events), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"classifier_auc: {name} must be a positive integer, got {v!r}")
    t = check_features(truth, "classifier_auc(truth)")
    g = np.asarray(generated, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != t.shape[1]:
        raise ValueError(f"classifier_auc(generated): expected shape (N, {t.shape[1]}), got {g.shape}")
    g = g[np.all(np.isfinite(g), axis=1)]
    xt_all = classifier_inputs(t)
    xg_all = classifier_inputs(g) if len(g) else np.empty((0, t.shape[1] + 2))
    xg_all = xg_all[np.all(np.isfinite(xg_all), axis=1)]  # e.g. M_ll overflowing for extreme eta
    n = min(len(xt_all), len(xg_all), int(max_events))
    n_test = int(round(n * test_fraction))
    n_train = n - n_test
    if n_train < 2 or n_test < 2:
        raise ValueError(f"classifier_auc: too few finite events per class ({n}) for a train/test split")

    rng = np.random.default_rng(seed)
    xt = xt_all[rng.permutation(len(xt_all))[:n]]
    xg = xg_all[rng.permutation(len(xg_all))[:n]]
    mean = xt_all.mean(axis=0)
    std = xt_all.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    xt, xg = (xt - mean) / std, (xg - mean) / std
    # Unphysical generated values can reconstruct to huge numbers; keep them large but within
    # float32 range, where the classifier separates them easily anyway.
    xg = np.clip(xg, -1e6, 1e6)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32)

    x_train = tensor(np.concatenate([xt[:n_train], xg[:n_train]]))
    y_train = torch.cat([torch.zeros(n_train), torch.ones(n_train)])
    x_test_t, x_test_g = tensor(xt[n_train:]), tensor(xg[n_train:])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))  # weight initialisation only; restored on exit
        net = torch.nn.Sequential(
            torch.nn.Linear(x_train.shape[1], hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, 1),
        )
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    shuffle = torch.Generator().manual_seed(int(seed))
    # One thread: a 7 -> 64 -> 64 -> 1 MLP is far too small to share between cores (qinn_lib.threads;
    # same AUC bit for bit, 27x faster in a kernel beside two training workers, measured).
    with torch_threads(1):
        for _ in range(int(epochs)):
            perm = torch.randperm(len(x_train), generator=shuffle)
            for start in range(0, len(perm), batch_size):
                idx = perm[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(x_train[idx]).squeeze(1), y_train[idx])
                loss.backward()
                opt.step()
        with torch.no_grad():
            s_gen = net(x_test_g).squeeze(1).double().numpy()
            s_true = net(x_test_t).squeeze(1).double().numpy()
    auc = auc_mann_whitney(s_gen, s_true)
    return {"auc": auc, "auc_sem": auc_standard_error(auc, n_test, n_test),
            "n_train": int(n_train), "n_test": int(n_test)}
