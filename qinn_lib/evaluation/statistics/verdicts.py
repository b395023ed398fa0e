"""Statements about two seed ensembles, decided by tests: :func:`compare` runs the tests of one
statement, :func:`decide` corrects a notebook's statements for multiplicity (Holm) and gives each
its verdict and its sentence.

A statement compares ensemble ``b`` with ensemble ``a`` on one metric (a
:func:`~qinn_lib.evaluation.ensemble_tables.summarise` entry, or the per-seed values), on the
metric's declared scale (:mod:`.transforms`): Welch's t-test for independent ensembles, the paired
t-test for two quantities measured on the same seeds, each with its exact permutation / signed-rank
test as the robustness check, the effect (ratio b / a on a log scale, b − a on a raw one) with its
bootstrap interval over seeds, and, for a statement of *equivalence* ("similar", "as good as"), the
two one-sided tests against a stated margin. Nothing is called equal because a difference was not
found. Holm's step-down correction (``statsmodels.stats.multitest.multipletests(method="holm")``)
runs over every hypothesis of the family (one per statement; two for an equivalence statement: its
TOST and its difference test; a statement that repeats another's test counts once), so the chance
of any false "decided" in a notebook stays below α.

Every decided statement is a dict with these keys (:data:`VERDICT_KEYS` must be present in any
verdict stored in ``results.json``):

====================  ==========================================================================
key                   meaning
====================  ==========================================================================
key, words            the statement's id and its words (e.g. the paper's)
metric                the metric compared; ``a_label``, ``b_label``: the ensembles
n_a, n_b              seeds per ensemble; ``a_values``, ``b_values``: the per-seed values
a_mean, b_mean        the seed means (raw scale)
transform             the scale tested: "log", "log(AUC - 1/2)", "raw" or "raw (log needs ...)"
paired                whether the two are measured on the same seeds
test                  the primary test, e.g. "Welch t-test on log values"
statistic, df         its t statistic and degrees of freedom
p, p_holm             its two-sided p-value, raw and Holm-adjusted within ``family``
robust_test, p_robust the robustness check (exact permutation / signed-rank test) and its p
effect_kind           "ratio b/a" (log scale) or "difference b-a" (raw scale)
effect, effect_ci     the effect and its 95 % percentile bootstrap interval over seeds
effect_ci_t           the 95 % t interval of the same effect (wider with few seeds)
expected              "b<a", "b>a", "equivalent" or None (a comparison without a claim)
margin                the equivalence margin (a ratio r: 1/r < b/a < r; or a difference)
p_tost, p_tost_holm   the equivalence test's p, raw and Holm-adjusted (NaN unless expected
                      is "equivalent")
family, family_size   the Holm family (e.g. the notebook) and its number of hypotheses
alpha                 the family-wise level
found                 one of :data:`FOUND`: "a lower", "b lower", "equivalent", "undecided"
verdict               for a claim, one of :data:`VERDICTS`: "reproduced", "contradicted",
                      "undecided", "missing"; None for a plain comparison
seeds_needed          for an undecided statement: seeds per ensemble the power estimate asks for
                      (:mod:`.power`), None when there is none; ``seeds_note`` says why
word                  the verdict in words, e.g. "INN 2k lower", "equivalent (margin ×2)",
                      "contradicted (QINN lower)", "undecided (would need ~9 seeds per
                      ensemble)", "undecided (1 seed)": a claim's word starts with its verdict
                      (:data:`VERDICTS`), so "not reproduced" is never said of a tie
text                  one sentence quoting the means, the effect and its interval, p, Holm's p
====================  ==========================================================================
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation.results import VERDICT_KEYS
from qinn_lib.evaluation.statistics import hypothesis_tests as ht
from qinn_lib.evaluation.statistics import power, transforms

__all__ = ["ALPHA", "FOUND", "VERDICTS", "EXPECTED", "VERDICT_KEYS", "compare", "decide", "effect_words",
           "format_p", "format_verdict_table", "order_line", "seed_pairs", "seed_values", "verdict_tally"]

#: Family-wise significance level of every notebook's statements.
ALPHA = 0.05
#: What a decided comparison found (label-free; ``word`` puts the labels in).
FOUND = ("a lower", "b lower", "equivalent", "undecided")
#: The verdict of a claim against its expectation.
VERDICTS = ("reproduced", "contradicted", "undecided", "missing")
#: What a claim may expect of b against a.
EXPECTED = ("b<a", "b>a", "equivalent")

_NAN = float("nan")


def seed_values(entry: Mapping[str, Any] | Sequence[float] | None) -> tuple[np.ndarray, list[int] | None] | None:
    """The per-seed values of a summarise entry (``{"values": [...], "seeds": [...]}``) or of a
    plain sequence, and their seeds when known; None for a missing side."""
    if entry is None:
        return None
    if isinstance(entry, Mapping):
        if "values" not in entry:
            raise ValueError("compare: a summarise entry needs its per-seed 'values' "
                             "(pass summarise(...)[i]['metrics'][name])")
        seeds = entry.get("seeds")
        return np.asarray(entry["values"], dtype=np.float64), (list(seeds) if seeds is not None else None)
    return np.asarray(list(entry), dtype=np.float64), None


def _pairs(a: tuple[np.ndarray, list | None], b: tuple[np.ndarray, list | None]) -> tuple[np.ndarray, np.ndarray]:
    """The values of a and b on their common seeds, in the same order (a paired test needs pairs)."""
    (va, sa), (vb, sb) = a, b
    if sa is not None and sb is not None:
        common = [s for s in sa if s in sb]
        return (np.array([va[sa.index(s)] for s in common]), np.array([vb[sb.index(s)] for s in common]))
    if va.size != vb.size:
        raise ValueError(f"compare(paired=True): {va.size} and {vb.size} values do not pair up and carry no seeds")
    return va, vb


def seed_pairs(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The per-seed values of two summarise entries (or plain sequences) on their common seeds, in
    the same order: the pairs of a paired test."""
    return _pairs(seed_values(a), seed_values(b))


