"""qinn_lib.evaluation.statistics: the tests behind every verdict, on cases with known answers
(identical samples, shifted Gaussians, an exact permutation p, Holm on a textbook vector, TOST
inside and outside its margin), the declared scales, the seeds-needed estimate and the verdicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from qinn_lib.evaluation import ensemble_tables, statistics
from qinn_lib.evaluation.results import VERDICT_KEYS
from qinn_lib.evaluation.statistics import hypothesis_tests as ht
from qinn_lib.evaluation.statistics import power, transforms


def entry(values, seeds=None):
    """A summarise entry of one metric with these per-seed values."""
    seeds = list(range(len(values))) if seeds is None else seeds
    recs = [{"label": "x", "config": {}, "config_fingerprint": "c", "data_fingerprint": "d", "seed": s,
             "metrics": {"v": float(v)}} for s, v in zip(seeds, values)]
    return ensemble_tables.summarise(recs)[0]["metrics"]["v"]


# -- the tests themselves ----------------------------------------------------------------------------
def test_identical_samples_are_not_different():
    a = np.array([1.0, 2.0, 3.5])
    assert ht.welch(a.copy(), a)["p"] == pytest.approx(1.0)
    assert ht.permutation(a.copy(), a)["p"] == pytest.approx(1.0)
    d = statistics.decide([statistics.compare(list(a), list(a), metric="nll")], family="t")[0]
    assert d["p"] == pytest.approx(1.0) and d["found"] == "undecided" and d["effect"] == pytest.approx(0.0)
    assert d["seeds_needed"] is None and d["seeds_note"] == "no difference observed"


def test_shifted_gaussians_with_many_seeds_are_decided_with_the_right_sign():
    rng = np.random.default_rng(0)
    a, b = rng.normal(10.0, 1.0, 40), rng.normal(11.0, 1.0, 40)
    up = statistics.decide([statistics.compare(list(a), list(b), metric="nll", a_label="A", b_label="B")], family="t")[0]
    assert up["p"] < 1e-4 and up["found"] == "a lower" and up["word"] == "A lower" and up["effect"] > 0
    assert up["effect_ci"][0] > 0 and up["effect_ci_t"][0] > 0  # b - a, both intervals above zero
    down = statistics.decide([statistics.compare(list(b), list(a), metric="nll", a_label="B", b_label="A")], family="t")[0]
    assert down["found"] == "b lower" and down["word"] == "A lower" and down["effect"] < 0
    # 40 vs 40 seeds: too many relabellings to enumerate, so a seeded random permutation test
    assert not ht.permutation(b, a)["exact"] and "random permutation" in up["robust_test"]
    assert ht.permutation(b, a, seed=3)["p"] == ht.permutation(b, a, seed=3)["p"]


def test_exact_permutation_p_of_fully_separated_ensembles():
    """3 vs 3 fully separated: the observed split is 1 of C(6, 3) = 20 relabellings, and its mirror
    another, so the two-sided exact p is 2/20 = 0.1 (and 2/924 for 6 vs 6)."""
    res = ht.permutation(np.array([4.0, 5.0, 6.0]), np.array([1.0, 2.0, 3.0]))
    assert res["exact"] and res["n_permutations"] == 20 and res["p"] == pytest.approx(0.1)
    six = ht.permutation(np.arange(7.0, 13.0), np.arange(1.0, 7.0))
    assert six["n_permutations"] == 924 and six["p"] == pytest.approx(2 / 924)


def test_holm_on_a_textbook_vector():
    """Holm (1979) step-down: sorted p (0.005, 0.01, 0.03, 0.04) times (4, 3, 2, 1), made monotone:
    0.02, 0.03, 0.06, 0.06."""
    pvals = {"w": 0.01, "x": 0.04, "y": 0.03, "z": 0.005}
    statements = []
    for key, p in pvals.items():
        s = statistics.compare([1.0, 2.0], [3.0, 4.0], metric="nll", key=key)
        statements.append({**s, "p": p, "a_values": [float(ord(key))], "b_values": [0.0]})  # distinct hypotheses
    statements = [{**s, "n_a": 2, "n_b": 2} for s in statements]
    got = {s["key"]: s["p_holm"] for s in statistics.decide(statements, family="t")}
    assert got == pytest.approx({"w": 0.03, "x": 0.06, "y": 0.06, "z": 0.02})


def test_holm_counts_a_repeated_comparison_once():
    a, b = [1.0, 1.2, 0.9], [2.0, 2.3, 2.1]
    one = statistics.compare(a, b, metric="nll", a_label="A", b_label="B")
    same = statistics.compare(a, b, metric="nll", a_label="A", b_label="B", expected="b>a", words="B is higher")
    other = statistics.compare(a, [1.1, 1.0, 1.3], metric="nll", a_label="A", b_label="C")
    decided = statistics.decide([one, same, other], family="t")
    assert decided[0]["family_size"] == 2 and decided[0]["p_holm"] == decided[1]["p_holm"]


def test_tost_accepts_within_the_margin_and_rejects_outside():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 0.1, 30)
    b = a[rng.permutation(30)] + 0.02
    assert ht.tost(b, a, 0.2) < 0.01  # a 0.02 shift, well inside ±0.2
    assert ht.tost(b + 0.5, a, 0.2) > 0.99  # a 0.52 shift, outside
    # a ratio margin on a log-scale metric: equivalent within x2, not within x1.01
    base = list(np.exp(a - 3.0))
    near = list(np.exp(b - 3.0))
    decided = statistics.decide([
        statistics.compare(base, near, metric="js/m_ll", expected="equivalent", margin=2.0, key="x2"),
        statistics.compare(base, near, metric="js/m_ll", expected="equivalent", margin=1.01, key="x1.01"),
    ], family="t")
    assert decided[0]["verdict"] == "reproduced" and decided[0]["word"] == "reproduced (equivalent within ×2)"
    assert decided[1]["verdict"] == "undecided" and decided[1]["p_tost"] > 0.05
    with pytest.raises(ValueError, match="margin"):
        statistics.compare(base, near, metric="js/m_ll", expected="equivalent")
    with pytest.raises(ValueError, match="ratio > 1"):
        statistics.compare(base, near, metric="js/m_ll", expected="equivalent", margin=0.5)


def test_an_equivalence_claim_is_contradicted_only_by_a_difference_beyond_its_margin():
    a = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]
    far = [3.0, 3.1, 2.9, 3.05, 2.95, 3.0]
    d = statistics.decide([statistics.compare(a, far, metric="js/x", expected="equivalent", margin=1.5)], family="t")[0]
    assert d["verdict"] == "contradicted" and d["word"] == "contradicted (a lower)"


def test_paired_tests_use_the_pairs():
    """Two quantities of the same runs: the pairs move together, so a paired test sees a shift that
    the seed-to-seed spread hides from Welch."""
    a = np.array([1.0, 5.0, 9.0, 3.0, 7.0])
    b = a + np.array([0.5, 0.6, 0.4, 0.55, 0.45])
    assert ht.paired_t(b, a)["p"] < 1e-3 and ht.welch(b, a)["p"] > 0.5
    assert ht.wilcoxon(b, a)["p"] == pytest.approx(0.0625)  # 5 pairs, all positive: 2 / 2^5
    # pairs are matched by seed, whatever the order of the values
    left, right = entry([1.0, 2.0, 3.0], seeds=[7, 8, 9]), entry([3.5, 1.5, 2.5], seeds=[9, 7, 8])
    d = statistics.decide([statistics.compare(left, right, metric="nll", paired=True)], family="t")[0]
    assert d["a_values"] == [1.0, 2.0, 3.0] and d["b_values"] == [1.5, 2.5, 3.5]
    assert d["test"] == "paired t-test on raw values" and d["robust_test"] == "exact Wilcoxon signed-rank test"
    with pytest.raises(ValueError, match="do not pair up"):
        statistics.compare([1.0, 2.0], [1.0, 2.0, 3.0], metric="nll", paired=True)


def test_bootstrap_intervals_are_seeded_and_respect_bounds():
    b, a = np.array([0.01, 0.02, 0.05]), np.array([0.1, 0.12, 0.2])
    first = ht.bootstrap_difference(b, a, seed=5)
    assert first == ht.bootstrap_difference(b, a, seed=5) and first[0] < first[1] < 0
    fractions = np.array([0.0, 0.001, 0.4])  # mean ± std of these would cross zero
    lo, hi = ht.bootstrap_mean(fractions)
    assert fractions.mean() - fractions.std(ddof=1) < 0 <= lo <= hi <= fractions.max() + 1e-12
    assert ht.bootstrap_mean(np.array([0.3])) == [0.3, 0.3]


# -- scales --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric, scale", [
    ("js/m_ll", "log"), ("w1/delta_r", "log"), ("auc", "log(AUC - 1/2)"), ("auc_bdt", "log(AUC - 1/2)"),
    ("auc_bdt_derived", "log(AUC - 1/2)"), ("fpd", "log"), ("kpd", "log"), ("recon_mean", "log"),
    ("reading/range_median", "log"), ("fold_fraction", "log"), ("peak_share_error/m_ll", "log"),
    ("nll", "raw"), ("nll_normalised", "raw"), ("log_z", "raw"), ("peak_excess/m_ll", "raw"), ("fpd_err", "raw"),
    ("something_new", "raw"),
])
def test_declared_scales(metric, scale):
    assert transforms.rule_for(metric) == scale


def test_a_log_scale_falls_back_to_raw_and_says_so():
    (x,), scale = transforms.apply("kpd", [0.001, -0.0002, 0.003])  # the unbiased KPD can be negative
    assert scale == "raw (log needs values > 0)" and x[1] == -0.0002
    _, scale = transforms.apply("auc", [0.51, 0.499], [0.8, 0.9])
    assert scale == "raw (log needs AUC > 1/2)"
    (a, b), scale = transforms.apply("auc", [0.6], [0.55])
    assert scale == "log(AUC - 1/2)" and b[0] - a[0] == pytest.approx(math.log(0.5))
    d = statistics.decide([statistics.compare([0.6, 0.61, 0.62], [0.55, 0.56, 0.54], metric="auc")], family="t")[0]
    assert d["effect_kind"] == "ratio b/a" and 0.4 < d["effect"] < 0.6  # (AUC_b - 1/2) / (AUC_a - 1/2)
    assert "(b − ½) / (a − ½)" in d["text"]


# -- seeds needed ----------------------------------------------------------------------------------------
def test_seeds_needed_grows_with_the_level_and_shrinks_with_the_effect():
    a, b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])  # effect 1 spread
    n5, note = power.seeds_needed(b, a, alpha=0.05)
    assert note == "" and 15 <= n5 <= 20  # textbook: d = 1, two-sided 0.05, power 0.8 -> 17 per group
    n_strict, _ = power.seeds_needed(b, a, alpha=0.005)
    n_big, _ = power.seeds_needed(b + 3.0, a, alpha=0.05)
    assert n_strict > n5 > n_big >= 2
    assert power.seeds_needed(b[:1], a, alpha=0.05) == (None, "1 seed")
    assert power.seeds_needed(np.ones(3), np.ones(3), alpha=0.05) == (None, "no seed spread")
    assert power.seeds_needed(b + 1e-9, b, alpha=0.05) == (None, "more than 1000 seeds")
    # a huge effect: 2 seeds suffice (statsmodels' root finder fails to converge there)
    assert power.seeds_needed(b + 100.0, a, alpha=0.05 / 30)[0] == 2


# -- verdicts and their records --------------------------------------------------------------------------
def test_one_seed_is_undecided_and_says_so():
    d = statistics.decide([statistics.compare(entry([1.0]), entry([2.0]), metric="nll", expected="b>a", words="w")],
                          family="t")[0]
    assert d["verdict"] == "undecided" and d["word"] == "undecided (1 seed)" and math.isnan(d["p"])
    assert "no test with one seed -> undecided (1 seed)" in d["text"] and d["family_size"] == 0


def test_claims_distinguish_reproduced_contradicted_undecided_and_missing():
    low, high, near = [1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.1, 1.9, 2.0, 2.05], [1.02, 1.15, 0.85, 1.1, 0.9]
    decided = statistics.decide([
        statistics.compare(low, high, metric="nll", a_label="A", b_label="B", expected="b>a", key="r"),
        statistics.compare(low, high, metric="nll", a_label="A", b_label="B", expected="b<a", key="c"),
        statistics.compare(low, near, metric="nll", a_label="A", b_label="N", expected="b<a", key="u"),
        statistics.compare(None, high, metric="nll", a_label="A", b_label="B", expected="b<a", key="m", words="w"),
    ], family="t")
    r, c, u, m = decided
    assert (r["verdict"], r["word"]) == ("reproduced", "reproduced (A lower)")
    assert (c["verdict"], c["word"]) == ("contradicted", "contradicted (A lower)")
    assert (u["verdict"], u["word"], u["seeds_needed"]) == ("undecided", "undecided (more than 1000 seeds)", None)
    assert m["verdict"] == "missing" and m["text"] == "w: no A results (nll) -> not tested"
    assert r["family_size"] == 2  # r and c are one hypothesis; u the other; m none
    for v in decided:
        assert set(VERDICT_KEYS) <= set(v)
    json.dumps(decided, allow_nan=True)  # plain JSON, as results.json stores it
    text = r["text"]
    for piece in ("B − A = +", "Welch t-test on raw values, p = ", "Holm p = ", "exact permutation test p = ", "-> reproduced"):
        assert piece in text, piece
    with pytest.raises(ValueError, match="expected must be one of"):
        statistics.compare(low, high, metric="nll", expected="bigger")


def test_deciding_twice_gives_the_same_verdicts():
    s = [statistics.compare([1.0, 1.1, 0.9], [2.0, 2.2, 1.9], metric="js/x", key="k"),
         statistics.compare(None, [1.0], metric="nll", key="gone")]
    once = statistics.decide(s, family="t")
    twice = statistics.decide(once, family="t")
    assert [v["text"] for v in once] == [v["text"] for v in twice] and once[0]["p_holm"] == twice[0]["p_holm"]


def test_verdict_table_and_order_line():
    qinn = [0.02, 0.03, 0.025, 0.022]
    statements = [statistics.compare(qinn, [0.001, 0.0012, 0.0011, 0.0009], metric="js/m_ll", a_label="QINN",
                                     b_label="INN 6k"),
                  statistics.compare(qinn, [0.02, 0.031, 0.026, 0.021], metric="js/m_ll", a_label="QINN",
                                     b_label="INN 2k"),
                  statistics.compare(qinn, None, metric="js/m_ll", a_label="QINN", b_label="INN 16k")]
    decided = statistics.decide(statements, family="t")
    line = statistics.order_line(decided, a_label="QINN", b_prefix="INN ")
    assert line.startswith("INN lower than the QINN: 6k (Holm p ") and "undecided against INN: 2k (" in line
    assert line.endswith("; not tested (no results): 16k")
    table = statistics.format_verdict_table(decided)
    assert table.splitlines()[0].startswith("| statement | metric | seeds (a / b) | effect [95 % bootstrap CI] |")
    assert "| INN 6k vs QINN | js/m_ll | 4 / 4 | INN 6k / QINN = 0.04" in table
    assert table.splitlines()[-1] == "| INN 16k vs QINN | js/m_ll | – | – | – | – | – | – | not tested |"


def test_verdict_tally_counts_claims_in_the_verdict_words():
    low, high, near = [1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.1, 1.9, 2.0, 2.05], [1.02, 1.15, 0.85, 1.1, 0.9]
    decided = statistics.decide([
        statistics.compare(low, high, metric="nll", expected="b>a", key="r"),
        statistics.compare(low, near, metric="nll", expected="b<a", key="u"),
        statistics.compare(low, high, metric="nll", key="plain"),  # a comparison without a claim: not counted
        statistics.compare(None, high, metric="nll", expected="b<a", key="m"),
    ], family="t")
    assert statistics.verdict_tally(decided) == "3 statements: 1 reproduced, 1 undecided, 1 not tested"
    assert statistics.verdict_tally(decided[:1]) == "1 statement: 1 reproduced"
    assert statistics.verdict_tally([]) == "0 statements: none tested"
    with pytest.raises(ValueError, match="unknown verdict"):
        statistics.verdict_tally([{"verdict": "not reproduced"}])


def test_holm_adjusts_the_finite_p_values_and_passes_nan_through():
    from statsmodels.stats.multitest import multipletests

    from qinn_lib.evaluation.statistics import hypothesis_tests

    ps = [0.01, float("nan"), 0.04, 0.002]
    got = hypothesis_tests.holm(ps, alpha=0.05)
    want = multipletests([0.01, 0.04, 0.002], alpha=0.05, method="holm")[1]
    assert got[1] != got[1] and [got[0], got[2], got[3]] == pytest.approx(list(want))
    assert hypothesis_tests.holm([], alpha=0.05) == []
