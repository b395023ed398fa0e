"""How good is a generative model? One trained model against its held-out test split.

Everything here compares a model with the held-out *test* split, in physical units, so QINN and
classical-INN numbers are directly comparable. :func:`evaluate_model` computes every metric of one
trained model as a flat dict of scalars; two of them are defined here:

- **reconstruction deviation** (:func:`reconstruction_deviation`; the paper's ‖(x̂ − x)/x‖ < 2.1 %,
  sec. 4.2): per test event the relative Euclidean error ‖x̃ − x‖₂ / ‖x‖₂ of the round trip
  x → z → x̃, with x the features scaled to [0, π]; reported as mean and median over events. The
  vector norm is used because the element-wise ratio is undefined where a scaled feature is 0
  (every feature's minimum maps to 0).
- **test NLL** (:func:`test_nll`): mean of −log p(x) over the test split, in nats per event, with
  the density taken in *physical* feature units: the model's density of the [0, π]-scaled
  features (eq. 5) times the constant Jacobian of the scaling.

The others have modules of their own: W1 and JS of every observable, and the M_ll peak and tails,
in :mod:`qinn_lib.evaluation.distances`; the MLP classifier AUC in :mod:`qinn_lib.evaluation.two_sample`;
the field's measures (:func:`field_metrics`: FPD and KPD in
:mod:`qinn_lib.evaluation.physics_distances`, the boosted-tree classifier AUC in
:mod:`qinn_lib.evaluation.boosted_two_sample`), with their noise floor from two true samples
(:func:`truth_floor`); the normalisation of the model's density over the box and the normalised
NLL in :mod:`qinn_lib.evaluation.normalisation` (:func:`likelihood_normalisation`).
Records of the results and their files are :mod:`qinn_lib.evaluation.records`; means over seeds
and markdown tables :mod:`qinn_lib.evaluation.ensemble_tables`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from qinn_lib.evaluation.boosted_two_sample import BDT_FOLDS, BDT_MAX_EVENTS, bdt_auc
from qinn_lib.evaluation.distances import (
    JS_BINS,
    METRIC_OBSERVABLES,
    as_array,
    distances_by_observable,
    observable_samples,
    peak_and_tails,
)
from qinn_lib.evaluation.normalisation import (
    bijection_box_mass,
    box_normalisation,
    jacobian_signs,
    majority_sign,
    normalised_nll,
)
from qinn_lib.evaluation.physics_distances import fpd, kpd
from qinn_lib.evaluation.two_sample import classifier_auc
from qinn_lib.events.scaling import SCALED_RANGE
from qinn_lib.training.budget import budget
from qinn_lib.training.losses.nll import nll_per_event

__all__ = ['FIELD_METRICS', 'relative_deviation', 'reconstruction_deviation', 'test_nll', 'field_metrics', 'bdt_folds_for', 'truth_floor',
           'likelihood_normalisation', 'evaluate_model']

#: Keys of :func:`field_metrics` (and of :func:`truth_floor`), in table order.
FIELD_METRICS: tuple[str, ...] = ("fpd", "fpd_err", "kpd", "kpd_err", "auc_bdt", "auc_bdt_err",
                                  "auc_bdt_derived", "auc_bdt_derived_err")


# -- reconstruction ------------------------------------------------------------------------------
def relative_deviation(x, x_rec) -> np.ndarray:
    """‖x̃ − x‖₂ / ‖x‖₂ of every event (NaN where the reconstruction is not finite): the per-event
    values behind :func:`reconstruction_deviation`, for tests paired over events."""
    x = as_array(x, "x")
    x_rec = as_array(x_rec, "x_rec")
    if x.shape != x_rec.shape:
        raise ValueError(f"x and x_rec must have the same shape, got {x.shape} and {x_rec.shape}")
    with np.errstate(invalid="ignore"):
        rel = np.linalg.norm(x_rec - x, axis=1) / np.linalg.norm(x, axis=1)
    rel[~np.all(np.isfinite(x_rec), axis=1)] = np.nan
    return rel


def reconstruction_deviation(x, x_rec) -> dict[str, float]:
    """Mean (with its standard error ``sem`` over events), median and 95th percentile of
    ‖x̃ − x‖₂ / ‖x‖₂ over events, plus the per-feature mean absolute error in scaled units (radians)."""
    per_event = relative_deviation(x, x_rec)
    x, x_rec = as_array(x, "x"), as_array(x_rec, "x_rec")
    finite = np.all(np.isfinite(x_rec), axis=1)
    rel = per_event[finite]
    return {
        "mean": float(rel.mean()),
        "sem": float(rel.std(ddof=1) / math.sqrt(rel.size)) if rel.size > 1 else float("nan"),
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
        "per_feature_mae": np.abs(x_rec[finite] - x[finite]).mean(axis=0).tolist(),
        "n_nonfinite": int((~finite).sum()),
    }


# -- likelihood ----------------------------------------------------------------------------------
@torch.no_grad()
def test_nll(model: torch.nn.Module, data: Any, *, split: str = "test", batch_size: int = 4096) -> dict[str, float]:
    """Mean negative log-likelihood of a data split in *physical* feature units (nats/event).

    The model maps the [0, π]-scaled features u to z with ``z, log|det dz/du| =
    model.forward_and_logdet(u)``; eq. 5 with a standard-normal latent gives
    ``-log p_u(u) = ||z||²/2 + (n/2) log 2π - log|det dz/du|`` (:func:`qinn_lib.training.losses.nll.nll_per_event`). The
    scaling x → u has the constant Jacobian ``du/dx`` (``scaler.log_abs_det``), and
    ``p_x(x) = p_u(u(x)) |det du/dx|``, so ``-log p_x(x) = -log p_u(u) - scaler.log_abs_det``.
    This removes the dependence on the (data-dependent) scaling, so numbers of different models
    and the true density are comparable.

    Parameters
    ----------
    model : exposes ``forward_and_logdet(u) -> (z (B, n), logdet (B,))``.
    data : a :class:`qinn_lib.experiments.one_model.PreparedData` (or anything with ``.scaler`` and the split as a
        scaled ``(N, n)`` tensor attribute).
    split : ``"test"`` (default), ``"val"`` or ``"train"``.

    Returns
    -------
    ``{"nll": mean, "nll_sem": std / sqrt(N), "n_events": N, "n_nonfinite": k}``. Events with a
    non-finite NLL (a singular Jacobian) are *kept*, so the mean is then inf/NaN; ``n_nonfinite``
    says how many.
    """
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


# -- the field's measures -----------------------------------------------------------------------
def bdt_folds_for(cfg: Any) -> int:
    """The boosted-tree AUC's cross-validation folds for a run of configuration ``cfg``: 5
    (:data:`~qinn_lib.evaluation.boosted_two_sample.BDT_FOLDS`) in the paper profile, 2 in the quick
    one (:data:`qinn_lib.training.budget.QUICK_CAPS`: the trees are most of the quick profile's
    evaluation time, ~1 s per AUC whatever the sample size; a fold is a count like any other there)."""
    return budget(getattr(cfg, "profile", "paper"), "bdt_folds", BDT_FOLDS)


def field_metrics(truth: Any, generated: Any, *, seed: int, bdt_events: int = BDT_MAX_EVENTS,
                  bdt_folds: int = BDT_FOLDS) -> dict[str, float]:
    """The field's measures of ``generated`` against ``truth`` (both ``(N, 5)`` physical features):
    FPD and KPD of the five features standardised with the truth's mean and standard deviation
    (Kansal et al. 2023; :func:`qinn_lib.evaluation.physics_distances.fpd`, ``kpd`` with their
    defaults), and the boosted-tree classifier AUC on the raw five features and with M_ll and ΔR
    added (:func:`qinn_lib.evaluation.boosted_two_sample.bdt_auc`, ``bdt_events`` per class, ``bdt_folds`` folds), each
    with its error: the keys :data:`FIELD_METRICS`. Non-finite generated rows are dropped first."""
    t = np.asarray(truth, dtype=np.float64)
    g = np.asarray(generated, dtype=np.float64)
    if g.ndim == 2:
        g = g[np.all(np.isfinite(g), axis=1)]
    out: dict[str, float] = {}
    f = fpd(t, g, seed=seed, standardisation="truth")
    out["fpd"], out["fpd_err"] = f["fpd"], f["fpd_err"]
    k = kpd(t, g, seed=seed, standardisation="truth")
    out["kpd"], out["kpd_err"] = k["kpd"], k["kpd_err"]
    for key, derived in (("auc_bdt", False), ("auc_bdt_derived", True)):
        b = bdt_auc(t, g, seed=seed, derived=derived, max_events=bdt_events, n_folds=bdt_folds)
        out[key], out[f"{key}_err"] = b["auc"], b["auc_err"]
    return out


def truth_floor(data: Any, *, seed: int, bdt_events: int = BDT_MAX_EVENTS) -> dict[str, float]:
    """The noise floor of :func:`field_metrics`: the same measures between two independent *true*
    samples, the test split against the training and validation splits together (``data``: a
    :class:`qinn_lib.experiments.one_model.PreparedData`, or anything with ``.sample.train/val/test``),
    the larger cut to the smaller's size (50 000 each in the paper profile, as many as a model is
    evaluated on). A model's number is only a flaw where it rises above this. Returns the keys
    :data:`FIELD_METRICS` plus ``n_events`` (per sample)."""
    sample = data.sample
    a = np.asarray(sample.test, dtype=np.float64)
    b = np.concatenate([np.asarray(sample.train, dtype=np.float64), np.asarray(sample.val, dtype=np.float64)])
    n = min(len(a), len(b))
    out = field_metrics(a[:n], b[:n], seed=seed, bdt_events=bdt_events)
    out["n_events"] = int(n)
    return out


def likelihood_normalisation(model: torch.nn.Module, data: Any, *, seed: int, generated_u: Any = None,
                             n_drawn: int | None = None, n_points: int = 1 << 17) -> dict[str, float]:
    """``log_z``, ``log_z_err`` of the model's density over the box ``[0, π]^n`` of the scaled
    features (:mod:`qinn_lib.evaluation.normalisation`), and for a model with
    ``forward_and_jacobian`` (the QINN) the folds: ``fold_fraction`` (share of the test events whose
    det J has the minority sign, as :func:`qinn_lib.evaluation.diagnostics.fold_statistics`),
    ``box_negative_fraction`` (share of the box with det J < 0) and ``minority_mass`` (share of Z
    on the sign opposite the test events' majority).

    A model with ``exact_bijection`` (the classical INN) and its own samples ``generated_u`` (scaled,
    the finite ones of ``n_drawn`` draws) gets Z as the share of those samples in the box
    (:func:`~qinn_lib.evaluation.normalisation.bijection_box_mass`); any other model the randomised
    quasi-Monte Carlo integral over ``n_points`` points
    (:func:`~qinn_lib.evaluation.normalisation.box_normalisation`)."""
    lo, hi = SCALED_RANGE
    u_test = data.test
    n_features = int(u_test.shape[1])
    out: dict[str, float] = {}
    majority = None
    if callable(getattr(model, "forward_and_jacobian", None)):
        signs = jacobian_signs(model, u_test)
        majority = majority_sign(signs)
        out["fold_fraction"] = float(min(int((signs > 0).sum()), int((signs < 0).sum())) / signs.size)
    if getattr(model, "exact_bijection", False) and generated_u is not None:
        u = np.asarray(generated_u, dtype=np.float64)
        z = bijection_box_mass(u, max(int(n_drawn or 0), len(u), 1), lo=lo, hi=hi)
    else:
        z = box_normalisation(model, n_features, seed=seed, n_points=n_points, lo=lo, hi=hi, majority=majority)
    out["log_z"], out["log_z_err"] = z["log_z"], z["log_z_err"]
    if "negative_fraction" in z:
        out["box_negative_fraction"], out["minority_mass"] = z["negative_fraction"], z["minority_mass"]
    return out


# -- everything for one trained model ------------------------------------------------------------
def evaluate_model(trained: Any, *, seed: int, n_generate: int | None = None, bins: int = JS_BINS,
                   classifier: Mapping[str, Any] | None = None, batch_size: int = 8192,
                   generated: np.ndarray | None = None, bdt_events: int = BDT_MAX_EVENTS,
                   normalisation_points: int = 1 << 17) -> dict[str, float]:
    """All metrics of one :class:`qinn_lib.experiments.one_model.TrainedModel` against its held-out test split.

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

    The field's measures (:func:`field_metrics`, keys :data:`FIELD_METRICS`; the trees' folds by the
    run's profile, :func:`bdt_folds_for`): ``fpd``, ``kpd``,
    ``auc_bdt``, ``auc_bdt_derived``, each with its ``_err``. The honest likelihood
    (:func:`likelihood_normalisation`): ``log_z``, ``log_z_err`` of the density over the box and
    ``nll_normalised`` = ``nll + log_z`` with ``nll_normalised_err``; for a model with
    ``forward_and_jacobian`` (the QINN) also ``fold_fraction``, ``box_negative_fraction`` and
    ``minority_mass``. A caller passing ``generated`` passes the model's own sample
    ``trained.generate(n, seed)``: for the classical INN its share inside the box is Z.

    Cost (measured on the paper profile's shipped models of seed 1234, 50 000 test and generated
    events, idle machine): 4.8-6.4 s per model, against 2.1-3.5 s without the field's measures and
    Z; of the difference FPD 0.4-0.5 s, KPD 0.1 s, the two boosted-tree AUCs 1.1-3.2 s and the
    QINN's Z (2^17 points) 0.4 s; the INN's Z counts its sample (free). :func:`truth_floor` 1.1 s.
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
    obs_t, obs_g, out["n_dropped_observables"] = observable_samples(truth, generated, METRIC_OBSERVABLES)
    dist = distances_by_observable(obs_t, obs_g, bins)
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
    gen_u = None
    if getattr(trained.model, "exact_bijection", False):  # its own sample gives Z (likelihood_normalisation)
        finite = generated[np.all(np.isfinite(generated), axis=1)]
        gen_u = trained.data.scaler.transform(finite) if len(finite) else np.empty((0, truth.shape[1]))
    norm = likelihood_normalisation(trained.model, trained.data, seed=seed, n_points=normalisation_points,
                                    generated_u=gen_u, n_drawn=max(n, len(generated)))
    out.update(norm)
    out["nll_normalised"], out["nll_normalised_err"] = normalised_nll(out["nll"], out["nll_sem"], norm["log_z"],
                                                                      norm["log_z_err"])

    c2st = classifier_auc(truth, generated, seed=seed, **dict(classifier or {}))
    out["auc"], out["auc_sem"] = c2st["auc"], c2st["auc_sem"]
    out.update(field_metrics(truth, generated, seed=seed, bdt_events=bdt_events, bdt_folds=bdt_folds_for(trained.cfg)))

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
    # An epoch of a lockstep stack (qinn_lib.models.inn.model.INNStack) trains all its seeds at once: its wall
    # time is shared, so each seed is charged its share (epoch seconds / lockstep_members).
    out["train_seconds"] = (float(sum(float(h.get("seconds", 0.0)) / float(h.get("lockstep_members", 1))
                                      for h in history)) if history else float("nan"))
    return out
