"""The findings of notebook 06 (why our QINN misses the paper) as data: each a statement tested
against the seed spread, grouped into those that fail because of the architecture and those
that depend on a reading of the paper, and the closing paragraph built from their verdicts.

Every statement is a :func:`qinn_lib.evaluation.ensemble_tables.claim_verdict` between two seed ensembles: "b is
lower / higher than a" holds when the difference of the seed means exceeds two combined seed
spreads; with one seed (quick profile) nothing is decided.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from qinn_lib.evaluation.diagnostics import HEADLINE_READING, READINGS
from qinn_lib.evaluation.ensemble_tables import claim_verdict, summarise
from qinn_lib.evaluation.records import read_results
from qinn_lib.evaluation.results import results_path

__all__ = ["CATEGORIES", "claim", "closing_paragraph", "reading_table", "reference_path", "reference_metrics",
           "format_claims"]

#: Where a statement belongs in the closing paragraph.
CATEGORIES = {
    "architecture": "fails because of the architecture",
    "reading": "depends on a reading of the paper",
}


def claim(key: str, category: str, words: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
          expected: str, *, a_label: str, b_label: str, metric: str) -> dict[str, Any]:
    """One tested statement: ``words`` claims that ``b`` (a :func:`~qinn_lib.evaluation.ensemble_tables.summarise`
    metric entry) is lower (``expected="b<a"``), higher (``"b>a"``) or tied with ``a``. A side
    that is missing (e.g. no INN results yet) makes the statement "missing"."""
    if category not in CATEGORIES:
        raise ValueError(f"claim: category must be one of {sorted(CATEGORIES)}, got {category!r}")
    out = {"key": key, "category": category, "words": words, "metric": metric, "a_label": a_label,
           "b_label": b_label, "expected": expected}
    if a is None or b is None:
        missing = a_label if a is None else b_label
        return {**out, "verdict": "missing", "text": f"{words}: no {missing} results ({metric}) -> not tested"}
    v = claim_verdict(a, b, expected)
    text = (f"{words}: {metric} {a_label} {_num(a['mean'])}, {b_label} {_num(b['mean'])}; "
            f"{b_label} - {a_label} = {v['text']}")
    return {**out, "verdict": v["verdict"], "found": v["found"], "significance": v["significance"],
            "a_mean": float(a["mean"]), "b_mean": float(b["mean"]), "text": text}


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def format_claims(claims: Sequence[Mapping[str, Any]]) -> str:
    """One line per statement (its text), as printed and recorded by notebook 06."""
    return "\n".join(c["text"] for c in claims)


def closing_paragraph(claims: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> str:
    """Plain words from the verdicts: which statements hold and fail because of the architecture,
    which hold and depend on a reading of the paper, which could not be decided (one seed, or a
    difference within the seed spread, or missing results), and which these runs contradict.
    ``notes``: further computed sentences appended as they are (e.g. the search's answer)."""
    held = {cat: [c["words"] for c in claims if c["category"] == cat and c["verdict"] == "reproduced"]
            for cat in CATEGORIES}
    undecided = [c["words"] for c in claims if c["verdict"] in ("undecided", "missing")
                 or (c["verdict"] == "not reproduced" and c.get("found") == "tied")]
    contradicted = [c["words"] for c in claims if c["verdict"] == "not reproduced" and c.get("found") != "tied"]
    parts = []
    for cat, words in held.items():
        if words:
            parts.append(f"What {CATEGORIES[cat]}: " + "; ".join(words) + ".")
    if undecided:
        parts.append("What we could not decide with these seeds: " + "; ".join(undecided) + ".")
    if contradicted:
        parts.append("What these runs contradict (the diagnosis does not hold here): " + "; ".join(contradicted) + ".")
    if not parts:
        parts.append("No statement was tested.")
    return " ".join(parts + [n for n in notes if n])


def reading_table(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], *, paper: float = 0.021) -> str:
    """Markdown table of every reading of the 2.1 % metric (:data:`qinn_lib.evaluation.diagnostics.READINGS`)
    for the ensembles ``labels``: the seed mean ± std of each run's median and mean over events,
    and whether the median is below the paper's ``paper``."""
    by_label = {r["label"]: r["metrics"] for r in rows}
    lines = ["| reading | " + " | ".join(f"{lab}: median / mean" for lab in labels) + " | definition |",
             "|---|" + "---|" * (len(labels) + 1)]
    for name, definition in READINGS.items():
        cells = []
        for lab in labels:
            m = by_label.get(lab, {})
            med, mean = m.get(f"reading/{name}_median"), m.get(f"reading/{name}_mean")
            if med is None or mean is None:
                cells.append("–")
                continue
            below = " (< 2.1 %)" if med["mean"] < paper else ""
            cells.append(f"{_pct(med)} / {_pct(mean)}{below}")
        title = f"**{name}** (headline)" if name == HEADLINE_READING else name
        lines.append(f"| {title} | " + " | ".join(cells) + f" | {definition} |")
    return "\n".join(lines)


def _pct(s: Mapping[str, Any]) -> str:
    std = s.get("std", float("nan"))
    return f"{100 * s['mean']:.2f} ± {100 * std:.2f} %" if math.isfinite(std) else f"{100 * s['mean']:.2f} %"


def reference_path(profile: str) -> Any:
    """Where notebook 05's seed ensembles (``models_05.json``) are for a notebook-06 run in
    ``profile``: beside this run's own results (:func:`qinn_lib.evaluation.results.results_path`; with the
    reports runner, notebook 05 has just written it there), else the file published for the profile
    (``figures/`` or ``figures/quick/``), e.g. the committed paper results for a run by hand."""
    own = results_path().with_name("models_05.json")
    return own if own.is_file() else results_path(profile).with_name("models_05.json")


def reference_metrics(path: Any, data_fingerprint: str) -> tuple[dict[str, dict], str]:
    """Notebook 05's seed ensembles (``models_05.json`` at ``path``) as ``{label: summarise metrics}``,
    if the file exists and its models were trained on the same data; else ``({}, reason)``."""
    from pathlib import Path


    path = Path(path)
    if not path.is_file():
        return {}, f"no {path.name}: run notebook 05 in this profile for the INN references"
    records = read_results(path)
    fps = {r["data_fingerprint"] for r in records}
    if fps != {data_fingerprint}:
        return {}, f"{path.name} holds models trained on other data ({sorted(fps)}); INN references left out"
    return {row["label"]: row["metrics"] for row in summarise(records)}, f"INN references from {path.name}"