def compare(a: Any, b: Any, *, metric: str, a_label: str = "a", b_label: str = "b", words: str = "",
            key: str = "", expected: str | None = None, margin: float | None = None, paired: bool = False,
            seed: int = 0) -> dict[str, Any]:
    """The tests of one statement about ensemble ``b`` against ensemble ``a`` on ``metric``
    (summarise entries or per-seed values; None for an ensemble not run: the statement is
    "missing"). ``expected``: what the statement claims of b ("b<a", "b>a", "equivalent"), or None
    for a comparison without a claim; ``margin`` (needed for "equivalent"): a ratio r > 1 for a
    log-scale metric (equivalent when 1/r < b/a < r), a difference for a raw one. ``paired``: a and
    b were measured on the same seeds. ``seed`` seeds the bootstrap and a non-exhaustive
    permutation test. The verdict fields (``p_holm``, ``found``, ``verdict``, ``word``, ``text``)
    are filled by :func:`decide`, which every statement must pass through."""
    if expected is not None and expected not in EXPECTED:
        raise ValueError(f"compare: expected must be one of {list(EXPECTED)} or None, got {expected!r}")
    if expected == "equivalent" and margin is None:
        raise ValueError("compare: an equivalence statement needs its margin (margin=...)")
    out: dict[str, Any] = {"key": key, "words": words, "metric": metric, "a_label": a_label, "b_label": b_label,
                           "expected": expected, "margin": margin, "paired": bool(paired)}
    sa, sb = seed_values(a), seed_values(b)
    if sa is None or sb is None or not (sa[0].size and sb[0].size):
        return {**out, "missing": a_label if sa is None or not sa[0].size else b_label}
    va, vb = _pairs(sa, sb) if paired else (sa[0], sb[0])
    (ta, tb), scale = transforms.apply(metric, va, vb)
    primary = ht.paired_t(tb, ta) if paired else ht.welch(tb, ta)
    if paired:
        robust, robust_name = ht.wilcoxon(tb, ta), "exact Wilcoxon signed-rank test"
    else:
        robust = ht.permutation(tb, ta, seed=seed)
        robust_name = ("exact permutation test" if robust["exact"] or not robust["n_permutations"] else
                       "random permutation test") + (f" ({robust['n_permutations']} relabellings)"
                                                     if robust["n_permutations"] else "")
    diff = float(np.mean(tb) - np.mean(ta))
    boot = ht.bootstrap_difference(tb, ta, paired=paired, seed=seed)
    on_scale = f" on raw values {scale[4:]}" if scale.startswith("raw (") else f" on {scale} values"
    out.update({
        "n_a": int(va.size), "n_b": int(vb.size), "a_values": [float(v) for v in va], "b_values": [float(v) for v in vb],
        "a_mean": float(np.mean(va)), "b_mean": float(np.mean(vb)),
        "transform": scale, "test": f"{'paired t-test' if paired else 'Welch t-test'}{on_scale}",
        "statistic": primary["statistic"], "df": primary["df"], "p": primary["p"],
        "robust_test": robust_name, "p_robust": robust["p"], "effect_kind": transforms.effect_kind(scale),
        "effect": transforms.effect_from_difference(diff, scale),
        "effect_ci": [transforms.effect_from_difference(x, scale) for x in boot],
        "effect_ci_t": [transforms.effect_from_difference(x, scale) for x in primary["ci_t"]],
        "ci_method": f"percentile bootstrap over seeds, 95 %, {ht.N_BOOTSTRAP} resamples, seed {seed}",
        "p_tost": _NAN,
    })
    margin_t = _margin_t(out)
    if margin_t is not None:
        out["p_tost"] = ht.tost(tb, ta, margin_t, paired=paired)
        out["test_equivalence"] = f"TOST{' (paired)' if paired else ' (Welch)'} against {_margin_words(margin, scale)}"
    return out


