"""The field's measures on notebook 07's sweep: FPD, KPD and the boosted-tree AUCs of every device
beside the verdicts of :mod:`qinn_lib.hardware.sweeps`, and what they change.

The sweep records, per device and evaluation seed, the measures of notebooks 03-06
(:func:`qinn_lib.evaluation.evaluate.field_metrics`, :data:`~qinn_lib.hardware.sweeps.FIELD_METRICS`):
the Fréchet and kernel physics distances of the five features (Kansal et al. 2023) and the
boosted-tree classifier AUC on the raw features and with M_ll and Delta R added, each with its own
error (the FPD's extrapolation error, the KPD's batch spread, the AUC's fold spread). Here:

- :func:`field_table`: one line per device, each measure as seed mean ± seed std with the mean of
  its own error over seeds in brackets, then whether the distributions are as good as exact
  simulation by notebook 07's metrics (``sweeps.GROUPS``) and by these measures (:data:`FIELD_GROUPS`);
- :func:`field_thresholds`: the "as good as exact" thresholds by the field's measures, together and
  one by one, with the same rule as notebook 07's (``sweeps.as_good_as_exact``: equivalent to exact
  by a TOST against the declared margin, :mod:`qinn_lib.hardware.equivalence`, at this point and at
  every more favourable one);
- :func:`orderings`: where a measure orders two devices the other way round from JS(M_ll), both
  differences decided by paired t-tests over the evaluation seeds, Holm-corrected (neighbours on
  each scan axis, and the two noise channels at one p);
- :func:`field_statement`: the words, computed from the rows: the thresholds beside notebook 07's,
  the same or not, and the orderings that differ.

Every measure here is lower-is-better (AUC: closer to 0.5, from above), as the sweep's metrics.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation.statistics import ALPHA, transforms
from qinn_lib.evaluation.statistics import hypothesis_tests as ht
from qinn_lib.evaluation.statistics.verdicts import seed_pairs
from qinn_lib.hardware import sweeps

__all__ = ["FIELD_COLUMNS", "FIELD_GROUPS", "FIELD_LABELS", "REFERENCE_METRIC", "field_cell", "field_table",
           "field_thresholds", "orderings", "field_statement"]

#: The field's measures shown (each with its ``_err``).
FIELD_COLUMNS: tuple[str, ...] = ("fpd", "kpd", "auc_bdt", "auc_bdt_derived")
#: The group the field's measures decide "as good as exact" for.
FIELD_GROUPS: dict[str, tuple[str, ...]] = {"distributions": FIELD_COLUMNS}
#: Their names in tables and sentences.
FIELD_LABELS = {"fpd": "FPD", "kpd": "KPD", "auc_bdt": "boosted-tree AUC",
                "auc_bdt_derived": "boosted-tree AUC with M_ll, ΔR"}
#: The metric whose ordering of the devices the field's measures are held against.
REFERENCE_METRIC = "js/m_ll"


def _sig(value: float, digits: int = 1) -> str:
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3:  # 3e-08, not 0.00000003
        return f"{value:.{digits - 1}e}"
    return f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"


def field_cell(row_metrics: Mapping[str, Any], metric: str) -> str:
    """``mean ± std [± err]``: seed mean and spread of ``metric``, and in brackets the mean over seeds
    of its own error (``metric + "_err"``), one significant digit."""
    cell = sweeps.format_cell(row_metrics[metric])
    err = row_metrics.get(f"{metric}_err")
    if err is not None and math.isfinite(float(err["mean"])):
        cell += f" [{sweeps.PM.strip()}{_sig(float(err['mean']))}]"
    return cell


def field_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = FIELD_COLUMNS) -> str:
    """Markdown: per device the field's measures (:func:`field_cell`) and whether the distributions
    are as good as exact by notebook 07's metrics and by these measures (yes / no / undecided)."""
    words = {True: "yes", False: "no", None: "undecided"}
    header = ["device", *(FIELD_LABELS.get(c, c) for c in columns), "distributions as exact? (JS, W1, MLP AUC)",
              "as exact by the field's measures?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        cells = [sweeps.nowrap(r["label"]), *(sweeps.nowrap(field_cell(r["metrics"], c)) for c in columns)]
        for names in (sweeps.GROUPS["distributions"], tuple(columns)):
            cells.append("–" if r["label"] == sweeps.EXACT else words[sweeps.all_as_good(rows, r["label"], names)])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def field_thresholds(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = FIELD_COLUMNS) -> dict[str, Any]:
    """``{"ours": {axis: N or p}, "field": {axis: ...}, "by_metric": {metric: {axis: ...}}}``: the
    distributions' thresholds (``sweeps.thresholds``) by notebook 07's metrics, by the field's
    measures together, and by each alone; axis is "shots" or a noise channel (None: not even the
    most favourable scanned point is as good as exact)."""
    ours = sweeps.thresholds(rows, {"distributions": sweeps.GROUPS["distributions"]})
    field = sweeps.thresholds(rows, {"distributions": tuple(columns)})
    by_metric = {m: {axis: v["distributions"] for axis, v in sweeps.thresholds(rows, {"distributions": (m,)}).items()}
                 for m in columns}
    return {"ours": {axis: v["distributions"] for axis, v in ours.items()},
            "field": {axis: v["distributions"] for axis, v in field.items()}, "by_metric": by_metric}


def _decided(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], metrics: Sequence[str],
             alpha: float = ALPHA) -> dict[tuple[int, str], float]:
    """For every pair (a, b) of summarised rows and metric: the difference of the means of b and a
    on the metric's tested scale when a paired t-test over the evaluation seeds (both rows are
    evaluated on the same latent samples and classifiers) finds it, Holm-corrected over every pair
    and metric tested here; else 0 (undecided, or no spread)."""
    tested: dict[tuple[int, str], tuple[float, float]] = {}
    for i, (a, b) in enumerate(pairs):
        for m in metrics:
            (ta, tb), _ = transforms.apply(m, *seed_pairs(a[m], b[m]))
            p = ht.paired_t(tb, ta)["p"]
            if math.isfinite(p):
                tested[(i, m)] = (p, float(np.mean(tb) - np.mean(ta)))
    p_holm = ht.holm([p for p, _ in tested.values()], alpha=alpha)
    return {k: (d if ph < alpha else 0.0) for (k, (_, d)), ph in zip(tested.items(), p_holm)}


