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

Verdict (:func:`as_good_as_exact`, decided by :mod:`qinn_lib.hardware.equivalence`): a device
result is as good as exact simulation when a two one-sided test (TOST) puts it within the declared
margin of the exact value (×1.25 either way for the log-scale metrics, ±0.05 nats/event for the NLL),
not as good when a two-sided test finds a difference outside the margin, and undecided otherwise.
The tests are paired: over evaluation seeds for the metrics of a generated sample, over test events
for the reconstruction deviation and the NLL (computed here, in :func:`sweep`, where the per-event
values are at hand, and stored with each record as ``<metric>_p_tost``, ``_p_diff``, ``_diff_t``,
``_margin_t``). Every metric here is "lower is better" (AUC: closer to 0.5, while above it).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation import distances, ensemble_tables, evaluate, two_sample
from qinn_lib.evaluation.boosted_two_sample import BDT_FOLDS, BDT_MAX_EVENTS
from qinn_lib.evaluation.physics_distances import MIN_EVENTS
from qinn_lib.evaluation.statistics.verdicts import seed_pairs
from qinn_lib.hardware import equivalence
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.threads import native_threads

__all__ = [
    "SAMPLE_METRICS",
    "FIELD_METRICS",
    "EVENT_METRICS",
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
    "as_good_as_exact",
    "point_level",
    "shots_threshold",
    "noise_threshold",
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
                  bdt_events: int = BDT_MAX_EVENTS, bdt_folds: int = BDT_FOLDS) -> dict[str, float]:
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
            out = evaluate.field_metrics(truth, g, seed=seed, bdt_events=bdt_events, bdt_folds=bdt_folds)
    out["seconds_field"] = time.perf_counter() - start
    return out


def _evaluate(trained: Any, device: Device | DeviceQINN, *, seed: int, n_generate: int, n_test: int,
              classifier: Mapping[str, Any] | None, event_metrics: bool,
              reference: np.ndarray | None, field: bool = True,
              bdt_events: int = BDT_MAX_EVENTS) -> tuple[dict[str, float], np.ndarray, dict[str, np.ndarray]]:
    """:func:`evaluate_on_device`, also returning the generated sample in scaled units and the
    per-event values of :data:`EVENT_METRICS` (empty without ``event_metrics``)."""
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
        out.update(field_metrics(truth, generated, seed=seed, bdt_events=bdt_events,
                                 bdt_folds=evaluate.bdt_folds_for(trained.cfg)))
    per_event: dict[str, np.ndarray] = {}
    if event_metrics:
        values, per_event = _event_metrics(dq, trained, n_test)
        out.update(values)
    return out, u, per_event


