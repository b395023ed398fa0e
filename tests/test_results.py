"""figures/results.json: schema version, per-section schema with errors naming section and key,
and the file lock that keeps concurrent writers from losing each other's sections."""

import json
import threading
import time

import numpy as np
import pytest

from qinn_lib import paths
from qinn_lib.evaluation import results
from qinn_lib.evaluation.results import RESULTS_SCHEMA_VERSION, SECTION_SCHEMAS, ResultsError
from qinn_lib.notebook import readme


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    (tmp_path / "figures").mkdir()
    return tmp_path


def _verdicts():
    from qinn_lib.evaluation import statistics

    return statistics.decide([statistics.compare([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], metric="nll", a_label="A",
                                                 b_label="B", expected="b>a", words="B is higher")], family="t")


def _example(spec):
    """A value of each schema type (a nested schema: one row)."""
    if isinstance(spec, dict):
        return {"16k": {k.rstrip("?"): _example(v) for k, v in spec.items()}}
    if spec == "verdicts":
        return _verdicts()
    return {"int": 3, "number": 1.5, "str": "text", "list": [1, 2], "dict": {}}[spec]


def section_from_schema(section):
    return {key.rstrip("?"): _example(spec) for key, spec in SECTION_SCHEMAS[section].items()}


@pytest.mark.parametrize("section", sorted(SECTION_SCHEMAS))
def test_every_key_the_readme_renders_is_in_the_schema(section):
    """render_results must not read a key the schema does not guarantee (else an older file fails
    with a KeyError halfway through the README)."""
    text = readme.render_results({section: section_from_schema(section)})
    assert text and "No results recorded yet" not in text


def test_every_section_the_readme_renders_has_a_schema():
    """A section render_results shows without a schema would be read unchecked (a KeyError halfway
    through the README for a record written by an older notebook)."""
    import inspect
    import re

    rendered = set(re.findall(r'results\.get\("([^"]+)"\)', inspect.getsource(readme.render_results)))
    assert {"01_data_exploration", "06_why_the_gap", "07_hardware_realism", "bench"} <= rendered
    assert rendered <= set(SECTION_SCHEMAS), sorted(rendered - set(SECTION_SCHEMAS))


def test_record_writes_the_schema_version_and_reads_a_file_written_before_it(repo):
    path = repo / "figures" / "results.json"
    path.write_text(json.dumps({"bench": section_from_schema("bench")}))  # the layout before versioning
    assert set(results.load_results("paper")) == {"bench"}
    results.record("04_fidelity_vs_mse", section_from_schema("04_fidelity_vs_mse"), "paper")
    data = json.loads(path.read_text())
    assert data["schema_version"] == RESULTS_SCHEMA_VERSION and set(data) == {"schema_version", "bench", "04_fidelity_vs_mse"}
    assert set(results.load_results("paper")) == {"bench", "04_fidelity_vs_mse"}


@pytest.mark.parametrize("content, match", [
    ("[]", r"results.json must hold a JSON object of sections, got list"),
    ("null", r"results.json must hold a JSON object of sections, got null"),
    ("{not json", r"results.json: not valid JSON"),
    ('{"schema_version": 99}', r"schema_version 99, written by a newer qinn"),
    ('{"schema_version": 0}', r"schema_version 0, an older layout"),
    ('{"bench": null}', r"section 'bench' must be a JSON object, got null"),
    ('{"bench": {"batch_size": 128}}', r"section 'bench' lacks key 'threads' .*`python -m qinn_lib.bench --record`"),
])
def test_unusable_results_file_names_file_section_and_key(repo, content, match):
    (repo / "figures" / "results.json").write_text(content)
    with pytest.raises(ResultsError, match=match):
        results.load_results("paper")


def test_older_section_and_wrong_type_name_section_and_key(repo):
    old = section_from_schema("03_isp_training")
    del old["test_nll_sem"]  # written by an older notebook 03
    (repo / "figures" / "results.json").write_text(json.dumps({"03_isp_training": old}))
    with pytest.raises(ResultsError, match=r"section '03_isp_training' lacks key 'test_nll_sem' \(written by an older "
                                           r"version.*`python -m qinn_lib.reports --profile paper --only 03`"):
        results.load_results("paper")
    bad = section_from_schema("bench_inn")
    bad["sizes"]["16k"]["single_ms"] = "fast"
    with pytest.raises(ResultsError, match=r"section 'bench_inn', key 'sizes'\['16k'\], key 'single_ms' must be a number, got 'fast'"):
        results.record("bench_inn", bad, "paper")
    assert not (repo / "figures" / "results.json").read_text().count("bench_inn"), "nothing recorded"


def test_numpy_values_are_refused_at_record_naming_the_section(repo):
    values = section_from_schema("bench")
    values["batch_size"] = np.int64(128)
    with pytest.raises(ResultsError, match=r"section 'bench': not plain JSON .*int64.*float\(\)/int\(\)"):
        results.record("bench", values, "paper")


def test_results_file_that_is_a_folder(repo):
    (repo / "figures" / "results.json").mkdir()
    with pytest.raises(ResultsError, match=r"results.json is a folder"):
        results.record("bench", section_from_schema("bench"), "paper")


def test_concurrent_writers_keep_every_section(repo, monkeypatch):
    """Two writers' read-modify-write cycles overlap (the first is slowed down between reading and
    writing): without the lock the second writer's section is lost."""
    real_read = results._read
    first_has_read = threading.Event()

    def slow_read(path):
        data = real_read(path)
        if threading.current_thread().name == "slow":
            first_has_read.set()
            time.sleep(0.5)
        return data

    monkeypatch.setattr(results, "_read", slow_read)
    slow = threading.Thread(name="slow", target=results.record,
                            args=("bench", section_from_schema("bench"), "paper"))
    slow.start()
    assert first_has_read.wait(10)
    results.record("04_fidelity_vs_mse", section_from_schema("04_fidelity_vs_mse"), "paper")  # waits for the lock
    slow.join(10)
    assert set(results.load_results("paper")) == {"bench", "04_fidelity_vs_mse"}