def _margin_t(s: Mapping[str, Any]) -> float | None:
    """An equivalence statement's margin on its tested scale; None when there is no equivalence
    claim, or when the declared log scale fell back to raw (a ratio margin means nothing there)."""
    if s.get("expected") != "equivalent" or s["transform"] != transforms.rule_for(s["metric"]):
        return None
    return transforms.margin_on_scale(s["margin"], s["transform"])


def _scaled(s: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
    """The statement's values on its tested scale (a, b) and the difference of their means."""
    ta, tb = (np.asarray(v, dtype=np.float64) for v in (s["a_values"], s["b_values"]))
    if not s["transform"].startswith(transforms.RAW):
        (ta, tb), _ = transforms.apply(s["metric"], ta, tb)
    return ta, tb, float(np.mean(tb) - np.mean(ta))


def _margin_words(margin: float, scale: str) -> str:
    return f"×{margin:g}" if scale in (transforms.LOG, transforms.LOG_AUC) else f"±{margin:g}"


def decide(statements: Iterable[Mapping[str, Any]], *, family: str, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Holm's correction over every hypothesis of ``statements`` (one family, e.g. one notebook's
    statements), then each statement's ``found``, ``verdict``, seeds-needed estimate, ``word`` and
    ``text``. Returns new dicts in the same order (plain JSON values only)."""
    from statsmodels.stats.multitest import multipletests

    statements = [dict(s) for s in statements]
    # One hypothesis per distinct test: a claim that repeats a comparison of the same family (same
    # metric, ensembles and values) is the same hypothesis and is counted once.
    hypotheses: dict[tuple, list[tuple[int, str]]] = {}
    for i, s in enumerate(statements):
        if "missing" in s or "missing_side" in s:
            continue
        for name in ("p", "p_tost"):
            if math.isfinite(s.get(name, _NAN)):
                ident = (name, s["metric"], s["a_label"], s["b_label"], s["paired"], tuple(s["a_values"]),
                         tuple(s["b_values"]), s.get("margin") if name == "p_tost" else None)
                hypotheses.setdefault(ident, []).append((i, name))
    adjusted: dict[tuple[int, str], float] = {}
    if hypotheses:
        uses = list(hypotheses.values())
        _, p_holm, _, _ = multipletests([statements[i][name] for (i, name), *_ in uses], alpha=alpha, method="holm")
        adjusted = {h: float(p) for group, p in zip(uses, p_holm) for h in group}
    m = len(hypotheses)
    out = []
    for i, s in enumerate(statements):
        s.update(family=family, family_size=m, alpha=alpha)
        if "missing_side" in s:  # decided before, with a side missing: nothing to test
            out.append(s)
            continue
        if "missing" in s:
            missing = s.pop("missing")
            s.update(n_a=0, n_b=0, a_values=[], b_values=[], a_mean=_NAN, b_mean=_NAN, transform="", test="not tested",
                     statistic=_NAN, df=_NAN, p=_NAN, p_holm=_NAN, robust_test="", p_robust=_NAN, effect_kind="",
                     effect=_NAN, effect_ci=[_NAN, _NAN], effect_ci_t=[_NAN, _NAN], p_tost=_NAN, p_tost_holm=_NAN,
                     found="undecided", verdict="missing" if s["expected"] else None, seeds_needed=None,
                     seeds_note=f"no {missing} results", word="not tested", missing_side=missing)
            s["text"] = f"{_lead(s)}no {missing} results ({s['metric']}) -> not tested"
            out.append(s)
            continue
        s["p_holm"], s["p_tost_holm"] = adjusted.get((i, "p"), _NAN), adjusted.get((i, "p_tost"), _NAN)
        _verdict(s, alpha, max(m, 1))
        s["text"] = _text(s)
        out.append(s)
    return out


def _verdict(s: dict[str, Any], alpha: float, m: int) -> None:
    """Fill found / verdict / seeds / word of one tested statement (after Holm)."""
    lower = {"a lower": s["a_label"], "b lower": s["b_label"]}
    margin_t = _margin_t(s)
    ta, tb, diff = _scaled(s)
    if s["expected"] == "equivalent" and s["p_tost_holm"] < alpha:
        found = "equivalent"
    elif s["p_holm"] < alpha:
        found = "b lower" if diff < 0 else "a lower"
    else:
        found = "undecided"
    verdict = None
    if s["expected"] in ("b<a", "b>a"):
        wanted = "b lower" if s["expected"] == "b<a" else "a lower"
        verdict = "undecided" if found == "undecided" else "reproduced" if found == wanted else "contradicted"
    elif s["expected"] == "equivalent":
        outside = margin_t is not None and abs(diff) > margin_t
        verdict = ("reproduced" if found == "equivalent" else
                   "contradicted" if found in lower and outside else "undecided")
    seeds, note = None, ""
    if verdict == "undecided" or (verdict is None and found == "undecided"):
        if min(s["n_a"], s["n_b"]) < 2:
            note = "1 seed"
        elif s["expected"] == "equivalent" and margin_t is None:
            note = "no margin on the tested scale"
        else:
            seeds, note = power.seeds_needed(tb, ta, alpha=alpha / m, paired=s["paired"],
                                             equivalence_margin=margin_t if s["expected"] == "equivalent" else None)
            if note == "observed difference outside the margin":
                # equivalence is out of reach at the observed effect; more seeds would rather show the difference
                n_diff, _ = power.seeds_needed(tb, ta, alpha=alpha / m, paired=s["paired"])
                if n_diff:
                    note += f"; a difference would be decided with ~{n_diff} seeds per ensemble"
    open_words = f"would need ~{seeds} seeds per ensemble" if seeds else note
    if verdict == "undecided" and s["expected"] in ("b<a", "b>a") and diff and (diff < 0) != (s["expected"] == "b<a"):
        open_words = f"observed the other way; {open_words}"  # more seeds would rather contradict it
    if verdict is None:
        word = (lower[found] + " lower" if found in lower else
                f"equivalent (margin {_margin_words(s['margin'], s['transform'])})" if found == "equivalent" else
                f"undecided ({open_words})")
    elif verdict == "reproduced":
        word = "reproduced (" + (lower[found] + " lower" if found in lower else
                                 f"equivalent within {_margin_words(s['margin'], s['transform'])}") + ")"
    elif verdict == "contradicted":
        word = f"contradicted ({lower[found]} lower)"
    else:
        word = f"undecided ({open_words})"
    s.update(found=found, verdict=verdict, seeds_needed=seeds, seeds_note=note, word=word)


def _num(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else "nan"


def format_p(p: float) -> str:
    """A p-value as the sentences show it: two significant digits, scientific below 0.001."""
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _lead(s: Mapping[str, Any]) -> str:
    return f"{s['words']}: " if s.get("words") else ""


def effect_words(s: Mapping[str, Any]) -> str:
    """The effect and its bootstrap interval, e.g. "INN 2k / QINN = 0.16 [0.10, 0.25]"."""
    lo, hi = s["effect_ci"]
    if s["effect_kind"].startswith("ratio"):
        what = f"{s['b_label']} / {s['a_label']}"
        if s["transform"] == transforms.LOG_AUC:
            what = f"({s['b_label']} − ½) / ({s['a_label']} − ½)"
        return f"{what} = {_num(s['effect'])} [{_num(lo)}, {_num(hi)}]"
    return f"{s['b_label']} − {s['a_label']} = {s['effect']:+.4g} [{lo:+.4g}, {hi:+.4g}]"


def _text(s: Mapping[str, Any]) -> str:
    """One sentence: the means, the effect with its interval, the tests' p-values, the verdict."""
    head = (f"{_lead(s)}{s['metric']} {s['a_label']} {_num(s['a_mean'])}, {s['b_label']} {_num(s['b_mean'])} "
            f"({s['n_a']} vs {s['n_b']} seeds{', paired' if s['paired'] else ''})")
    if min(s["n_a"], s["n_b"]) < 2:
        return f"{head}: no test with one seed -> {s['word']}"
    tests = (f"{s['test']}, p = {format_p(s['p'])}, Holm p = {format_p(s['p_holm'])}; "
             f"{s['robust_test'].split(' (')[0]} p = {format_p(s['p_robust'])}")
    if s["expected"] == "equivalent" and s.get("test_equivalence"):
        tests += f"; {s['test_equivalence']}: p = {format_p(s['p_tost'])}, Holm p = {format_p(s['p_tost_holm'])}"
    return f"{head}; {effect_words(s)} ({tests}) -> {s['word']}"


def order_line(statements: Sequence[Mapping[str, Any]], *, a_label: str, b_prefix: str = "") -> str:
    """One line of decided comparisons of one ``a`` against several ``b`` on one metric, e.g.
    "INN lower than the QINN: 6k (Holm p 0.036), 16k (Holm p 0.027); undecided against INN: 2k
    (would need ~5 seeds per ensemble)". ``b_prefix`` is cut from the b labels ("INN ")."""
    name = lambda v: v["b_label"].removeprefix(b_prefix)  # noqa: E731
    group = b_prefix.strip() or "b"
    decided = lambda found: [f"{name(v)} (Holm p {format_p(v['p_holm'])})" for v in statements  # noqa: E731
                             if v["found"] == found]
    parts = {f"{group} lower than the {a_label}": decided("b lower"),
             f"{a_label} lower than {group}": decided("a lower"),
             f"undecided against {group}": [f"{name(v)} ({v['word'].removeprefix('undecided (').rstrip(')')})"
                                            for v in statements if v["found"] == "undecided" and "missing_side" not in v],
             "not tested (no results)": [name(v) for v in statements if "missing_side" in v]}
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in parts.items() if v)