def _event_metrics(dq: DeviceQINN, trained: Any, n_test: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    x = trained.data.test[:n_test]
    start = time.perf_counter()
    x_rec = dq.reconstruct(x)
    dev = evaluate.reconstruction_deviation(x, x_rec)
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
    return out, {"recon_mean": evaluate.relative_deviation(x, x_rec), "nll": np.asarray(nll, dtype=np.float64)}


def _event_tests(exact: Mapping[str, np.ndarray], device: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """The paired tests (:func:`equivalence.paired_tests`) of each event metric of a device against
    exact simulation over the same test events; a device measured with several seeds (shots)
    contributes each event's mean over the seeds."""
    out: dict[str, float] = {}
    for m in EVENT_METRICS:
        values = np.mean([d[m] for d in device], axis=0)
        t = equivalence.paired_tests(exact[m], values, m)
        out.update({f"{m}_{k}": float(t[k]) for k in _TEST_KEYS})
    return out


#: The stored results of :func:`equivalence.paired_tests` per event metric (see the module docstring).
_TEST_KEYS = ("p_tost", "p_diff", "diff_t", "margin_t")


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
    exact_events: dict[str, np.ndarray] = {}
    records = []
    for device in devices:
        fixed: dict[str, float] | None = None  # seed-independent event metrics of a shot-free device
        start = time.perf_counter()
        on_device = DeviceQINN(trained.model, device, seed=0)  # circuits built once, reseeded per seed
        per_event: list[dict[str, np.ndarray]] = []
        first = len(records)
        for s in seeds:
            values, u, events = _evaluate(trained, on_device, seed=s, n_generate=n_generate, n_test=n_test,
                                          classifier=classifier, event_metrics=fixed is None,
                                          reference=references.get(s), field=field, bdt_events=bdt_events)
            if events:
                per_event.append(events)
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
        if not exact_events:  # the exact device comes first: its per-event values pair with every device's
            exact_events = {m: per_event[0][m] for m in EVENT_METRICS}
        else:
            tests = _event_tests(exact_events, per_event)
            for r in records[first:]:
                r["metrics"].update(tests)
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


def _axes_count(rows: Sequence[Mapping[str, Any]]) -> int:
    """Scan axes of the sweep: the shot axis (if any) and one per noise channel."""
    shots = any(r["device"]["shots"] is not None and r["device"]["channel"] is None for r in rows)
    return max(1, int(shots) + len({r["device"]["channel"] for r in rows if r["device"]["channel"]}))


def point_level(rows: Sequence[Mapping[str, Any]]) -> float:
    """The level of each point test in this sweep (:func:`equivalence.point_level` of its axes)."""
    return equivalence.point_level(_axes_count(rows))


def as_good_as_exact(rows: Sequence[Mapping[str, Any]], label: str, metric: str, *,
                     level: float | None = None) -> dict[str, Any]:
    """Is ``metric`` of device ``label`` as good as with exact simulation?

    Returns ``exact``, ``value`` (seed means), ``diff = value - exact``, the tests
    (:func:`equivalence.paired_tests`: ``p_tost``, ``p_diff``, ``diff_t`` and ``margin_t`` on the
    tested scale; paired over seeds for a sample metric, read from the record for an event metric,
    where :func:`sweep` paired them over test events), ``level`` (default :func:`point_level`) and
    ``ok``: True when equivalent within the margin, False when a difference outside it is found (or
    the device value is not finite), None when undecided (e.g. a single evaluation seed).
    """
    by_label = {r["label"]: r["metrics"] for r in rows}
    if EXACT not in by_label or label not in by_label:
        raise ValueError(f"as_good_as_exact: need rows for {EXACT!r} and {label!r}, have {sorted(by_label)}")
    ex, dv = by_label[EXACT], by_label[label]
    if metric not in ex or metric not in dv:
        raise ValueError(f"as_good_as_exact: no metric {metric!r}; have {sorted(ex)}")
    level = point_level(rows) if level is None else level
    if metric in EVENT_METRICS:
        stored = {k: dv.get(f"{metric}_{k}") for k in _TEST_KEYS}
        if any(v is None for v in stored.values()):
            raise ValueError(f"as_good_as_exact: device {label!r} has no paired tests of {metric!r} "
                             f"({metric}_p_tost, ...); rerun the sweep (sweeps.sweep) to record them")
        tests = {k: float(v["mean"]) for k, v in stored.items()}
    else:
        tests = equivalence.paired_tests(*seed_pairs(ex[metric], dv[metric]), metric)
    value, exact = float(dv[metric]["mean"]), float(ex[metric]["mean"])
    out = {"exact": exact, "value": value, "diff": value - exact, "margin": equivalence.margin(metric),
           "level": level, **{k: tests[k] for k in _TEST_KEYS}}
    out["ok"] = False if not math.isfinite(value) else equivalence.verdict(tests, level)
    return out


def _all_ok(rows, label: str, metric_names: Sequence[str]) -> bool | None:
    level = point_level(rows)
    verdicts = [as_good_as_exact(rows, label, m, level=level)["ok"] for m in metric_names]
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
                ok = {m: as_good_as_exact(rows, worst["label"], m)["ok"] for m in groups[g]}
                worse = [m for m, v in ok.items() if v is False]
                open_ = [m for m, v in ok.items() if v is None]
                there = ([f"{', '.join(worse)} differ{'s' if len(worse) == 1 else ''} beyond the margin"] if worse else []) + \
                    ([f"{', '.join(open_)} undecided"] if open_ else [])
                said.append(f"the {g} at none of the shot counts up to N = {_fmt_shots(shot_grid[-1])} "
                            f"(there, {'; '.join(there)})")
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
    parts.append(f"'As good' means equivalent to exact simulation by a two one-sided test (TOST) against a margin "
                 f"of ×{equivalence.RATIO_MARGIN:g} either way (AUC: of AUC − ½; NLL: ±{equivalence.NLL_MARGIN:g} "
                 "nats/event), paired over the evaluation seeds (sample metrics) or the test events (reconstruction, "
                 f"NLL), every metric of the group at p < {point_level(rows):.2g} (α = 0.05 over the notebook's "
                 f"{_axes_count(rows) * equivalence.STATEMENTS_PER_AXIS} threshold statements), at this point and "
                 "at every more favourable one in the scan; 'not as good' means a difference outside the margin "
                 "at that level; otherwise undecided.")
    return " ".join(parts)
