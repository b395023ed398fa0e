"""The field's measures on the calibrated devices of notebook 07: FPD, KPD and the boosted-tree
AUCs of every backend's generated sample (as read, readout-mitigated, shots alone) beside exact
simulation of the same latent points, and where they order the samples otherwise than JS(M_ll)
or change the device verdict.

:func:`qinn_lib.hardware.ibm.study.study_backend` records the measures (``sweeps.field_metrics``:
notebooks 03-06's functions and defaults) with their own errors: the FPD's extrapolation error, the
KPD's batch spread, the AUC's fold spread. A device sample is one sample of ``device_generate``
events, so there is no seed spread here: a difference counts when a two-sided z-test on the two own
errors decides it, Holm-corrected over every comparison of a statement (the FPD's error is the
fit's and leaves out the sample-to-sample spread, so this is the weaker test for it:
:mod:`qinn_lib.evaluation.physics_distances`).

Nothing here imports Qiskit: it reads the studies' plain-JSON summaries.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from qinn_lib.evaluation.statistics import ALPHA
from qinn_lib.evaluation.statistics import hypothesis_tests as ht
from qinn_lib.hardware.field_measures import FIELD_COLUMNS, FIELD_LABELS, field_thresholds
from qinn_lib.hardware.ibm.placement import REFERENCE_CHANNEL, place
from qinn_lib.hardware.sweeps import PM, nowrap

__all__ = ["SHOWN", "has_field", "field_table", "device_orderings", "field_verdicts", "field_statement"]

#: The samples of one study shown, with their names.
SHOWN = {"raw": "as read", "mitigated": "readout-mitigated", "shots_only": "shots only (exact circuits)",
         "exact": "exact simulation"}


def has_field(summaries: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every study recorded finite field measures (a sample of fewer than 100 events has none)."""
    return bool(summaries) and all(math.isfinite(float(s["generation"][k].get("fpd", math.nan)))
                                   for s in summaries for k in SHOWN)


def _cell(values: Mapping[str, Any], metric: str) -> str:
    v, e = float(values.get(metric, math.nan)), float(values.get(f"{metric}_err", math.nan))
    if not math.isfinite(v):
        return "–"
    digits = max(2, 1 - math.floor(math.log10(e))) if math.isfinite(e) and e > 0 else 3
    digits = min(digits, 5)
    return f"{v:.{digits}f}{PM}{e:.{digits}f}" if math.isfinite(e) else f"{v:.{digits}f}"


def field_table(summaries: Sequence[Mapping[str, Any]], columns: Sequence[str] = FIELD_COLUMNS) -> str:
    """Markdown: per backend and sample (:data:`SHOWN`) the field's measures ± their own errors and
    JS(M_ll), all against the test split."""
    head = ["backend", "sample", "events", *(FIELD_LABELS.get(c, c) for c in columns), "JS(M_ll)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for s in summaries:
        g = s["generation"]
        for k, name in SHOWN.items():
            lines.append("| " + " | ".join(nowrap(c) for c in [
                s["backend"], name, f"{g['n']:,}", *(_cell(g[k], c) for c in columns), f"{g[k]['js/m_ll']:.3f}",
            ]) + " |")
    return "\n".join(lines)


def _decided(items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], str]],
             alpha: float = ALPHA) -> list[float]:
    """For each (a, b, metric): ``b - a`` when a two-sided z-test on the two own errors finds the
    difference (``scipy.stats.norm``; Holm over every item, ``statsmodels``), else 0 (undecided, or
    an error unknown). One sample per device, so the own errors are all there is to test with."""
    from scipy import stats  # deferred: scipy.stats is slow to import

    diffs, ps = [], []
    for a, b, m in items:
        d = float(b.get(m, math.nan)) - float(a.get(m, math.nan))
        u = math.hypot(float(a.get(f"{m}_err", math.nan)), float(b.get(f"{m}_err", math.nan)))
        diffs.append(d)
        ps.append(float(2.0 * stats.norm.sf(abs(d) / u)) if math.isfinite(d) and math.isfinite(u) and u > 0 else math.nan)
    return [d if ph < alpha else 0.0 for d, ph in zip(diffs, ht.holm(ps, alpha=alpha))]


