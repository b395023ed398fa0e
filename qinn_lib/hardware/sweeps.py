"""How good is a trained QINN on an emulated quantum computer? Metric sweeps against shots and
noise, and the verdict "as good as exact simulation" (notebook 07).

For every :class:`~qinn_lib.hardware.device.Device` and evaluation seed, :func:`evaluate_on_device`
measures what notebooks 03-05 measure with exact simulation, with the same definitions
(:mod:`qinn_lib.evaluation.evaluate`):

- the generated distribution: JS and W1 of M_ll and Delta R against the test split, and the
  classifier two-sample AUC (z ~ N(0, 1) -> the inverse run on the device); beside them the
  field's measures of notebooks 03-06 (:func:`qinn_lib.evaluation.evaluate.field_metrics`: FPD and
  KPD of the five features, the boosted-tree AUC on the raw features and with M_ll and Delta R
  added, each with its own error; :data:`FIELD_METRICS`), which :mod:`qinn_lib.hardware.field_measures`
  tabulates and holds against the verdicts below;
- the inverse: the reconstruction deviation ||x~ - x|| / ||x|| of x -> z -> x~, both directions on
  the device;
- the likelihood: the test NLL with z and the Jacobian measured on the device (parameter shift).

Seeds: evaluation seed s fixes the latent sample z and the classifier (the same for every
device, so devices are compared on the same events) and, offset by :data:`SHOT_SEED_OFFSET`, the
shots. Without shots the reconstruction and the NLL do not depend on s and are computed once.

Verdict (:func:`as_good_as_exact`): a device result is as good as exact simulation when it is
worse than the exact-simulation value by no more than ``n_spreads`` (2) combined uncertainties
(the NLL, an estimate of the model's likelihood, must not differ by more in either direction),
where the uncertainty of a metric is what limits the exact number itself: the spread over
evaluation seeds for metrics of a generated sample (JS, W1, AUC), and the standard error over test
events for per-event averages (reconstruction deviation, NLL; plus their seed spread when shots
make them random). Every metric here is "lower is better" (AUC: closer to 0.5, while above it).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation import distances, ensemble_tables, evaluate, two_sample
from qinn_lib.evaluation.boosted_two_sample import BDT_MAX_EVENTS
from qinn_lib.evaluation.physics_distances import MIN_EVENTS
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.threads import native_threads

__all__ = [
    "SAMPLE_METRICS",
    "FIELD_METRICS",
    "EVENT_METRICS",
    "TWO_SIDED",
    "GROUPS",
    "METRIC_LABELS",
    "SHOT_SEED_OFFSET",
    "EXACT",
    "PM",
    "nowrap",
    "evaluate_on_device",
    "field_metrics",
    "sweep",
    "summarise_sweep",
    "uncertainty",
    "as_good_as_exact",
    "shots_threshold",
    "noise_threshold",
    "plot_sweep",
    "verdict_table",
    "format_cell",
    "all_as_good",
    "thresholds",
    "statement",
]

#: Metrics of a generated sample: their uncertainty is the spread over evaluation seeds.
SAMPLE_METRICS = ("js/m_ll", "w1/m_ll", "js/delta_r", "w1/delta_r", "auc")
#: The field's measures of a generated sample (notebooks 03-06's, same functions and defaults) and
#: their own errors (FPD: the extrapolation's; KPD: the batch spread; AUCs: the fold spread).
FIELD_METRICS = evaluate.FIELD_METRICS
#: Per-event averages over the test split, with their standard error over events (key + "_sem").
EVENT_METRICS = ("recon_mean", "nll")
#: Metrics that estimate a property of the model itself rather than score a sample: a device value
#: off in either direction is wrong (a lower NLL from a noisy Jacobian is a biased likelihood, not a
#: better model), so their verdict is two-sided.
TWO_SIDED = ("nll",)
#: What "the QINN's distributions / inverse / likelihood" means in the verdicts.
GROUPS: dict[str, tuple[str, ...]] = {
    "distributions": SAMPLE_METRICS,
    "inverse": ("recon_mean",),
    "NLL": ("nll",),
}
#: Observables whose distributions are compared (the two the paper singles out, Fig. 7).
OBSERVABLES = ("m_ll", "delta_r")
#: Axis titles of the metrics in figures.
METRIC_LABELS = {
    "js/m_ll": r"JS($M_{\ell\ell}$)", "w1/m_ll": r"W1($M_{\ell\ell}$) [GeV]",
    "js/delta_r": r"JS($\Delta R_{\ell\ell}$)", "w1/delta_r": r"W1($\Delta R_{\ell\ell}$)",
    "auc": "classifier AUC", "recon_mean": r"reconstruction deviation $\|\tilde x - x\|/\|x\|$",
    "nll": "test NLL [nats/event]",
    "angle_error": "RMS error of generated angles [rad]",
    "fpd": "FPD (five features)", "kpd": "KPD (five features)", "auc_bdt": "boosted-tree AUC",
    "auc_bdt_derived": r"boosted-tree AUC (+ $M_{\ell\ell}$, $\Delta R$)",
}
#: The shot generator of evaluation seed s is seeded with s + this (the latent sample with s).
SHOT_SEED_OFFSET = 7_919
EXACT = "exact"
#: "±" between no-break spaces: a table cell "0.0208 ± 0.0010" never wraps over lines (issue 23).
PM = "\u00a0±\u00a0"
_WORD_JOINER = "\u2060"


def nowrap(text: str) -> str:
    """``text`` that a rendered table cell does not break: spaces as no-break spaces, every hyphen
    (an exponent's "e-05", a label's "p=1e-06") between word joiners (U+2060, invisible; the
    hyphen stays an ASCII hyphen, but a copied cell carries the joiners: strip them before parsing)."""
    return str(text).replace(" ", "\u00a0").replace("-", f"{_WORD_JOINER}-{_WORD_JOINER}")



def evaluate_on_device(trained: Any, device: Device | DeviceQINN, *, seed: int, n_generate: int, n_test: int,
                       classifier: Mapping[str, Any] | None = None, event_metrics: bool = True,
                       reference: np.ndarray | None = None, field: bool = True,
                       bdt_events: int = BDT_MAX_EVENTS) -> dict[str, float]:
    """Every metric of ``trained`` (a :class:`qinn_lib.experiments.one_model.TrainedModel` QINN) run on ``device``
    (a Device, or the model already placed on one, which is then reseeded).

    ``n_generate`` events are generated (latent seed ``seed``) and compared with the whole test
    split; the reconstruction deviation and the NLL use the first ``n_test`` test events
    (``event_metrics=False`` skips them). With ``reference``, the exact device's scaled sample for
    the same latent seed, also ``angle_error``: the RMS over events and features of the difference
    of the generated angles (rad) from the exact ones, event by event. Also returns the wall time
    of each part. ``field``: also the field's measures (:data:`FIELD_METRICS`, seed ``seed``; the
    boosted trees on ``bdt_events`` events per class), NaN when fewer than
    :data:`~qinn_lib.evaluation.physics_distances.MIN_EVENTS` generated events are finite.
    """
    return _evaluate(trained, device, seed=seed, n_generate=n_generate, n_test=n_test, classifier=classifier,
                     event_metrics=event_metrics, reference=reference, field=field, bdt_events=bdt_events)[0]


def field_metrics(truth: np.ndarray, generated: np.ndarray, *, seed: int,
                  bdt_events: int = BDT_MAX_EVENTS) -> dict[str, float]:
    """:func:`qinn_lib.evaluation.evaluate.field_metrics` of one device's sample (finite rows), on one
    native thread (numpy's BLAS on two threads beside other work made the FPD 5x slower, measured),
    with ``seconds_field``; every value NaN when fewer than ``MIN_EVENTS`` events are finite (a
    sample that small has no covariance worth a distance)."""
    g = np.asarray(generated, dtype=np.float64)
    g = g[np.all(np.isfinite(g), axis=1)] if g.ndim == 2 else g
    start = time.perf_counter()
    if len(g) < MIN_EVENTS:
        out = dict.fromkeys(FIELD_METRICS, math.nan)
    else:
        with native_threads(1):
            out = evaluate.field_metrics(truth, g, seed=seed, bdt_events=bdt_events)
    out["seconds_field"] = time.perf_counter() - start
    return out


def _evaluate(trained: Any, device: Device | DeviceQINN, *, seed: int, n_generate: int, n_test: int,
              classifier: Mapping[str, Any] | None, event_metrics: bool,
              reference: np.ndarray | None, field: bool = True,
              bdt_events: int = BDT_MAX_EVENTS) -> tuple[dict[str, float], np.ndarray]:
    """:func:`evaluate_on_device`, also returning the generated sample in scaled units."""
    if isinstance(device, DeviceQINN):
        dq = device.reseed(seed + SHOT_SEED_OFFSET)
    else:
        dq = DeviceQINN(trained.model, device, seed=seed + SHOT_SEED_OFFSET)
    truth = np.asarray(trained.data.sample.test, dtype=np.float64)
    out: dict[str, float] = {}
    start = time.perf_counter()
    u = dq.generate_scaled(n_generate, latent_seed=seed, latent_dtype=next(trained.model.parameters()).dtype)
    out["seconds_generate"] = time.perf_counter() - start
    finite = np.all(np.isfinite(u), axis=1)
    generated = trained.data.scaler.inverse(u[finite])
    out["n_generated"] = int(len(generated))
    if reference is not None:
        both = finite & np.all(np.isfinite(reference), axis=1)
        out["angle_error"] = float(np.sqrt(np.mean((u[both] - reference[both]) ** 2)))
    dist = distances.observable_distances(truth, generated, observables=OBSERVABLES)
    for o in OBSERVABLES:
        out[f"js/{o}"], out[f"w1/{o}"] = dist[o]["js"], dist[o]["w1"]
    c2st = two_sample.classifier_auc(truth, generated, seed=seed, **dict(classifier or {}))
    out["auc"], out["auc_sem"] = c2st["auc"], c2st["auc_sem"]
    if field:
        out.update(field_metrics(truth, generated, seed=seed, bdt_events=bdt_events))
    if event_metrics:
        out.update(_event_metrics(dq, trained, n_test))
    return out, u


def _event_metrics(dq: DeviceQINN, trained: Any, n_test: int) -> dict[str, float]:
    x = trained.data.test[:n_test]
    start = time.perf_counter()
    dev = evaluate.reconstruction_deviation(x, dq.reconstruct(x))
    out = {"seconds_recon": time.perf_counter() - start, "recon_mean": dev["mean"], "recon_sem": dev["sem"],
           "recon_n_nonfinite": dev["n_nonfinite"]}
    start = time.perf_counter()
    nll = dq.nll_per_event(x, log_abs_det_scaling=trained.data.scaler.log_abs_det)
    out["seconds_nll"] = time.perf_counter() - start
    finite = np.isfinite(nll)
    out["nll"] = float(nll.mean())  # inf/NaN if any event's measured Jacobian is singular
    out["nll_sem"] = float(nll.std(ddof=1) / math.sqrt(nll.size)) if nll.size > 1 else float("nan")
    out["nll_median"] = float(np.median(nll[finite])) if finite.any() else float("nan")
    out["nll_n_nonfinite"] = int((~finite).sum())
    out["n_test"] = int(len(x))
    return out


def _device_info(device: Device) -> dict[str, Any]:
    return {"label": device.label, "shots": device.shots,
            "channel": None if device.noise is None else device.noise.channel,
            "p": None if device.noise is None else device.noise.p}


def sweep(trained: Any, devices: Sequence[Device], *, seeds: Sequence[int], n_generate: int, n_test: int,
          classifier: Mapping[str, Any] | None = None, log: Callable[[str], None] = print, field: bool = True,
          bdt_events: int = BDT_MAX_EVENTS) -> list[dict[str, Any]]:
    """Evaluate ``trained`` on every device for every seed, the exact device (``Device()``) first,
    whether given or not; ``field`` and ``bdt_events`` as in :func:`evaluate_on_device`.

    Returns one results record per (device, seed) in the layout of :func:`metrics.make_record`
    (``label`` = the device label, ``seed`` = the evaluation seed, ``config`` = the training
    configuration plus the device), so :func:`metrics.summarise` and :func:`metrics.write_results`
    take them as they are.
    """
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"sweep: seeds must be distinct and non-empty, got {list(seeds)}")
    # the exact device first: its samples are the references of the angle errors
    devices = [Device()] + [d for d in devices if d != Device()]
    references: dict[int, np.ndarray] = {}
    records = []
    for device in devices:
        fixed: dict[str, float] | None = None  # seed-independent event metrics of a shot-free device
        start = time.perf_counter()
        on_device = DeviceQINN(trained.model, device, seed=0)  # circuits built once, reseeded per seed
        for s in seeds:
            values, u = _evaluate(trained, on_device, seed=s, n_generate=n_generate, n_test=n_test,
                                  classifier=classifier, event_metrics=fixed is None, reference=references.get(s),
                                  field=field, bdt_events=bdt_events)
            if s not in references:  # the exact device: its own reference
                references[s], values["angle_error"] = u, 0.0
            if device.shots is None:
                # measured once; later seeds reuse the values (not the time, which was not spent again)
                fixed = fixed or {k: v for k, v in values.items() if k not in _SAMPLE_KEYS and not k.startswith("seconds")}
                values.update(fixed)
            info = _device_info(device)
            records.append({"label": device.label, "kind": "device", "device": info,
                            "config": {**trained.cfg.to_dict(), "device": info},
                            "config_fingerprint": trained.cfg.fingerprint(),
                            "data_fingerprint": trained.data.fingerprint, "seed": int(s), "metrics": values})
        last = records[-1]["metrics"]
        extra = f", FPD {last['fpd']:.4f}, BDT AUC {last['auc_bdt']:.3f}" if field else ""
        log(f"[{device.label}] {len(seeds)} seed(s) in {time.perf_counter() - start:.1f} s: "
            f"JS(M_ll) {last['js/m_ll']:.4f}, AUC {last['auc']:.3f}{extra}, recon {100 * last['recon_mean']:.2f} %, "
            f"NLL {last['nll']:.3f}")
    return records


#: Keys of :func:`evaluate_on_device` that depend on the evaluation seed even without shots.
_SAMPLE_KEYS = frozenset(SAMPLE_METRICS) | frozenset(FIELD_METRICS) | {"auc_sem", "seconds_generate", "n_generated",
                                                                      "angle_error", "seconds_field"}


def summarise_sweep(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`metrics.summarise` of the sweep's records (mean, std and values over evaluation
    seeds per device), each row with its ``device`` (label, shots, channel, p) added."""
    rows = ensemble_tables.summarise(records)
    devices = {r["label"]: r["device"] for r in records}
    for row in rows:
        row["device"] = devices[row["label"]]
    return rows


def _uncertainty(stats: Mapping[str, Any], sem: Mapping[str, Any] | None) -> float:
    """Seed spread (0 when the value did not change between seeds) combined with the standard error
    over events for per-event averages."""
    spread = float(stats["std"]) if stats["n"] > 1 else float("nan")
    if sem is None:
        return spread
    return math.hypot(spread if math.isfinite(spread) else 0.0, float(sem["mean"]))


def uncertainty(row_metrics: Mapping[str, Any], metric: str) -> float:
    """The uncertainty of ``metric`` in one summarised row (see the module docstring)."""
    sem = row_metrics.get(f"{metric.removesuffix('_mean')}_sem") if metric in EVENT_METRICS else None
    return _uncertainty(row_metrics[metric], sem)


def as_good_as_exact(rows: Sequence[Mapping[str, Any]], label: str, metric: str, *,
                     n_spreads: float = 2.0) -> dict[str, Any]:
    """Is ``metric`` of device ``label`` as good as with exact simulation?

    Returns ``exact``, ``value`` (seed means), ``diff = value - exact``, ``tolerance`` (``n_spreads``
    combined uncertainties, see the module docstring) and ``ok``: True when ``diff <= tolerance``
    (``|diff| <= tolerance`` for the :data:`TWO_SIDED` metrics), False when worse by more, None
    when the uncertainty is unknown (a single evaluation seed).
    """
    by_label = {r["label"]: r["metrics"] for r in rows}
    if EXACT not in by_label or label not in by_label:
        raise ValueError(f"as_good_as_exact: need rows for {EXACT!r} and {label!r}, have {sorted(by_label)}")
    ex, dv = by_label[EXACT], by_label[label]
    if metric not in ex or metric not in dv:
        raise ValueError(f"as_good_as_exact: no metric {metric!r}; have {sorted(ex)}")
    u = math.hypot(uncertainty(ex, metric), uncertainty(dv, metric))
    diff = float(dv[metric]["mean"]) - float(ex[metric]["mean"])
    tolerance = n_spreads * u
    off = abs(diff) if metric in TWO_SIDED else diff
    ok = None if not math.isfinite(tolerance) else bool(off <= tolerance) if math.isfinite(diff) else False
    return {"exact": float(ex[metric]["mean"]), "value": float(dv[metric]["mean"]), "diff": diff,
            "tolerance": tolerance, "ok": ok}


def _all_ok(rows, label: str, metric_names: Sequence[str]) -> bool | None:
    verdicts = [as_good_as_exact(rows, label, m)["ok"] for m in metric_names]
    if any(v is False for v in verdicts):
        return False
    return None if any(v is None for v in verdicts) else True


all_as_good = _all_ok  # every one of the metrics as good as exact: True / False / None (undecided)


def shots_threshold(rows: Sequence[Mapping[str, Any]], metric_names: Sequence[str]) -> int | None:
    """The smallest shot count N (noiseless rows) from which on every larger N in the sweep is as
    good as exact simulation on all ``metric_names``; None if not even the largest N is."""
    shot_rows = sorted((r for r in rows if r["device"]["shots"] is not None and r["device"]["channel"] is None),
                       key=lambda r: r["device"]["shots"])
    threshold = None
    for r in reversed(shot_rows):
        if _all_ok(rows, r["label"], metric_names) is not True:
            break
        threshold = r["device"]["shots"]
    return threshold


def noise_threshold(rows: Sequence[Mapping[str, Any]], channel: str, metric_names: Sequence[str]) -> float | None:
    """The largest noise strength p of ``channel`` (exact expectation values) up to which every
    smaller p in the sweep is as good as exact simulation on all ``metric_names``; None if not even
    the smallest is."""
    noise_rows = sorted((r for r in rows if r["device"]["channel"] == channel and r["device"]["shots"] is None),
                        key=lambda r: r["device"]["p"])
    threshold = None
    for r in noise_rows:
        if _all_ok(rows, r["label"], metric_names) is not True:
            break
        threshold = r["device"]["p"]
    return threshold


def plot_sweep(rows: Sequence[Mapping[str, Any]], metric_names: Sequence[str], *, x: str,
               labels: Mapping[str, str] | None = None, ncols: int = 4, judged: Sequence[str] | None = None):
    """One panel per metric against the shot count (``x="shots"``) or the noise strength of every
    channel (``x="p"``): seed mean with ±1 std error bars, the exact-simulation value as a line
    with a band of ±2 of its own uncertainties; a cross marks a point that is worse than exact
    simulation by more than 2 combined uncertainties (:func:`as_good_as_exact`). ``judged``: the
    metrics drawn so (default: those of :data:`GROUPS`); any other is a diagnostic (no line, no
    crosses), as ``angle_error``."""
    import matplotlib.pyplot as plt

    if x not in ("shots", "p"):
        raise ValueError(f"plot_sweep: x must be 'shots' or 'p', got {x!r}")
    labels = {**METRIC_LABELS, **dict(labels or {})}
    if x == "shots":
        series = {"shots": [r for r in rows if r["device"]["shots"] is not None and r["device"]["channel"] is None]}
    else:
        channels = sorted({r["device"]["channel"] for r in rows if r["device"]["channel"]})
        series = {c: [r for r in rows if r["device"]["channel"] == c and r["device"]["shots"] is None] for c in channels}
    nrows = math.ceil(len(metric_names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows + 0.4), squeeze=False, layout="constrained")
    exact = next(r for r in rows if r["label"] == EXACT)["metrics"]
    judged = set(judged) if judged is not None else {m for names in GROUPS.values() for m in names}
    for ax, metric in zip(axes.flat, metric_names):
        ref = exact[metric]["mean"]
        diagnostic = metric not in judged  # e.g. angle_error: 0 when exact
        for name, group in series.items():
            group = sorted(group, key=lambda r: r["device"][x])
            xs = [r["device"][x] for r in group]
            means = np.array([r["metrics"][metric]["mean"] for r in group])
            stds = np.array([r["metrics"][metric]["std"] if r["metrics"][metric]["n"] > 1 else 0.0 for r in group])
            ok = [None if diagnostic else as_good_as_exact(rows, r["label"], metric)["ok"] for r in group]
            line = ax.errorbar(xs, means, yerr=np.nan_to_num(stds), marker="o", ms=3, capsize=2,
                               label=name.replace("_", " ") if x == "p" else "finite shots")
            bad = [i for i, v in enumerate(ok) if v is False]
            ax.plot([xs[i] for i in bad], means[bad], "x", color=line[0].get_color(), ms=7)
        if not diagnostic:
            tol = 2.0 * uncertainty(exact, metric)
            ax.axhline(ref, color="black", lw=1, label="exact simulation")
            if math.isfinite(tol):
                ax.axhspan(ref - tol, ref + tol, color="black", alpha=0.1, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("shots per circuit N" if x == "shots" else "noise strength p per gate")
        ax.set_title(labels.get(metric, metric))
        values = [r["metrics"][metric]["mean"] for g in series.values() for r in g] + ([] if diagnostic else [ref])
        if min(values) > 0 and max(values) > 10 * min(values):  # log only where the values span a decade
            ax.set_yscale("log")
        else:  # plain tick labels: an AUC pinned at 1 would otherwise read "1e-6+1" above its axis
            ax.ticklabel_format(axis="y", useOffset=False)
    spare = list(axes.flat)[len(metric_names):]
    for ax in spare:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if spare:
        spare[0].legend(handles, names, loc="center")
    else:  # above the panels: a legend inside one would cover its curves (issue 23)
        fig.legend(handles, names, loc="outside upper center", ncol=len(names))
    return fig


def _fmt_shots(n: int) -> str:
    exponent = math.log10(n)
    return f"10^{exponent:.0f}" if exponent.is_integer() else f"{n:,}"


def _format_cell(stats: Mapping[str, Any]) -> str:
    """``mean ± std`` with two significant digits of the std but at most four of the mean; a std
    below the mean's fourth digit as ``71.62 ± 5e-07``; the mean alone without a spread."""
    mean, std = float(stats["mean"]), float(stats["std"]) if stats["n"] > 1 else float("nan")
    if not math.isfinite(mean):
        return str(mean)
    if not (math.isfinite(std) and std > 1e-12 * abs(mean)):  # no spread, or float rounding only
        return f"{mean:#.4g}"
    sig = lambda v, k: max(0, k - 1 - math.floor(math.log10(abs(v)))) if v else 0  # noqa: E731
    d = min(sig(std, 2), sig(mean, 4)) if mean else sig(std, 2)
    if round(std, d) == 0:  # the spread is below the 4th digit of the mean
        return f"{mean:#.4g}{PM}{std:.0e}"
    return f"{mean:.{d}f}{PM}{std:.{d}f}"


format_cell = _format_cell  # public name for the tables of qinn_lib.hardware.field_measures


def verdict_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                  groups: Mapping[str, Sequence[str]] = GROUPS) -> str:
    """Markdown table: one line per device, the seed mean ± std of ``columns``, then for every
    group of metrics whether the device is as good as exact simulation on all of them (yes / no /
    undecided)."""
    header = ["device", *columns, *(f"{g} as exact?" for g in groups)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    words = {True: "yes", False: "no", None: "undecided"}
    for r in rows:
        cells = [nowrap(r["label"])]
        for c in columns:
            cells.append(nowrap(_format_cell(r["metrics"][c])))
        for names in groups.values():
            cells.append("–" if r["label"] == EXACT else words[_all_ok(rows, r["label"], names)])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def thresholds(rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]] = GROUPS) -> dict[str, Any]:
    """:func:`shots_threshold` and :func:`noise_threshold` of every channel, for every group:
    ``{"shots": {group: N or None}, "<channel>": {group: p or None}, ...}``."""
    channels = sorted({r["device"]["channel"] for r in rows if r["device"]["channel"]})
    out: dict[str, Any] = {"shots": {g: shots_threshold(rows, names) for g, names in groups.items()}}
    for c in channels:
        out[c] = {g: noise_threshold(rows, c, names) for g, names in groups.items()}
    return out