def test_lock_timeout_names_the_lock_file(repo, monkeypatch):
    monkeypatch.setattr(results, "LOCK_TIMEOUT", 0.2)
    holder = results.results_lock("paper")
    done = threading.Event()

    def hold():
        with holder:
            done.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.1)
    try:
        with pytest.raises(ResultsError, match=r"another process has held .*\.results\.json\.lock for over 0 s"):
            results.record("bench", section_from_schema("bench"), "paper")
    finally:
        done.set()
        t.join(10)


def test_bench_record_checks_the_results_file_before_timing_anything(repo, monkeypatch, capsys):
    from qinn_lib.experiments import bench

    (repo / "figures" / "results.json").write_text("[]")
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("timed before checking the results file"))
    assert bench.main(["--record"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.json must hold a JSON object of sections, got list" in err


def test_verdicts_must_carry_their_test_p_values_and_interval(repo):
    """Issue 21: every verdict stored in results.json carries its test, p raw and Holm-adjusted and
    its effect interval; a statement that skipped the Holm step (no p_holm) is refused, naming it."""
    values = section_from_schema("05_qinn_vs_inn")
    results.record("05_qinn_vs_inn", values, "paper")
    stored = results.load_results("paper")["05_qinn_vs_inn"]["verdicts"][0]
    assert {"test", "p", "p_holm", "effect_ci", "word"} <= set(stored) and stored["test"] == "Welch t-test on raw values"
    undecided = {k: v for k, v in values["verdicts"][0].items() if k != "p_holm"}
    with pytest.raises(ResultsError, match=r"key 'verdicts'\[0\] \('B is higher'\) lacks \['p_holm'\]"):
        results.record("05_qinn_vs_inn", {**values, "verdicts": [undecided]}, "paper")
    with pytest.raises(ResultsError, match=r"key 'verdicts' must be a list of verdicts, got str"):
        results.record("05_qinn_vs_inn", {**values, "verdicts": "reproduced"}, "paper")
    old = {k: v for k, v in values.items() if k != "verdicts"}  # recorded before the verdicts existed
    results.record("05_qinn_vs_inn", old, "paper")
    assert "tested against the seed spread" in readme.render_results(results.load_results("paper"))


def test_readme_shows_the_verdicts_of_notebooks_04_and_05():
    values = {"04_fidelity_vs_mse": {**section_from_schema("04_fidelity_vs_mse"), "verdict": "B is higher: reproduced"},
              "05_qinn_vs_inn": section_from_schema("05_qinn_vs_inn")}
    text = readme.render_results(values)
    assert "Sec. 4.1's statements (Fig. 5) tested over the seeds (Welch's t on each metric's declared scale, or the " in text
    assert "Holm over the notebook's 1 hypotheses at family-wise α = 0.05" in text
    assert "Every comparison and Sec. 4.2's statements (Fig. 7), tested over the seeds" in text
    assert text.count("| statement | metric | seeds (a / b) | effect [95 % bootstrap CI] |") == 2
    assert "| B is higher | nll | 3 / 3 | B − A = +1 [" in text and "| reproduced (A lower) |" in text


def test_the_benchmark_announces_its_expected_duration_from_its_last_recorded_run(repo):
    """Regression: `python -m qinn_lib.bench` gave no idea that it takes half an hour."""
    from qinn_lib.experiments import bench

    assert bench.expected_duration().startswith("expected duration: unknown, no run recorded yet")
    results.record("bench", section_from_schema("bench") | {"wall_seconds": 1500.0, "wall_load_average": "3.9",
                                                            "machine": "x86_64, 2 cores"}, "paper")
    line = bench.expected_duration()
    assert line.startswith("expected duration: about 25 min, as the last recorded run (x86_64, 2 cores, load average 3.9")


def test_readme_in_brief_is_rendered_from_the_verdicts():
    """The README's summary quotes the recorded verdicts and the recorded deviation, nothing else."""
    qinn = section_from_schema("03_isp_training")
    brief = readme.in_brief({"03_isp_training": {**qinn, "recon_mean": 0.0766},
                             "04_fidelity_vs_mse": section_from_schema("04_fidelity_vs_mse")})
    text = "\n".join(brief)
    assert "7.66 %, above the paper's < 2.1 %" in text
    assert "(notebook 04): 1 statement: 1 reproduced (B is higher: reproduced (A lower))" in text
    assert "below the paper" in "\n".join(readme.in_brief({"03_isp_training": {**qinn, "recon_mean": 0.015}}))
    # a section recorded before the verdicts existed says nothing in brief
    assert readme.in_brief({"04_fidelity_vs_mse": {"seeds": [1], "table": "", "verdict": "x"}}) == []
    assert readme.render_results({"03_isp_training": qinn}).startswith("**In brief**")


def test_the_scaling_table_is_ordered_by_qubit_count():
    """Regression: the rows are stored under JSON keys, which sort as text ("10" < "4")."""
    from qinn_lib.notebook.readme import render_results

    rows = {str(n): {"n_qubits": n, "dense step cpu_ms": float(n), "preferred": "dense" if n < 10 else "gate"}
            for n in (10, 12, 4, 6, 8)}
    text = render_results({"bench_scaling": {"n_layers": 12, "batch_size": 128, "threads": 1, "rows": rows}})
    order = [int(line.split("|")[1]) for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert order == [4, 6, 8, 10, 12], order