def format_verdict_table(statements: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of decided statements: what, the seeds, the effect with its interval, the
    test, p raw / Holm, the robustness p and the verdict."""
    lines = ["| statement | metric | seeds (a / b) | effect [95 % bootstrap CI] | test | p | p Holm | robustness p | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in statements:
        words = s.get("words") or f"{s['b_label']} vs {s['a_label']}"
        if "missing_side" in s:
            lines.append(f"| {words} | {s['metric']} | – | – | – | – | – | – | {s['word']} |")
            continue
        effect = effect_words(s) if min(s["n_a"], s["n_b"]) >= 2 else "–"
        p, p_holm = format_p(s["p"]), format_p(s["p_holm"])
        if s.get("expected") == "equivalent" and math.isfinite(s.get("p_tost", _NAN)):
            p, p_holm = f"{p} (TOST {format_p(s['p_tost'])})", f"{p_holm} (TOST {format_p(s['p_tost_holm'])})"
        lines.append(f"| {words} | {s['metric']} | {s['n_a']} / {s['n_b']} | {effect} | {s['test']} | {p} | {p_holm} | "
                     f"{format_p(s['p_robust'])} | {s['word']} |")
    return "\n".join(lines)


def verdict_tally(statements: Sequence[Mapping[str, Any]]) -> str:
    """How many of the decided claims among ``statements`` have each verdict, in the words of
    :data:`VERDICTS`, e.g. "5 statements: 1 reproduced, 3 contradicted, 1 undecided"; plain
    comparisons (no claim, ``verdict`` None) are not counted. A prose summary quotes this, not
    its own reading of the tests, so "reproduced" is never said of a tie."""
    claims = [s for s in statements if s.get("verdict") is not None]
    unknown = sorted({str(s["verdict"]) for s in claims} - set(VERDICTS))
    if unknown:
        raise ValueError(f"verdict_tally: unknown verdict(s) {unknown}; expected one of {list(VERDICTS)}")
    counts = {v: sum(s["verdict"] == v for s in claims) for v in VERDICTS}
    parts = [f"{n} {'not tested' if v == 'missing' else v}" for v, n in counts.items() if n]
    noun = "statement" if len(claims) == 1 else "statements"
    return f"{len(claims)} {noun}: " + (", ".join(parts) if parts else "none tested")
