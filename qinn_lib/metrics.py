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
from .ensemble_tables import claim_verdict, compare_means, format_table, summarise  # re-exported
from .results import ResultsError
from .two_sample import auc_mann_whitney, auc_standard_error, classifier_auc  # re-exported

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
