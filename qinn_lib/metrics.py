"""How good is a generative model? Distances between generated and true events.

Everything here compares a model's generated events with the held-out *test* split, in physical
units, so QINN and classical-INN numbers are directly comparable.

Definitions (stated once, used everywhere):

- **reconstruction deviation** (the paper's ‖(x̂ − x)/x‖ < 2.1 %, sec. 4.2): per test event the
  relative Euclidean error ‖x̃ − x‖₂ / ‖x‖₂ of the round trip x → z → x̃, with x the features
  scaled to [0, π]; reported as mean and median over events. The vector norm is used because the
  element-wise ratio is undefined where a scaled feature is 0 (every feature's minimum maps to 0).
- **W1** (:func:`wasserstein_1d`): the 1-d earth mover's distance between the two empirical
  distributions of one observable, in that observable's unit (GeV for momenta and masses). Not
  normalised, so compare it between models for the same observable only.
- **JS** (:func:`jensen_shannon`): the Jensen–Shannon divergence, base 2 (so in [0, 1]), of the
  two histograms on common bins: ``bins`` equal-width bins between the 0.1 and 99.9 percentiles of
  the *reference* (true) sample, plus one underflow and one overflow bin, so generated events
  outside the reference range still count (all of them land in the two outer bins).
- **test NLL** (:func:`test_nll`): mean of −log p(x) over the test split, in nats per event, with
  the density taken in *physical* feature units: the model's density of the [0, π]-scaled
  features (eq. 5) times the constant Jacobian of the scaling.
- **classifier AUC** (:func:`classifier_auc`): a classifier two-sample test. A small MLP learns to
  tell generated from true events; its ROC AUC on held-out events is 0.5 when the two samples are
  indistinguishable to it and 1 when they are perfectly separable.

Finite-sample floor: W1 and JS of two finite samples of the *same* distribution are positive
(statistical fluctuations), so only numbers computed with equal sample sizes are comparable.

Results files (:func:`write_results`, :func:`read_results`) store one record per trained model and
seed; :func:`summarise` averages the scalar metrics over seeds and :func:`format_table` prints
the result as a markdown table.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from .atomic import atomic_write_text
from .results import ResultsError

__all__ = [
    "METRIC_OBSERVABLES",
    "RESULTS_SCHEMA_VERSION",
    "reconstruction_deviation",
    "wasserstein_1d",
    "jensen_shannon",
    "histogram_edges",
    "observable_distances",
    "peak_and_tails",
    "test_nll",
    "auc_mann_whitney",
    "auc_standard_error",
    "classifier_auc",
    "evaluate_model",
    "make_record",
    "write_results",
    "read_results",
    "summarise",
    "compare_means",
    "claim_verdict",
    "format_table",
]

#: Observables compared between generated and true events: the five training features, then
#: physics reconstructed from them (keys of :func:`qinn_lib.observables.reconstruct`).
#: In our frame phi_l+ = 0 (see qinn_lib.observables), so px_lp == pt_lp identically and carries
#: no new information; the informative lepton p_x is px_lm = pT_l- cos(Delta phi_ll), which
#: tests the joint (pT_l-, Delta phi) distribution.
METRIC_OBSERVABLES: tuple[str, ...] = (
    "pt_lp", "pt_lm", "dphi_ll", "eta_lp", "eta_lm", "m_ll", "delta_r", "pt_z", "px_lm",
)

#: Default number of regular (equal-width) histogram bins of :func:`jensen_shannon`.
JS_BINS = 50
#: Percentiles of the reference sample that bound the regular bins of :func:`jensen_shannon`.
JS_PERCENTILES = (0.1, 99.9)

#: Half-width of the M_Z peak window of :func:`peak_and_tails`: ±5 GeV, about two widths Γ_Z
#: around the PDG mass (qinn_lib.fits.PDG_MZ).
PEAK_HALF_WIDTH = 5.0

#: Version of the results-file layout written by :func:`write_results`; bump on any change.
RESULTS_SCHEMA_VERSION = 1
_RECORD_KEYS = ("label", "config", "config_fingerprint", "data_fingerprint", "seed", "metrics")


# -- reconstruction ------------------------------------------------------------------------------
def reconstruction_deviation(x, x_rec) -> dict[str, float]:
    """Mean (with its standard error ``sem`` over events), median and 95th percentile of
    ‖x̃ − x‖₂ / ‖x‖₂ over events, plus the per-feature mean absolute error in scaled units (radians)."""
    x = _numpy(x, "x")
    x_rec = _numpy(x_rec, "x_rec")
    if x.shape != x_rec.shape:
        raise ValueError(f"x and x_rec must have the same shape, got {x.shape} and {x_rec.shape}")
    finite = np.all(np.isfinite(x_rec), axis=1)
    rel = np.linalg.norm(x_rec[finite] - x[finite], axis=1) / np.linalg.norm(x[finite], axis=1)
    return {
        "mean": float(rel.mean()),
        "sem": float(rel.std(ddof=1) / math.sqrt(rel.size)) if rel.size > 1 else float("nan"),
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
        "per_feature_mae": np.abs(x_rec[finite] - x[finite]).mean(axis=0).tolist(),
        "n_nonfinite": int((~finite).sum()),
    }


def _numpy(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (events, features), got shape {a.shape}")
    return a


# -- one-dimensional distances -------------------------------------------------------------------
def _sample_1d(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to a float array: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of values, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite (NaN/inf) values of {arr.size}")
    return arr


def wasserstein_1d(a: Any, b: Any) -> float:
    """Earth mover's distance W1 between the empirical distributions of the 1-d samples ``a`` and
    ``b`` (``scipy.stats.wasserstein_distance``), in the unit of the values."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(_sample_1d(a, "a"), _sample_1d(b, "b")))


