"""The findings of notebook 06 (why our QINN misses the paper) as data: each a statement tested
with seeds, grouped into those that fail because of the architecture and those that depend on a
reading of the paper, and the closing paragraph built from their verdicts.

Every statement is a :func:`qinn_lib.evaluation.statistics.compare` between two seed ensembles (or,
for two quantities of the same runs, between paired values), decided with the notebook's other
statements by :func:`decide_claims` (Holm's correction over the notebook, :data:`FAMILY`): "b is
lower / higher than a" holds when the two-sided test rejects equality in that direction after
Holm; otherwise the statement is undecided and says how many seeds it would need; with one seed
(quick profile) nothing is decided.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from qinn_lib.evaluation import statistics
from qinn_lib.evaluation.diagnostics import HEADLINE_READING, READINGS
from qinn_lib.evaluation.ensemble_tables import summarise
from qinn_lib.evaluation.records import read_results
from qinn_lib.evaluation.results import results_path

__all__ = ["CATEGORIES", "FAMILY", "claim", "statements", "decide_claims", "closing_paragraph", "reading_table", "reference_path",
           "reference_metrics", "format_claims", "readings_note"]

#: Where a statement belongs in the closing paragraph.
CATEGORIES = {
    "architecture": "fails because of the architecture",
    "reading": "depends on a reading of the paper",
}
#: The Holm family of notebook 06's statements.
FAMILY = "06_why_the_gap"


def claim(key: str, category: str, words: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
          expected: str, *, a_label: str, b_label: str, metric: str, paired: bool = False,
          margin: float | None = None) -> dict[str, Any]:
    """One statement: ``words`` claims that ``b`` (a :func:`~qinn_lib.evaluation.ensemble_tables.summarise`
    metric entry) is lower (``expected="b<a"``), higher (``"b>a"``) or equivalent (``"equivalent"``,
    within ``margin``) to ``a``, on ``metric`` (its key: it sets the tested scale,
    :mod:`qinn_lib.evaluation.statistics.transforms`). ``paired``: a and b were measured on the same
    runs. A side that is missing (e.g. no INN results yet) makes the statement "missing". The
    verdict is filled by :func:`decide_claims`."""
    if category not in CATEGORIES:
        raise ValueError(f"claim: category must be one of {sorted(CATEGORIES)}, got {category!r}")
    tested = statistics.compare(a, b, metric=metric, a_label=a_label, b_label=b_label, words=words, key=key,
                                expected=expected, margin=margin, paired=paired)
    return {**tested, "category": category}


def statements(by_label: Mapping[str, Mapping[str, Any]], *, baseline: str, uploads: Sequence[int],
               mse_label: str | None) -> list[dict[str, Any]]:
    """Notebook 06's statements, tested but not yet decided (pass them to :func:`decide_claims`):
    ``by_label`` maps each ensemble (the ablations, the re-uploading flows "1 upload", "2 uploads",
    ..., notebook 05's INNs) to its summarise metrics; ``uploads``: the upload counts run;
    ``mse_label``: the eq. 20 ablation's label. An ensemble not run leaves its statements missing."""
    def m(label: str | None, metric: str) -> Mapping[str, Any] | None:
        return by_label.get(label, {}).get(metric) if label is not None else None

    out = [claim("nll_only_vs_inn2k", "architecture",
                 "trained on the NLL alone, the QINN's forward flow does not reach the 2k INN's density",
                 m("NLL only", "nll"), m("INN 2k", "nll"), "b<a", a_label="NLL-only QINN", b_label="INN 2k", metric="nll")]
    for u in [u for u in uploads if u > 1]:
        out.append(claim(f"uploads_{u}", "architecture",
                         f"uploading the input {u} times lowers the NLL-only ceiling (the encoding limits the density)",
                         m("1 upload", "nll"), m(f"{u} uploads", "nll"), "b<a", a_label="1 upload",
                         b_label=f"{u} uploads", metric="nll"))
        out.append(claim(f"uploads_{u}_normalised", "architecture",
                         f"uploading the input {u} times lowers the NLL-only ceiling also once each model's density "
                         "is normalised over the scaling box (NLL + ln Z)",
                         m("1 upload", "nll_normalised"), m(f"{u} uploads", "nll_normalised"), "b<a",
                         a_label="1 upload", b_label=f"{u} uploads", metric="nll_normalised"))
    out += [
        # two medians of the same runs (the events of each sign of det J): a paired statement
        claim("folded_worse", "architecture", "events where the map folds reconstruct worse than the rest",
              m(baseline, "recon_majority_median"), m(baseline, "recon_minority_median"), "b>a",
              a_label="majority sign", b_label="minority sign", metric="recon_median", paired=True),
        claim("nll_only_folds_more", "architecture", "trained on the NLL alone the map folds more than with the full loss",
              m(baseline, "fold_fraction"), m("NLL only", "fold_fraction"), "b>a",
              a_label="baseline", b_label="NLL only", metric="fold_fraction"),
    ]
    out += [claim(f"mse_{k}", "reading", words, m(baseline, metric), m(mse_label, metric), expected,
                  a_label="baseline", b_label=str(mse_label), metric=metric)
            for k, words, metric, expected in (
                ("recon", "summing eq. 20 over the features lowers the reconstruction deviation", "recon_mean", "b<a"),
                ("folds", "summing eq. 20 over the features lowers the fold fraction", "fold_fraction", "b<a"),
                ("pt", "summing eq. 20 over the features improves JS(pT)", "js/pt_lp", "b<a"),
                ("mll", "summing eq. 20 over the features worsens the M_Z peak (JS(M_ll))", "js/m_ll", "b>a"))]
    return out


def decide_claims(claims: Sequence[Mapping[str, Any]], *, family: str = FAMILY) -> list[dict[str, Any]]:
    """Holm over the notebook's statements, then each one's verdict and sentence
    (:func:`qinn_lib.evaluation.statistics.decide`)."""
    return statistics.decide(claims, family=family)


def format_claims(claims: Sequence[Mapping[str, Any]]) -> str:
    """One line per decided statement (its sentence), as printed and recorded by notebook 06."""
    return "\n".join(c["text"] for c in claims)


def _decided(c: Mapping[str, Any]) -> str:
    return f"{c['words']} ({statistics.effect_words(c)}, Holm p = {statistics.format_p(c['p_holm'] if c['found'] != 'equivalent' else c['p_tost_holm'])})"


def _open(c: Mapping[str, Any]) -> str:
    if c["verdict"] == "missing":
        return f"{c['words']} (not tested: {c['seeds_note']})"
    word = c["word"].removeprefix("undecided (").removesuffix(")")
    return f"{c['words']} ({word}; now {min(c['n_a'], c['n_b'])})" if c.get("seeds_needed") else f"{c['words']} ({word})"


def closing_paragraph(claims: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> str:
    """Plain words from the decided statements: which hold, by category (each with its effect and
    Holm p), which these runs contradict, and which are still open, each with the seeds per
    ensemble its power estimate asks for (or why there is none). ``notes``: further computed
    sentences appended as they are (e.g. the search's answer)."""
    for c in claims:
        if "word" not in c:
            raise ValueError(f"closing_paragraph: statement {c.get('key')!r} was not decided; pass decide_claims(claims)")
    alpha = next((c["alpha"] for c in claims), statistics.ALPHA)
    held = {cat: [_decided(c) for c in claims if c["category"] == cat and c["verdict"] == "reproduced"]
            for cat in CATEGORIES}
    contradicted = [f"{c['words']} (found: {c['word'].split('(', 1)[1].rstrip(')')}; {statistics.effect_words(c)}, "
                    f"Holm p = {statistics.format_p(c['p_holm'])})" for c in claims if c["verdict"] == "contradicted"]
    still_open = [_open(c) for c in claims if c["verdict"] in ("undecided", "missing")]
    parts = []
    if any(held.values()):
        size = next((c["family_size"] for c in claims), 0)
        parts.append(f"Decided (Holm over the notebook's {size} hypotheses, family-wise α = {alpha:g}) — "
                     + "; ".join(f"what {CATEGORIES[cat]}: " + "; ".join(words) for cat, words in held.items() if words)
                     + ".")
    if contradicted:
        parts.append("What these runs contradict (the diagnosis does not hold here): " + "; ".join(contradicted) + ".")
    if still_open:
        parts.append("Still open with these seeds (seeds per ensemble from a power estimate on the observed effect "
                     "and spread, at α / number of hypotheses, power 0.8): " + "; ".join(still_open) + ".")
    if not parts:
        parts.append("No statement was tested.")
    return " ".join(parts + [n for n in notes if n])


def readings_note(metrics: Mapping[str, Any], *, label: str, paper: float = 0.021) -> str:
    """Which readings of the 2.1 % metric come below the paper's value for ensemble ``label``
    (``metrics``: its summarise metrics), by statistic: the seed mean of each run's *median* over
    test events and of its *mean* (the paper says "average"), so the sentence says which number
    is below 2.1 %."""
    def below(stat: str) -> list[str]:
        return [f"{name} {100 * s['mean']:.2f} %" for name in READINGS
                if (s := metrics.get(f"reading/{name}_{stat}")) is not None and s["mean"] < paper]

    medians, means = below("median"), below("mean")
    return (f"{label}, seed means: readings whose median over test events is below {100 * paper:.1f} %: "
            f"{', '.join(medians) if medians else 'none'}; whose mean over test events (the paper's 'average') is below "
            f"it: {', '.join(means) if means else 'none'} (headline reading: {HEADLINE_READING})")


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