def statement(rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]] = GROUPS) -> str:
    """The plain-words answer, computed from the rows: from which shot count on, and up to which
    noise strength, the distributions, the inverse and the NLL stay as good as exact simulation."""
    found = thresholds(rows, groups)
    shot_grid = sorted(r["device"]["shots"] for r in rows if r["device"]["shots"] is not None
                       and r["device"]["channel"] is None)
    parts = []
    if shot_grid:
        said = []
        for g, n in found["shots"].items():
            if n is None:
                worst = next(r for r in rows if r["device"]["shots"] == shot_grid[-1] and r["device"]["channel"] is None)
                failing = [m for m in groups[g] if as_good_as_exact(rows, worst["label"], m)["ok"] is not True]
                said.append(f"the {g} at none of the shot counts up to N = {_fmt_shots(shot_grid[-1])} "
                            f"(there, {', '.join(failing)} still differ{'s' if len(failing) == 1 else ''})")
            else:
                said.append(f"the {g} from N = {_fmt_shots(n)}")
        parts.append(f"With finite shots ({_fmt_shots(shot_grid[0])} to {_fmt_shots(shot_grid[-1])} per circuit, "
                     "no gate noise), the QINN is as good as exact simulation for " + "; ".join(said) + ".")
    for channel, by_group in found.items():
        if channel == "shots":
            continue
        grid = sorted(r["device"]["p"] for r in rows if r["device"]["channel"] == channel and r["device"]["shots"] is None)
        said = [f"the {g} " + (f"up to p = {p:g}" if p is not None else f"not even at p = {grid[0]:g}")
                for g, p in by_group.items()]
        parts.append(f"With {channel.replace('_', ' ')} noise after every gate (p = {grid[0]:g} to {grid[-1]:g}, "
                     "exact expectation values): " + "; ".join(said) + ".")
    parts.append("'As good' means worse than exact simulation by at most two combined uncertainties (seed "
                 "spread of sample metrics, standard error over test events of the reconstruction and the NLL), "
                 "at this point and at every more favourable one in the scan.")
    return " ".join(parts)