def histogram_edges(reference: Any, bins: int = JS_BINS) -> np.ndarray:
    """``bins + 1`` equal-width edges from the 0.1 to the 99.9 percentile of ``reference``."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    ref = _sample_1d(reference, "reference")
    lo, hi = np.percentile(ref, JS_PERCENTILES)
    if not hi > lo:
        raise ValueError(
            f"reference: the {JS_PERCENTILES[0]} and {JS_PERCENTILES[1]} percentiles coincide "
            f"({lo!r}); a (nearly) constant observable cannot be histogrammed"
        )
    return np.linspace(lo, hi, int(bins) + 1)


def _binned_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in [underflow, regular bins..., overflow]: index 0 is x < edges[0], index k in
    1..bins is [edges[k-1], edges[k]) (the last regular bin closed on the right, as np.histogram),
    index bins + 1 is x > edges[-1]."""
    k = np.searchsorted(edges, x, side="right")
    k = np.where(x == edges[-1], len(edges) - 1, k)
    return np.bincount(k, minlength=len(edges) + 1).astype(np.float64)


def jensen_shannon(a: Any, b: Any, bins: int = JS_BINS) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) between the histograms of ``a`` (reference)
    and ``b``.

    Binning: ``bins`` equal-width bins between the 0.1 and 99.9 percentiles of ``a``, plus an
    underflow bin (``x < lower edge``) and an overflow bin (``x > upper edge``), so every event of
    both samples is counted. ``JS = (KL(p||m) + KL(q||m)) / 2`` with ``m = (p + q) / 2``; 0 for
    identical histograms, 1 when no bin holds events of both samples.
    """
    a = _sample_1d(a, "a")
    b = _sample_1d(b, "b")
    edges = histogram_edges(a, bins)
    p = _binned_counts(a, edges)
    q = _binned_counts(b, edges)
    p /= p.sum()
    q /= q.sum()
    m = 0.5 * (p + q)
    # 0 log 0 = 0: only bins where the sample has events contribute to its KL term.
    kl_p = np.sum(p[p > 0] * np.log2(p[p > 0] / m[p > 0]))
    kl_q = np.sum(q[q > 0] * np.log2(q[q > 0] / m[q > 0]))
    return float(min(max(0.5 * (kl_p + kl_q), 0.0), 1.0))


def _observable_samples(truth_features: Any, generated_features: Any,
                        observables: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Reconstruct ``observables`` for the truth and the generated events, for comparison.

    Returns ``(truth_obs, generated_obs, n_dropped)``. Generated rows with a NaN/inf feature, or
    whose reconstruction of any requested observable overflows (sinh(eta) of a finite but huge
    eta), are dropped from *every* observable, so all distances compare the same events.
    """
    from .observables import N_FEATURES, OBSERVABLE_LABELS, check_features, reconstruct

    unknown = [o for o in observables if o not in OBSERVABLE_LABELS]
    if unknown:
        raise ValueError(f"observable_distances: unknown observable(s) {unknown}; known: {sorted(OBSERVABLE_LABELS)}")
    truth = check_features(truth_features, "observable_distances(truth_features)")
    gen = np.asarray(generated_features, dtype=np.float64)
    if gen.ndim != 2 or gen.shape[1] != N_FEATURES:
        raise ValueError(f"observable_distances(generated_features): expected shape (N, {N_FEATURES}), got {gen.shape}")
    n_given = len(gen)
    gen = gen[np.all(np.isfinite(gen), axis=1)]
    obs_t = reconstruct(truth)
    obs_g = reconstruct(gen) if len(gen) else {}
    keep = np.ones(len(gen), dtype=bool)
    for o in observables if len(gen) else ():
        keep &= np.isfinite(obs_g[o])
    if not keep.any():
        raise ValueError(f"observable_distances: none of the {n_given} generated events is finite")
    return ({o: obs_t[o] for o in observables}, {o: obs_g[o][keep] for o in observables},
            int(n_given - keep.sum()))


