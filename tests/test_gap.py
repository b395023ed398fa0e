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


def test_claim_verdicts_and_missing_sides():
    low, high = entry([1.0, 1.1, 0.9]), entry([2.0, 2.1, 1.9])
    c = gap.claim("k", "architecture", "b is higher", low, high, "b>a", a_label="A", b_label="B", metric="nll")
    assert c["verdict"] == "reproduced" and c["found"] == "higher" and "B - A = +1" in c["text"]
    c = gap.claim("k", "reading", "b is lower", low, high, "b<a", a_label="A", b_label="B", metric="nll")
    assert c["verdict"] == "not reproduced" and c["found"] == "higher"
    c = gap.claim("k", "reading", "b is lower", None, high, "b<a", a_label="A", b_label="B", metric="nll")
    assert c["verdict"] == "missing" and "no A results" in c["text"]
    single = entry([1.0])
    assert gap.claim("k", "reading", "w", single, high, "b>a", a_label="A", b_label="B", metric="m")["verdict"] == "undecided"
    with pytest.raises(ValueError, match="category"):
        gap.claim("k", "opinion", "w", low, high, "b>a", a_label="A", b_label="B", metric="m")


def test_closing_paragraph_sorts_statements_by_verdict_and_category():
    low, high, tied = entry([1.0, 1.1, 0.9]), entry([2.0, 2.1, 1.9]), entry([1.05, 1.0, 1.1])
    claims = [
        gap.claim("a", "architecture", "the ceiling holds", low, high, "b>a", a_label="A", b_label="B", metric="m"),
        gap.claim("r", "reading", "the normalisation matters", high, low, "b<a", a_label="A", b_label="B", metric="m"),
        gap.claim("t", "reading", "a tie hides nothing", low, tied, "b>a", a_label="A", b_label="B", metric="m"),
        gap.claim("c", "architecture", "the opposite holds", low, high, "b<a", a_label="A", b_label="B", metric="m"),
        gap.claim("u", "architecture", "one seed only", entry([1.0]), high, "b>a", a_label="A", b_label="B", metric="m"),
    ]
    text = gap.closing_paragraph(claims, ["The search found nothing."])
    assert "fails because of the architecture: the ceiling holds." in text
    assert "depends on a reading of the paper: the normalisation matters." in text
    assert "could not decide with these seeds: a tie hides nothing; one seed only." in text
    assert "contradict (the diagnosis does not hold here): the opposite holds." in text
    assert text.endswith("The search found nothing.")
    assert gap.closing_paragraph([]) == "No statement was tested."


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
    assert "NLL only vs INN 2k -> reproduced" in text and "None of 40 search trials" in text
    assert text.rstrip().endswith("What fails because of the architecture: x.")