def device_orderings(summaries: Sequence[Mapping[str, Any]], columns: Sequence[str] = FIELD_COLUMNS,
                     reference: str = "js/m_ll") -> list[dict[str, Any]]:
    """Pairs of samples that a field measure orders (difference decided by :func:`_decided`) the other way
    round from ``reference`` (by its values): within each backend as read against mitigated, and
    the backends' raw samples against each other. Entries: ``metric``, ``better``, ``worse``."""
    pairs = []
    for s in summaries:
        g = s["generation"]
        pairs.append((f"{s['backend']} as read", g["raw"], f"{s['backend']} mitigated", g["mitigated"]))
    for i, a in enumerate(summaries):
        for b in summaries[i + 1:]:
            pairs.append((a["backend"], a["generation"]["raw"], b["backend"], b["generation"]["raw"]))
    decided = iter(_decided([(a, b, m) for _, a, _, b in pairs for m in columns]))
    found = []
    for name_a, a, name_b, b in pairs:
        ref = float(b[reference]) - float(a[reference])
        for m in columns:
            d = next(decided)
            if ref * d < 0:
                better, worse = (name_b, name_a) if d < 0 else (name_a, name_b)
                found.append({"metric": m, "better": better, "worse": worse})
    return found


def field_verdicts(summaries: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                   channel: str = REFERENCE_CHANNEL) -> list[dict[str, Any]]:
    """Per backend: usable by notebook 07's threshold of the distributions and by the field's
    measures' threshold (``placement.place`` with each), and the two thresholds."""
    th = field_thresholds(rows)
    ours = {channel: {"distributions": th["ours"].get(channel)}}
    field = {channel: {"distributions": th["field"].get(channel)}}
    out = []
    for s in summaries:
        a, b = place(s, rows, ours)[channel], place(s, rows, field)[channel]
        out.append({"backend": s["backend"], "threshold": a["threshold"], "field_threshold": b["threshold"],
                    "usable": a["usable"], "field_usable": b["usable"]})
    return out


def field_statement(summaries: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                    columns: Sequence[str] = FIELD_COLUMNS, channel: str = REFERENCE_CHANNEL) -> str:
    """The words, computed from the studies and the sweep: each device's field measures against
    exact simulation's, whether the verdict changes with the field's threshold, and the orderings
    that differ from JS(M_ll)'s."""
    words = {True: "usable", False: "not usable", None: "undecided"}
    parts = []
    decided = iter(_decided([(s["generation"]["exact"], s["generation"]["raw"], m) for s in summaries for m in columns]))
    for s in summaries:
        g = s["generation"]
        worse = [FIELD_LABELS.get(m, m) for m in columns if next(decided) > 0]
        said = ", ".join(f"{FIELD_LABELS.get(m, m)} {g['raw'][m]:.3g} (exact {g['exact'][m]:.3g})" for m in columns)
        parts.append(f"On {s['backend']} ({g['n']:,} events): {said}; "
                     + (f"worse than exact simulation (z-test on the two own errors, Holm over the devices and measures) by "
                        f"{len(worse)} of {len(columns)} "
                        "measures" + (f" ({', '.join(worse)})" if len(worse) < len(columns) else "")
                        if worse else "by no measure decidedly worse than exact simulation (z-test on the two own errors, Holm)")
                     + ".")
    verdicts = field_verdicts(summaries, rows, channel)
    changed = [v for v in verdicts if v["usable"] != v["field_usable"]]
    th_ours, th_field = (verdicts[0]["threshold"], verdicts[0]["field_threshold"]) if verdicts else (None, None)
    fmt = lambda p: f"p = {p:g}" if p is not None else "no scanned p"  # noqa: E731
    if changed:
        parts.append(f"With the field's measures' threshold ({fmt(th_field)} of {channel} noise, against "
                     f"{fmt(th_ours)} by JS, W1 and the MLP AUC) the verdict changes: "
                     + "; ".join(f"{v['backend']} {words[v['usable']]} -> {words[v['field_usable']]}" for v in changed)
                     + ".")
    else:
        parts.append(f"With the field's measures' threshold ({fmt(th_field)} of {channel} noise, against "
                     f"{fmt(th_ours)} by JS, W1 and the MLP AUC) the verdict is the same: "
                     + "; ".join(f"{v['backend']} {words[v['field_usable']]}" for v in verdicts) + ".")
    swaps = device_orderings(summaries, columns)
    if swaps:
        parts.append("Orderings that differ from JS(M_ll)'s (the field measure's difference decided by a z-test on "
                     "the two own errors, Holm over every pair and measure): "
                     + "; ".join(f"{FIELD_LABELS.get(x['metric'], x['metric'])} ranks {x['better']} better than "
                                 f"{x['worse']}" for x in swaps) + ".")
    else:
        parts.append("No field measure orders the devices, or a device as read and mitigated, the other way round "
                     "from JS(M_ll) with the difference decided (z-test on the two own errors, Holm).")
    return " ".join(parts)