def observable_distances(truth_features: Any, generated_features: Any, *, bins: int = JS_BINS,
                         observables: Sequence[str] = METRIC_OBSERVABLES) -> dict[str, Any]:
    """W1 and JS between true and generated events for every observable.

    Parameters
    ----------
    truth_features, generated_features : ``(N, 5)`` features in physical units (columns
        :data:`qinn_lib.observables.FEATURES`). The truth must be finite; generated rows with
        NaN/inf are dropped and counted.

    Returns
    -------
    ``{obs: {"w1": float, "js": float} for obs in observables}`` plus ``"n_dropped"`` (generated
    rows dropped because a feature or one of the requested observables is NaN/inf) and
    ``"n_generated"`` (rows used).
    """
    obs_t, obs_g, n_dropped = _observable_samples(truth_features, generated_features, observables)
    n_used = len(np.asarray(generated_features)) - n_dropped
    return {**_distances(obs_t, obs_g, bins), "n_dropped": n_dropped, "n_generated": int(n_used)}


def _distances(obs_t: Mapping[str, np.ndarray], obs_g: Mapping[str, np.ndarray], bins: int) -> dict[str, dict[str, float]]:
    return {o: {"w1": wasserstein_1d(obs_t[o], obs_g[o]), "js": jensen_shannon(obs_t[o], obs_g[o], bins)} for o in obs_t}


def peak_and_tails(truth_mll: Any, generated_mll: Any, *, center: float | None = None,
                   half_width: float = PEAK_HALF_WIDTH, bins: int = JS_BINS) -> dict[str, float]:
    """The M_ll distribution judged in two parts, as sec. 4.2 does ("the QINN even outperforms the
    16k parameter INN at reconstructing the sharp peak of the M_Z distribution, though it does not
    match the tails ... as well").

    Events are split at ``|M_ll - center| <= half_width`` (default: PDG M_Z ± 5 GeV). Returns
    ``js_peak`` (JS between the in-window histograms, each sample normalised to its own in-window
    events: the *shape* of the peak), ``js_tails`` (the same outside the window),
    ``peak_fraction_truth`` and ``peak_fraction_generated`` (share of events in the window: how
    much of the sample the model puts into the peak), and ``n_dropped`` (non-finite generated
    values, dropped). A part in which the generated sample has no events scores JS = 1; a part
    with fewer than two (distinct) true events has no distribution to compare with and scores NaN.
    """
    from .fits import PDG_MZ

    center = PDG_MZ if center is None else float(center)
    if not half_width > 0:
        raise ValueError(f"peak_and_tails: half_width must be > 0, got {half_width!r}")
    truth = _sample_1d(truth_mll, "peak_and_tails(truth_mll)")
    gen = np.asarray(generated_mll, dtype=np.float64).ravel()
    finite = np.isfinite(gen)
    gen = gen[finite]
    if gen.size == 0:
        raise ValueError("peak_and_tails(generated_mll): no finite values")
    in_t = np.abs(truth - center) <= half_width
    in_g = np.abs(gen - center) <= half_width
    out: dict[str, float] = {}
    for part, mask_t, mask_g in (("peak", in_t, in_g), ("tails", ~in_t, ~in_g)):
        if mask_t.sum() < 2 or np.ptp(truth[mask_t]) == 0:
            out[f"js_{part}"] = float("nan")  # no true distribution to compare with (e.g. toy data)
        else:
            out[f"js_{part}"] = jensen_shannon(truth[mask_t], gen[mask_g], bins) if mask_g.any() else 1.0
    out["peak_fraction_truth"] = float(in_t.mean())
    out["peak_fraction_generated"] = float(in_g.mean())
    out["n_dropped"] = int((~finite).sum())
    return out