def _axes(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    shots = sorted((r for r in rows if r["device"]["shots"] is not None and r["device"]["channel"] is None),
                   key=lambda r: r["device"]["shots"])
    out = {"shots": shots} if shots else {}
    for c in sorted({r["device"]["channel"] for r in rows if r["device"]["channel"]}):
        out[c] = sorted((r for r in rows if r["device"]["channel"] == c and r["device"]["shots"] is None),
                        key=lambda r: r["device"]["p"])
    return out


def orderings(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = FIELD_COLUMNS,
              reference: str = REFERENCE_METRIC) -> list[dict[str, Any]]:
    """Pairs of devices that a field measure orders the other way round from ``reference``, both
    differences decided by paired t-tests over the evaluation seeds (Holm over every pair and
    metric tested, :func:`_decided`): neighbours along each scan axis (the exact row
    first on the shot axis's far end and the noise axes' near end), and the two noise channels at
    every p they share. Each entry: ``metric``, ``better`` and ``worse`` (labels by the field
    measure), ``kind`` ("scan" or "channels")."""
    exact = next(r for r in rows if r["label"] == sweeps.EXACT)
    pairs: list[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = []
    for axis, scan in _axes(rows).items():
        chain = [*scan, exact] if axis == "shots" else [exact, *scan]
        pairs += [("scan", a, b) for a, b in zip(chain, chain[1:])]
    channels = [c for c in _axes(rows) if c != "shots"]
    for i, c1 in enumerate(channels):
        for c2 in channels[i + 1:]:
            by_p = {r["device"]["p"]: r for r in rows if r["device"]["channel"] == c2 and r["device"]["shots"] is None}
            pairs += [("channels", r, by_p[r["device"]["p"]]) for r in rows
                      if r["device"]["channel"] == c1 and r["device"]["shots"] is None and r["device"]["p"] in by_p]
    decided = _decided([(a["metrics"], b["metrics"]) for _, a, b in pairs], [reference, *columns])
    found = []
    for i, (kind, a, b) in enumerate(pairs):
        ref = decided.get((i, reference), 0.0)
        for m in columns:
            d = decided.get((i, m), 0.0)
            if ref * d < 0:  # both differences decided, with opposite signs
                better, worse = (b, a) if d < 0 else (a, b)
                found.append({"metric": m, "better": better["label"], "worse": worse["label"], "kind": kind})
    return found


def _fmt(axis: str, value: float | None) -> str:
    if axis == "shots":
        return f"N = {value:,.0f}" if value is not None else "none of the shot counts"
    return f"p = {value:g}" if value is not None else "not even the smallest p"


def field_statement(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = FIELD_COLUMNS) -> str:
    """The words: by the field's measures, from which shot count on and up to which noise strength
    the generated distributions are as good as exact simulation, beside notebook 07's thresholds
    (JS and W1 of M_ll and ΔR, the MLP AUC), whether that changes them, and the orderings that differ
    from JS(M_ll)'s (:func:`orderings`)."""
    th = field_thresholds(rows, columns)
    parts, changed = [], []
    for axis, ours in th["ours"].items():
        field = th["field"][axis]
        where = "With finite shots" if axis == "shots" else f"With {axis.replace('_', ' ')} noise"
        alone = ", ".join(f"{FIELD_LABELS.get(m, m)} {_fmt(axis, th['by_metric'][m][axis])}" for m in columns)
        if field == ours:
            verdict = f"the same as by JS, W1 and the MLP AUC ({_fmt(axis, ours)})"
        else:
            changed.append(axis)
            stricter = (field is None or (ours is not None and (field > ours if axis == "shots" else field < ours)))
            verdict = (f"not the same as by JS, W1 and the MLP AUC ({_fmt(axis, ours)}): the field's measures are "
                       f"{'stricter' if stricter else 'more lenient'}")
        lead = "from" if axis == "shots" else "up to"
        head = f"{lead} {_fmt(axis, field)}" if field is not None else f"at {_fmt(axis, None)}"
        parts.append(f"{where}, by the field's measures (FPD, KPD, both boosted-tree AUCs) the distributions are as "
                     f"good as exact {head}, {verdict}; one by one: {alone}.")
    swaps = orderings(rows, columns)
    if swaps:
        said = "; ".join(f"{FIELD_LABELS.get(s['metric'], s['metric'])} ranks {s['better']} better than {s['worse']}"
                         for s in swaps)
        parts.append(f"Orderings that differ from JS(M_ll)'s (both differences decided by paired t-tests over the "
                     "evaluation seeds, Holm-corrected over every neighbouring pair and measure): "
                     f"{said}.")
    else:
        parts.append("No field measure orders two neighbouring scan points, or the two channels at one p, the other "
                     "way round from JS(M_ll) with both differences decided (paired t-tests over the evaluation seeds, "
                     "Holm-corrected over every neighbouring pair and measure).")
    names = [a.replace("_", " ") for a in changed]
    axes = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    parts.append("So the thresholds above " + (f"change on the {axes} ax{'e' if len(names) > 1 else 'i'}s by the field's "
                                               "measures" if changed else "stand by the field's measures as well") + ".")
    return " ".join(parts)
