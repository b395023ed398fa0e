"""qinn_lib.notebook.gap: notebook 06's statements tested against the seed spread, the closing paragraph
built from their verdicts, the readings table, the INN references, and the README section."""

from __future__ import annotations

import pytest

from qinn_lib.evaluation import ensemble_tables, records
from qinn_lib.notebook import gap, readme


def entry(values):
    rec = [{"label": "x", "config": {}, "config_fingerprint": "c", "data_fingerprint": "d", "seed": i,
            "metrics": {"v": v}} for i, v in enumerate(values)]
    return ensemble_tables.summarise(rec)[0]["metrics"]["v"]


def decided(*claims):
    return gap.decide_claims(claims)


def test_claims_are_tests_decided_with_holm():
    low, high = entry([1.0, 1.1, 0.9, 1.05]), entry([2.0, 2.1, 1.9, 2.05])
    up, down = decided(
        gap.claim("k", "architecture", "b is higher", low, high, "b>a", a_label="A", b_label="B", metric="nll"),
        gap.claim("j", "reading", "b is lower", low, high, "b<a", a_label="A", b_label="B", metric="nll"))
    assert up["verdict"] == "reproduced" and up["found"] == "a lower" and up["category"] == "architecture"
    assert "B − A = +1" in up["text"] and "Welch t-test on raw values" in up["text"] and up["family"] == gap.FAMILY
    assert down["verdict"] == "contradicted" and down["word"] == "not reproduced: contradicted (A lower)"
    (missing,) = decided(gap.claim("k", "reading", "b is lower", None, high, "b<a", a_label="A", b_label="B", metric="nll"))
    assert missing["verdict"] == "missing" and "no A results" in missing["text"]
    (single,) = decided(gap.claim("k", "reading", "w", entry([1.0]), high, "b>a", a_label="A", b_label="B", metric="m"))
    assert single["verdict"] == "undecided" and single["word"] == "undecided (1 seed)"
    with pytest.raises(ValueError, match="category"):
        gap.claim("k", "opinion", "w", low, high, "b>a", a_label="A", b_label="B", metric="m")


def test_the_folded_statement_is_paired():
    """Two medians of the same runs: a paired test; here every seed's minority is worse by ~x2,
    while the seeds' own spread (x10 between seeds) would hide it from Welch."""
    majority = entry([0.01, 0.1, 0.05, 0.02, 0.2])
    minority = entry([0.021, 0.19, 0.11, 0.038, 0.41])
    (c,) = decided(gap.claim("folded", "architecture", "folded events reconstruct worse", majority, minority, "b>a",
                             a_label="majority sign", b_label="minority sign", metric="recon_median", paired=True))
    assert c["test"] == "paired t-test on log values" and c["verdict"] == "reproduced"
    assert c["effect"] == pytest.approx(2.0, rel=0.1) and c["robust_test"] == "exact Wilcoxon signed-rank test"


def test_closing_paragraph_sorts_statements_by_verdict_and_category():
    low, high, tied = entry([1.0, 1.1, 0.9, 1.0]), entry([2.0, 2.1, 1.9, 2.0]), entry([1.05, 1.0, 1.1, 0.95])
    claims = decided(
        gap.claim("a", "architecture", "the ceiling holds", low, high, "b>a", a_label="A", b_label="B", metric="m"),
        gap.claim("r", "reading", "the normalisation matters", high, low, "b<a", a_label="A", b_label="B", metric="m"),
        gap.claim("t", "reading", "a tie hides nothing", low, tied, "b>a", a_label="A", b_label="B", metric="m"),
        gap.claim("c", "architecture", "the opposite holds", low, high, "b<a", a_label="A", b_label="B", metric="m"),
        gap.claim("u", "architecture", "one seed only", entry([1.0]), high, "b>a", a_label="A", b_label="B", metric="m"),
    )
    text = gap.closing_paragraph(claims, ["The search found nothing."])
    assert "what fails because of the architecture: the ceiling holds (B − A = +" in text
    assert "what depends on a reading of the paper: the normalisation matters (B − A = -" in text
    assert "What these runs contradict (the diagnosis does not hold here): the opposite holds (found: A lower;" in text
    assert "Still open with these seeds" in text and "one seed only (1 seed)" in text
    tie = next(c for c in claims if c["key"] == "t")
    assert tie["verdict"] == "undecided" and (f"a tie hides nothing (would need ~{tie['seeds_needed']} seeds per ensemble; "
                                              "now 4)" in text or f"a tie hides nothing ({tie['seeds_note']})" in text)
    assert text.endswith("The search found nothing.")
    assert gap.closing_paragraph([]) == "No statement was tested."
    with pytest.raises(ValueError, match="was not decided"):
        gap.closing_paragraph([gap.claim("a", "architecture", "w", low, high, "b>a", a_label="A", b_label="B", metric="m")])