# -- likelihood ----------------------------------------------------------------------------------
@torch.no_grad()
def test_nll(model: torch.nn.Module, data: Any, *, split: str = "test", batch_size: int = 4096) -> dict[str, float]:
    """Mean negative log-likelihood of a data split in *physical* feature units (nats/event).

    The model maps the [0, π]-scaled features u to z with ``z, log|det dz/du| =
    model.forward_and_logdet(u)``; eq. 5 with a standard-normal latent gives
    ``-log p_u(u) = ||z||²/2 + (n/2) log 2π - log|det dz/du|`` (``losses.nll_per_event``). The
    scaling x → u has the constant Jacobian ``du/dx`` (``scaler.log_abs_det``), and
    ``p_x(x) = p_u(u(x)) |det du/dx|``, so ``-log p_x(x) = -log p_u(u) - scaler.log_abs_det``.
    This removes the dependence on the (data-dependent) scaling, so numbers of different models
    and the true density are comparable.

    Parameters
    ----------
    model : exposes ``forward_and_logdet(u) -> (z (B, n), logdet (B,))``.
    data : a :class:`qinn_lib.runs.PreparedData` (or anything with ``.scaler`` and the split as a
        scaled ``(N, n)`` tensor attribute).
    split : ``"test"`` (default), ``"val"`` or ``"train"``.

    Returns
    -------
    ``{"nll": mean, "nll_sem": std / sqrt(N), "n_events": N, "n_nonfinite": k}``. Events with a
    non-finite NLL (a singular Jacobian) are *kept*, so the mean is then inf/NaN; ``n_nonfinite``
    says how many.
    """
    from .losses import nll_per_event

    if not callable(getattr(model, "forward_and_logdet", None)):
        raise TypeError(f"test_nll: model of type {type(model).__name__} has no forward_and_logdet(x) method")
    if split not in ("train", "val", "test"):
        raise ValueError(f"test_nll: split must be 'train', 'val' or 'test', got {split!r}")
    if batch_size < 1:
        raise ValueError(f"test_nll: batch_size must be >= 1, got {batch_size}")
    u = getattr(data, split)
    if not isinstance(u, torch.Tensor):
        u = torch.as_tensor(np.asarray(u, dtype=np.float64))
    if u.ndim != 2 or u.shape[0] == 0:
        raise ValueError(f"test_nll: data.{split} must be a non-empty (N, n) tensor, got shape {tuple(u.shape)}")
    log_abs_det = float(data.scaler.log_abs_det)

    was_training = model.training
    model.eval()
    try:
        parts = []
        for start in range(0, u.shape[0], batch_size):
            z, logdet = model.forward_and_logdet(u[start:start + batch_size])
            # float64 from here on: the mean over ~1e5 events should not add float32 rounding.
            parts.append(nll_per_event(z.double(), logdet.double(), include_constant=True).cpu())
    finally:
        model.train(was_training)
    per_event = torch.cat(parts).numpy() - log_abs_det
    n = per_event.size
    sem = float(per_event.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {"nll": float(per_event.mean()), "nll_sem": sem, "n_events": int(n),
            "n_nonfinite": int((~np.isfinite(per_event)).sum())}


test_nll.__test__ = False  # not a pytest test, despite the name


# -- classifier two-sample test ------------------------------------------------------------------
def auc_mann_whitney(scores_pos: Any, scores_neg: Any) -> float:
    """ROC AUC = P(score of a positive > score of a negative) + P(tie) / 2, from ranks.

    Mann–Whitney: with R the sum of the (tie-averaged) ranks of the positives in the pooled
    sample, ``AUC = (R - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``.
    """
    from scipy.stats import rankdata

    pos = _sample_1d(scores_pos, "scores_pos")
    neg = _sample_1d(scores_neg, "scores_neg")
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


def _classifier_inputs(features: np.ndarray) -> np.ndarray:
    """The five features plus M_ll and Delta R (the observables the paper singles out)."""
    from .observables import reconstruct

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
    from .observables import check_features
    from .threads import torch_threads

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
    xt_all = _classifier_inputs(t)
    xg_all = _classifier_inputs(g) if len(g) else np.empty((0, t.shape[1] + 2))
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


# -- everything for one trained model ------------------------------------------------------------
def evaluate_model(trained: Any, *, seed: int, n_generate: int | None = None, bins: int = JS_BINS,
                   classifier: Mapping[str, Any] | None = None, batch_size: int = 8192,
                   generated: np.ndarray | None = None) -> dict[str, float]:
    """All metrics of one :class:`qinn_lib.runs.TrainedModel` against its held-out test split.

    Generates ``n_generate`` events (default: as many as the test split) with ``seed``, then
    computes :func:`observable_distances`, :func:`test_nll`, :func:`classifier_auc` (keyword
    arguments ``classifier`` are passed on), the :func:`reconstruction_deviation` of the test
    split (for the INN the round trip is exact up to rounding: a check), parameter counts and the
    training time.

    Returns a flat dict of scalars (JSON-ready): ``w1/<obs>``, ``js/<obs>`` for every
    :data:`METRIC_OBSERVABLES`, ``js/m_ll_peak``, ``js/m_ll_tails`` and ``peak_excess/m_ll``
    (:func:`peak_and_tails`; the excess is the generated minus the true share of events in the
    peak window), ``peak_share_error/m_ll`` (its absolute value), ``nll``, ``nll_sem``, ``auc``, ``auc_sem``, ``recon_mean``,
    ``recon_median``, ``recon_p95``, ``recon_n_nonfinite``, ``params_total`` (and
    ``params_quantum``/``params_classical`` when the model reports them), ``train_seconds`` (sum
    of the per-epoch times in the history, so also right for a reloaded run; for seeds trained in
    lockstep, each seed's share of the stack's time), ``train_epochs``,
    ``nll_n_nonfinite``, ``n_test``, ``n_generated``, ``n_generated_nonfinite`` (events
    ``trained.generate`` dropped as non-finite), ``n_dropped_observables`` (further generated
    events dropped because an observable overflowed).
    """
    truth = np.asarray(trained.data.sample.test, dtype=np.float64)
    n = len(truth) if n_generate is None else int(n_generate)
    if n < 1:
        raise ValueError(f"evaluate_model: n_generate must be >= 1, got {n_generate!r}")
    if generated is None:  # a caller that also plots the sample passes trained.generate(n, seed) itself
        generated = trained.generate(n, seed=seed)  # drops non-finite events (with a warning)
    out: dict[str, float] = {"n_test": int(len(truth)), "n_generated": int(len(generated)),
                             "n_generated_nonfinite": int(n - len(generated))}

    # One reconstruction serves the distances and the peak/tail split, on the same kept events.
    obs_t, obs_g, out["n_dropped_observables"] = _observable_samples(truth, generated, METRIC_OBSERVABLES)
    dist = _distances(obs_t, obs_g, bins)
    for o in METRIC_OBSERVABLES:
        out[f"w1/{o}"] = dist[o]["w1"]
    for o in METRIC_OBSERVABLES:
        out[f"js/{o}"] = dist[o]["js"]
    parts = peak_and_tails(obs_t["m_ll"], obs_g["m_ll"])
    out["js/m_ll_peak"], out["js/m_ll_tails"] = parts["js_peak"], parts["js_tails"]
    # signed: > 0 means the model puts too many events into the M_Z peak window
    out["peak_excess/m_ll"] = parts["peak_fraction_generated"] - parts["peak_fraction_truth"]
    # its size, for "which model gets the peak height right" (seed means of a signed excess could cancel)
    out["peak_share_error/m_ll"] = abs(out["peak_excess/m_ll"])

    nll = test_nll(trained.model, trained.data)
    out["nll"], out["nll_sem"] = nll["nll"], nll["nll_sem"]
    out["nll_n_nonfinite"] = nll["n_nonfinite"]

    c2st = classifier_auc(truth, generated, seed=seed, **dict(classifier or {}))
    out["auc"], out["auc_sem"] = c2st["auc"], c2st["auc_sem"]

    x = trained.data.test
    x_rec = torch.cat([trained.reconstruct(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])
    dev = reconstruction_deviation(x, x_rec)
    out.update({"recon_mean": dev["mean"], "recon_median": dev["median"], "recon_p95": dev["p95"],
                "recon_n_nonfinite": dev["n_nonfinite"]})

    counts = getattr(trained.model, "parameter_counts", None)
    if callable(counts):
        out.update({f"params_{k}": int(v) for k, v in counts().items()})
    else:
        out["params_total"] = int(sum(p.numel() for p in trained.model.parameters() if p.requires_grad))

    history = getattr(getattr(trained, "result", None), "history", None) or []
    out["train_epochs"] = int(len(history))
    # An epoch of a lockstep stack (qinn_lib.inn.INNStack) trains all its seeds at once: its wall
    # time is shared, so each seed is charged its share (epoch seconds / lockstep_members).
    out["train_seconds"] = (float(sum(float(h.get("seconds", 0.0)) / float(h.get("lockstep_members", 1))
                                      for h in history)) if history else float("nan"))
    return out


# -- results files -------------------------------------------------------------------------------
def make_record(label: str, trained: Any, metrics: Mapping[str, Any], *, eval_seed: int | None = None) -> dict[str, Any]:
    """A results record for ``trained`` (a TrainedModel): label, config, fingerprints, training seed
    (``cfg.seed``) and the metrics (e.g. from :func:`evaluate_model`)."""
    cfg = trained.cfg
    rec = {"label": str(label), "kind": getattr(cfg, "kind", "?"), "config": cfg.to_dict(),
           "config_fingerprint": cfg.fingerprint(), "data_fingerprint": trained.data.fingerprint,
           "seed": int(cfg.seed), "metrics": dict(metrics)}
    if eval_seed is not None:
        rec["eval_seed"] = int(eval_seed)
    return rec


def _check_record(rec: Any, where: str) -> None:
    if not isinstance(rec, Mapping):
        raise ResultsError(f"{where} is not a dict (got {type(rec).__name__})")
    missing = [k for k in _RECORD_KEYS if k not in rec]
    if missing:
        raise ResultsError(f"{where} lacks key(s) {missing}; a record needs {list(_RECORD_KEYS)}")
    if not isinstance(rec["metrics"], Mapping):
        raise ResultsError(f"{where}: 'metrics' must be a dict, got {type(rec['metrics']).__name__}")
    if not isinstance(rec["config"], Mapping):
        raise ResultsError(f"{where}: 'config' must be a dict, got {type(rec['config']).__name__}")


def write_results(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``{"schema_version", "created", "records"}`` as JSON, atomically (temporary file in the
    same folder, then ``os.replace``: a reader never sees half a file). Returns the path."""
    path = Path(path)
    records = [dict(r) for r in records]
    for i, r in enumerate(records):
        _check_record(r, f"write_results({path}): record {i}")
    doc = {"schema_version": RESULTS_SCHEMA_VERSION,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "records": records}
    # NaN/inf are written as JSON's NaN/Infinity extensions (Python's json reads them back).
    text = json.dumps(doc, indent=2, allow_nan=True)
    return atomic_write_text(path, text)


def read_results(path: str | os.PathLike, *, require_same_data: bool = True) -> list[dict[str, Any]]:
    """Records of a results file written by :func:`write_results`.

    Raises :class:`~qinn_lib.results.ResultsError` (a ``ValueError`` naming the file) for unreadable
    JSON, a schema version other than :data:`RESULTS_SCHEMA_VERSION`, malformed records, and -- with ``require_same_data`` -- records
    whose models were trained on different data (different data fingerprints).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"results file {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"results file {path}: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        raise ResultsError(
            f"results file {path} has schema_version {version!r}, but this code reads version "
            f"{RESULTS_SCHEMA_VERSION}; re-run the evaluation to regenerate it"
        )
    records = doc.get("records")
    if not isinstance(records, list):
        raise ResultsError(f"results file {path}: 'records' must be a list")
    for i, r in enumerate(records):
        _check_record(r, f"results file {path}: record {i}")
    if require_same_data and records:
        first = records[0]
        for r in records[1:]:
            if r["data_fingerprint"] != first["data_fingerprint"]:
                raise ResultsError(
                    f"results file {path}: comparing models trained on different data: "
                    f"{first['label']!r} (seed {first['seed']}) has data fingerprint "
                    f"{first['data_fingerprint']}, {r['label']!r} (seed {r['seed']}) has "
                    f"{r['data_fingerprint']}; pass require_same_data=False to read them anyway"
                )
    return records


# -- tables --------------------------------------------------------------------------------------
def _scalar_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested dicts with '/' and keep the real numbers (bools and lists are skipped)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_scalar_metrics(v, f"{name}/"))
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
            out[name] = float(v)
    return out


def summarise(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of every scalar metric, per model label.

    Returns one row per label (in order of first appearance)::

        {"label": str, "n_seeds": int, "seeds": [int, ...],
         "metrics": {name: {"mean": float, "std": float, "n": int, "values": [float, ...]}}}

    ``std`` is the sample standard deviation (ddof = 1) over the seeds, NaN for a single seed;
    ``values`` are the per-seed values, in the order of ``seeds``.
    Nested metric dicts are flattened with '/'. Raises ``ValueError`` when one label holds two
    records with the same seed, or records whose configurations differ in anything but the seed
    (they would not be replicas of one model).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for i, r in enumerate(records):
        _check_record(r, f"summarise: record {i}")
        groups.setdefault(str(r["label"]), []).append(r)
    rows = []
    for label, recs in groups.items():
        seeds = [r["seed"] for r in recs]
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            raise ValueError(f"summarise: label {label!r} has several records with seed(s) {dup}")
        base = {k: v for k, v in recs[0]["config"].items() if k != "seed"}
        for r in recs[1:]:
            other = {k: v for k, v in r["config"].items() if k != "seed"}
            if other != base:
                diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
                raise ValueError(
                    f"summarise: label {label!r} mixes configurations that differ in {diff} "
                    f"(seeds {recs[0]['seed']} and {r['seed']}); give them different labels"
                )
        values: dict[str, list[float]] = {}
        for r in recs:
            for name, v in _scalar_metrics(r["metrics"]).items():
                values.setdefault(name, []).append(v)
        stats = {}
        for name, vs in values.items():
            arr = np.asarray(vs, dtype=np.float64)
            std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
            stats[name] = {"mean": float(arr.mean()), "std": std, "n": int(arr.size), "values": [float(v) for v in vs]}
        rows.append({"label": label, "n_seeds": len(recs), "seeds": seeds, "metrics": stats})
    return rows


def compare_means(a: Mapping[str, Any], b: Mapping[str, Any], *, n_spreads: float = 2.0) -> dict[str, Any]:
    """Is metric ``b`` really different from metric ``a``? Both are entries of
    :func:`summarise`'s ``row["metrics"]`` (``mean``, ``std`` over seeds, ``n``).

    Returns ``diff = b.mean - a.mean``, the combined seed spread ``spread = sqrt(std_a² + std_b²)``,
    ``significance = diff / spread`` and ``order``: ``"b>a"`` or ``"b<a"`` when ``|diff|`` exceeds
    ``n_spreads`` spreads, ``"tied"`` when it does not, and ``"undecided"`` when either side has a
    single seed (no spread, so no difference can be called real).

    When both sides carry their per-seed ``values`` (as :func:`summarise` gives them), also
    ``pairs`` (number of seed pairs (a_i, b_j)), ``pairs_b_lower`` and ``pairs_b_higher``: how
    often b's seed is below / above a's. This does not change ``order``; it shows a reader whether
    a "tied" hides two sets of seeds that never overlap (one side's spread can be large).
    """
    for name, m in (("a", a), ("b", b)):
        missing = {"mean", "std", "n"} - set(m)
        if missing:
            raise ValueError(f"compare_means: {name} lacks {sorted(missing)} (pass summarise(...)[i]['metrics'][name])")
    if not n_spreads > 0:
        raise ValueError(f"compare_means: n_spreads must be > 0, got {n_spreads!r}")
    diff = float(b["mean"]) - float(a["mean"])
    pairs: dict[str, int] = {}
    if "values" in a and "values" in b:
        va, vb = np.asarray(a["values"], dtype=np.float64), np.asarray(b["values"], dtype=np.float64)
        pairs = {"pairs": int(va.size * vb.size), "pairs_b_lower": int((vb[None, :] < va[:, None]).sum()),
                 "pairs_b_higher": int((vb[None, :] > va[:, None]).sum())}
    if int(a["n"]) < 2 or int(b["n"]) < 2:
        return {"diff": diff, "spread": float("nan"), "significance": float("nan"), "order": "undecided", **pairs}
    spread = math.hypot(float(a["std"]), float(b["std"]))
    significance = diff / spread if spread > 0 else math.copysign(math.inf, diff) if diff else 0.0
    order = "tied" if abs(diff) <= n_spreads * spread else ("b>a" if diff > 0 else "b<a")
    return {"diff": diff, "spread": spread, "significance": significance, "order": order, **pairs}


_ORDER_WORDS = {"b>a": "higher", "b<a": "lower", "tied": "tied"}


def claim_verdict(a: Mapping[str, Any], b: Mapping[str, Any], expected: str, *,
                  n_spreads: float = 2.0) -> dict[str, Any]:
    """Check a paper statement of the form "metric ``b`` is higher than / lower than / the same as
    metric ``a``" (``expected`` = ``"b>a"``, ``"b<a"`` or ``"tied"``) against the seed means, with
    :func:`compare_means`.

    Returns compare_means' fields plus ``verdict``: ``"reproduced"`` when the measured order is the
    expected one, ``"not reproduced"`` when it is another (``found`` says which: ``"higher"``,
    ``"lower"`` or ``"tied"``; ``expected_word`` is the expected order in the same words),
    ``"undecided"`` with a single seed; and
    ``text``, one line: the difference ``b - a``, in seed spreads, and the verdict.
    """
    if expected not in _ORDER_WORDS:
        raise ValueError(f"claim_verdict: expected must be one of {sorted(_ORDER_WORDS)}, got {expected!r}")
    c = compare_means(a, b, n_spreads=n_spreads)
    if c["order"] == "undecided":
        verdict, found = "undecided", "undecided"
        text = f"{c['diff']:+.4g} (one seed: no spread) -> undecided"
    else:
        found = _ORDER_WORDS[c["order"]]
        verdict = "reproduced" if c["order"] == expected else "not reproduced"
        text = f"{c['diff']:+.4g} = {c['significance']:+.1f} seed spreads ({found}) -> {verdict}"
    return {**c, "verdict": verdict, "found": found, "expected_word": _ORDER_WORDS[expected], "text": text}


def _decimals_for(x: float, sig: int) -> int:
    """Decimal places that show ``sig`` significant digits of ``x`` (0 for large numbers)."""
    if x == 0 or not math.isfinite(x):
        return 0
    # The exponent of x *rounded* to sig digits (0.09999999 -> 1.0e-01), not floor(log10 |x|).
    exponent = int(f"{abs(x):.{sig - 1}e}".split("e")[1])
    return max(0, sig - 1 - exponent)


def _format_value(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 1e6 or abs(v) < 1e-4:
        return f"{v:.3e}"
    return f"{v:.{_decimals_for(v, 4)}f}"


def _format_mean_std(mean: float, std: float) -> str:
    if not (math.isfinite(mean) and math.isfinite(std)) or std == 0:
        return f"{_format_value(mean)} ± {_format_value(std)}"
    if (abs(std) < 1e-4 and abs(mean) < 1e-4) or abs(mean) >= 1e6:
        return f"{mean:.3e} ± {std:.1e}"
    d = min(_decimals_for(std, 2), 10)  # two significant digits of the spread
    return f"{mean:.{d}f} ± {std:.{d}f}"


def format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """Markdown table of :func:`summarise` rows: one line per model, one column per metric.

    A cell reads ``mean ± std`` (precision set by two significant digits of the std) when the
    metric was averaged over more than one seed, else the single value (4 significant digits,
    integers as integers). ``metrics`` selects and orders the columns (default: all, in order of
    first appearance); a metric a model lacks shows as ``–``.
    """
    if metrics is None:
        metrics = []
        for r in rows:
            metrics += [m for m in r["metrics"] if m not in metrics]
    header = ["model", "seeds", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        cells = [str(r["label"]), str(r["n_seeds"])]
        for m in metrics:
            s = r["metrics"].get(m)
            if s is None:
                cells.append("–")
            elif s["n"] > 1:
                cells.append(_format_mean_std(s["mean"], s["std"]))
            else:
                cells.append(_format_value(s["mean"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