def test_readings_note_says_which_statistic_is_below_the_paper():
    """Issue 21: only the median of a range-normalised reading comes below 2.1 %; the paper says
    "average", so the note names the statistic."""
    recs = [{"label": "base", "config": {}, "config_fingerprint": "c", "data_fingerprint": "d", "seed": s,
             "metrics": {"reading/range_median": 0.0165, "reading/range_mean": 0.0265,
                         "reading/scaled_vector_median": 0.05, "reading/scaled_vector_mean": 0.08}} for s in (1, 2)]
    note = gap.readings_note(ensemble_tables.summarise(recs)[0]["metrics"], label="baseline")
    assert "median over test events is below 2.1 %: range 1.65 %;" in note
    assert "mean over test events (the paper's 'average') is below it: none" in note


def test_reading_table_marks_the_headline_and_the_paper_threshold():
    recs = [{"label": "base", "config": {}, "config_fingerprint": "c", "data_fingerprint": "d", "seed": s,
             "metrics": {"reading/range_median": 0.01 + s / 1000, "reading/range_mean": 0.02,
                         "reading/scaled_vector_median": 0.07, "reading/scaled_vector_mean": 0.08}} for s in (1, 2)]
    table = gap.reading_table(ensemble_tables.summarise(recs), ["base"])
    assert "| **scaled_vector** (headline) | 7.00 ± 0.00 % / 8.00 ± 0.00 % |" in table
    assert "1.15 ± 0.07 % / 2.00 ± 0.00 % (< 2.1 %)" in table
    assert "| physical | – |" in table


def test_reference_metrics(tmp_path):
    path = tmp_path / "models_05.json"
    rows, note = gap.reference_metrics(path, "fp")
    assert rows == {} and "run notebook 05" in note
    rec = {"label": "INN 2k", "config": {}, "config_fingerprint": "c", "data_fingerprint": "fp", "seed": 1,
           "metrics": {"nll": 11.7}}
    records.write_results(path, [rec])
    rows, _ = gap.reference_metrics(path, "fp")
    assert rows["INN 2k"]["nll"]["mean"] == 11.7
    rows, note = gap.reference_metrics(path, "other")
    assert rows == {} and "other data" in note


def test_reference_path_prefers_this_runs_notebook_05(tmp_path, monkeypatch):
    """With the reports runner, notebook 05 has just written models_05.json into the output folder;
    run by hand without it, notebook 06 reads the file published for its profile."""
    from qinn_lib import paths

    monkeypatch.setenv("QINN_OUTPUT_DIR", str(tmp_path))
    assert gap.reference_path("paper") == paths.figures_dir("paper") / "models_05.json"
    assert gap.reference_path("quick") == paths.figures_dir("quick") / "models_05.json"
    (tmp_path / "models_05.json").write_text("{}")
    assert gap.reference_path("paper") == tmp_path / "models_05.json"


def test_readme_section_is_rendered_from_the_record():
    text = readme.render_results({"06_why_the_gap": {
        "seeds": [1, 2, 3], "epochs": 200, "claims": "NLL only vs INN 2k -> reproduced",
        "search_answer": "None of 40 search trials reaches the 6k INN.", "closing": "What fails because of the architecture: x."}})
    assert "Why our QINN misses the paper** (notebook 06, seeds [1, 2, 3], 200 epochs" in text
    assert "recorded before the statistical tests" in text  # an older record: no verdicts
    assert "NLL only vs INN 2k -> reproduced" in text and "None of 40 search trials" in text
    assert text.rstrip().endswith("What fails because of the architecture: x.")


def test_readme_section_shows_the_recorded_verdicts():
    low, high = entry([1.0, 1.1, 0.9, 1.05]), entry([2.0, 2.1, 1.9, 2.05])
    claims = decided(gap.claim("k", "architecture", "b is higher", low, high, "b>a", a_label="A", b_label="B", metric="nll"))
    text = readme.render_results({"06_why_the_gap": {
        "seeds": [1, 2, 3, 4], "epochs": 200, "claims": gap.format_claims(claims), "verdicts": claims,
        "search_answer": "s.", "closing": gap.closing_paragraph(claims)}})
    assert "Holm over the notebook's 1 hypotheses at family-wise α = 0.05" in text
    assert "| b is higher | nll | 4 / 4 | B − A = +1" in text and "| reproduced (A lower) |" in text
