"""Metrics for comparing generative models: 1-d distances, physical-unit NLL, classifier AUC,
results files and tables. Small, seeded samples only (fast and deterministic)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js
from scipy.stats import norm

from qinn_lib.evaluation import distances, ensemble_tables, evaluate, records, two_sample
from qinn_lib.events.observables import FEATURES, OBSERVABLE_LABELS
from qinn_lib.events.sample import EventSample
from qinn_lib.events.scaling import AngleScaler
from qinn_lib.experiments.one_model import PreparedData, TrainedModel
from qinn_lib.training.config import INNRunConfig
from qinn_lib.training.loop import TrainResult


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Small tensors: one thread is as fast and keeps the machine free for other work.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fake_events(n: int, seed: int, pt_shift: float = 0.0) -> np.ndarray:
    """Physically sensible (N, 5) features: pT > 25 GeV, any azimuth, central leptons."""
    rng = np.random.default_rng(seed)
    return np.column_stack([
        25.0 + rng.exponential(20.0, n) + pt_shift,
        25.0 + rng.exponential(20.0, n) + pt_shift,
        rng.uniform(0.0, 2.0 * np.pi, n),
        rng.normal(0.0, 1.2, n),
        rng.normal(0.0, 1.2, n),
    ])


# -- W1 and JS -------------------------------------------------------------------------------------
def test_metric_observables_are_known_and_start_with_the_features():
    assert distances.METRIC_OBSERVABLES[:5] == FEATURES
    assert {"m_ll", "delta_r", "pt_z", "px_lm"} <= set(distances.METRIC_OBSERVABLES)
    assert all(o in OBSERVABLE_LABELS for o in distances.METRIC_OBSERVABLES)


def test_wasserstein_identical_and_shifted():
    a = np.random.default_rng(0).normal(0.0, 1.0, 5_000)
    assert distances.wasserstein_1d(a, a) == 0.0
    # The same sample shifted: W1 is exactly the shift.
    assert distances.wasserstein_1d(a, a + 0.7) == pytest.approx(0.7, abs=1e-12)
    # An independent shifted Gaussian: the shift up to sampling noise (~0.02 at these sizes).
    b = np.random.default_rng(1).normal(0.7, 1.0, 5_000)
    assert distances.wasserstein_1d(a, b) == pytest.approx(0.7, abs=0.05)


def test_one_d_inputs_are_validated():
    with pytest.raises(ValueError, match="1-D"):
        distances.wasserstein_1d(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        distances.jensen_shannon(np.arange(10.0), np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        distances.wasserstein_1d(np.arange(3.0), [])
    with pytest.raises(ValueError, match="percentiles coincide"):
        distances.jensen_shannon(np.ones(100), np.arange(10.0))


def test_js_identical_is_zero():
    a = np.random.default_rng(2).normal(size=3_000)
    assert distances.jensen_shannon(a, a) == 0.0
    assert distances.jensen_shannon(a, a.copy(), bins=7) == 0.0


def test_js_disjoint_supports_is_one():
    # Two-valued reference: its 0.1/99.9 percentiles are its min and max, so none of it falls in
    # the outer bins, while b lies entirely in the overflow bin.
    a = np.repeat([0.0, 1.0], 500)
    assert distances.jensen_shannon(a, a + 5.0) == pytest.approx(1.0, abs=1e-15)
    assert distances.jensen_shannon(a, a - 5.0) == pytest.approx(1.0, abs=1e-15)


def test_js_counts_events_outside_the_reference_range():
    """Continuous reference of 10 000 distinct values: exactly 10 lie below the 0.1 and 10 above
    the 99.9 percentile; a sample far above shares only the overflow bin with it."""
    a = np.random.default_rng(3).uniform(0.0, 1.0, 10_000)
    b = np.random.default_rng(4).uniform(2.0, 3.0, 4_000)
    p_over = 10 / 10_000
    m = 0.5 * (p_over + 1.0)
    kl_p = (1.0 - p_over) * 1.0 + p_over * math.log2(p_over / m)  # bins with a only: log2(2) = 1
    kl_q = math.log2(1.0 / m)
    expected = 0.5 * (kl_p + kl_q)
    assert distances.jensen_shannon(a, b) == pytest.approx(expected, rel=1e-12)
    assert 0.99 < expected < 1.0


def test_js_matches_scipy_on_the_same_histogram():
    a = np.random.default_rng(5).normal(0.0, 1.0, 2_000)
    b = np.random.default_rng(6).normal(0.5, 1.3, 1_500)
    bins = 12
    edges = distances.histogram_edges(a, bins)
    assert len(edges) == bins + 1
    assert edges[0] == pytest.approx(np.percentile(a, 0.1)) and edges[-1] == pytest.approx(np.percentile(a, 99.9))
    full = np.concatenate([[-np.inf], edges, [np.inf]])  # underflow, regular bins, overflow
    p, _ = np.histogram(a, full)
    q, _ = np.histogram(b, full)
    assert p.sum() == len(a) and q.sum() == len(b)
    ref = scipy_js(p / p.sum(), q / q.sum(), base=2) ** 2
    assert distances.jensen_shannon(a, b, bins=bins) == pytest.approx(ref, rel=1e-10)


def test_observable_distances_drops_nonfinite_generated_rows():
    truth = fake_events(2_000, seed=7)
    gen = fake_events(1_500, seed=8)
    clean = distances.observable_distances(truth, gen)
    dirty = gen.copy()
    dirty = np.vstack([dirty, [[np.nan, 30.0, 1.0, 0.0, 0.0], [40.0, np.inf, 1.0, 0.0, 0.0]]])
    out = distances.observable_distances(truth, dirty)
    assert out["n_dropped"] == 2 and out["n_generated"] == 1_500 and clean["n_dropped"] == 0
    for o in distances.METRIC_OBSERVABLES:
        assert out[o] == clean[o]
        assert out[o]["w1"] > 0.0 and 0.0 < out[o]["js"] < 0.1  # same distribution: small
    same = distances.observable_distances(truth, truth)
    assert all(same[o] == {"w1": 0.0, "js": 0.0} for o in distances.METRIC_OBSERVABLES)
    with pytest.raises(ValueError, match="expected shape"):
        distances.observable_distances(truth, gen[:, :4])


def test_observable_distances_see_a_wrong_mass():
    truth = fake_events(2_000, seed=9)
    gen = fake_events(2_000, seed=10, pt_shift=15.0)
    out = distances.observable_distances(truth, gen)
    # shifting both pT by 15 GeV moves the pT distributions by exactly that much on average
    assert out["pt_lp"]["w1"] == pytest.approx(15.0, abs=2.0)
    assert out["m_ll"]["w1"] > 10.0 and out["m_ll"]["js"] > 0.05


def test_peak_and_tails_separates_the_peak_shape_from_the_tails():
    rng = np.random.default_rng(4)
    mz = 91.188

    def sample(n, peak_width, tail_slope):
        peak = mz + peak_width * rng.standard_cauchy(n)
        tails = 60.0 + rng.exponential(tail_slope, n)  # broad, mostly outside the window
        return np.where(rng.random(n) < 0.8, peak, tails)

    truth = sample(40_000, 1.25, 20.0)
    same = distances.peak_and_tails(truth, sample(40_000, 1.25, 20.0))
    wrong_tails = distances.peak_and_tails(truth, sample(40_000, 1.25, 60.0))
    wrong_peak = distances.peak_and_tails(truth, sample(40_000, 3.0, 20.0))
    assert same["js_peak"] < 0.01 and same["js_tails"] < 0.01
    assert abs(same["peak_fraction_generated"] - same["peak_fraction_truth"]) < 0.01
    assert wrong_tails["js_tails"] > 10 * same["js_tails"] and wrong_tails["js_peak"] < 0.01
    assert wrong_peak["js_peak"] > 10 * same["js_peak"]
    assert wrong_peak["peak_fraction_generated"] < wrong_peak["peak_fraction_truth"] - 0.05, "a wider peak spills out"
    # a model with no events outside the window misses the tails completely
    only_peak = distances.peak_and_tails(truth, np.full(100, mz))
    assert only_peak["js_tails"] == 1.0 and only_peak["peak_fraction_generated"] == 1.0
    with_nan = distances.peak_and_tails(truth, np.array([mz, np.nan, np.inf, 70.0]))
    assert with_nan["n_dropped"] == 2 and with_nan["peak_fraction_generated"] == 0.5
    # toy data far from the Z: no peak to compare, NaN rather than a made-up number
    assert np.isnan(distances.peak_and_tails(rng.normal(5, 1, 100), rng.normal(5, 1, 100))["js_peak"])
    with pytest.raises(ValueError, match="half_width"):
        distances.peak_and_tails(truth, truth, half_width=0.0)
    with pytest.raises(ValueError, match="no finite values"):
        distances.peak_and_tails(truth, [np.nan])


# -- AUC -------------------------------------------------------------------------------------------
def test_auc_rank_formula_hand_example():
    pos = [0.9, 0.8, 0.4]
    neg = [0.5, 0.3, 0.8]
    # pairs won by the positive: 0.9 beats 3; 0.8 beats 0.5, 0.3 and ties 0.8 (1/2); 0.4 beats 0.3
    assert two_sample.auc_mann_whitney(pos, neg) == pytest.approx(6.5 / 9.0, abs=1e-15)
    assert two_sample.auc_mann_whitney(neg, pos) == pytest.approx(2.5 / 9.0, abs=1e-15)
    assert two_sample.auc_mann_whitney([2.0, 3.0], [0.0, 1.0]) == 1.0


def test_auc_rank_formula_matches_pair_count_with_ties():
    rng = np.random.default_rng(11)
    pos = np.round(rng.normal(0.3, 1.0, 300), 1)  # rounded: many ties
    neg = np.round(rng.normal(0.0, 1.0, 250), 1)
    diff = pos[:, None] - neg[None, :]
    brute = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert two_sample.auc_mann_whitney(pos, neg) == pytest.approx(brute, abs=1e-12)


def test_hanley_mcneil_standard_error():
    # A = 0.5, n = 100 + 100: Q1 = Q2 = 1/3, SE^2 = (1/4 + 2 * 99 / 12) / 100^2
    assert two_sample.auc_standard_error(0.5, 100, 100) == pytest.approx(math.sqrt(16.75) / 100, rel=1e-12)
    assert two_sample.auc_standard_error(1.0, 50, 70) == 0.0


def test_classifier_auc_same_distribution_is_half():
    truth = fake_events(3_000, seed=12)
    gen = fake_events(3_000, seed=13)
    rng_state = torch.get_rng_state()
    out = two_sample.classifier_auc(truth, gen, seed=1)
    assert torch.equal(torch.get_rng_state(), rng_state), "the global torch RNG must be untouched"
    assert out["n_test"] == 900 and out["n_train"] == 2_100
    # Hanley-McNeil at A ~ 0.5 with 900 + 900 held-out events: sqrt((1/4 + 2 * 899 / 12) / 900^2)
    assert out["auc_sem"] == pytest.approx(two_sample.auc_standard_error(out["auc"], 900, 900))
    assert 0.012 < out["auc_sem"] < 0.015
    assert abs(out["auc"] - 0.5) < 4 * out["auc_sem"]
    again = two_sample.classifier_auc(truth, gen, seed=1)
    assert again == out, "same seed, same result"


def test_classifier_auc_separates_different_samples():
    truth = fake_events(3_000, seed=14)
    gen = fake_events(3_000, seed=15, pt_shift=25.0)
    out = two_sample.classifier_auc(truth, gen, seed=2, max_events=2_000)
    assert out["n_train"] + out["n_test"] == 2_000
    assert out["auc"] > 0.9


# -- physical-unit NLL: the analytic case ----------------------------------------------------------
class AffineGaussian(torch.nn.Module):
    """z = (u - mu) / s per scaled feature u: the exact flow of a diagonal Gaussian in u."""

    def __init__(self, mu, s):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.as_tensor(mu, dtype=torch.float64))
        self.s = torch.nn.Parameter(torch.as_tensor(s, dtype=torch.float64))

    def forward_and_logdet(self, u):
        z = (u - self.mu) / self.s
        return z, (-torch.log(self.s).sum()).expand(u.shape[0])

    def forward(self, u):
        return self.forward_and_logdet(u)[0]

    def inverse(self, z):
        return self.mu + self.s * z


MEANS = np.array([45.0, 40.0, np.pi, 0.3, -0.2])
SIGMAS = np.array([12.0, 9.0, 0.8, 1.1, 1.4])


def gaussian_setup(n: int = 4_000, seed: int = 21):
    x = np.random.default_rng(seed).normal(MEANS, SIGMAS, size=(n, 5))
    sample = EventSample.from_array(x, meta={"generator": "gaussian test"})
    scaler = AngleScaler.fit(sample.train)
    as_t = lambda a: torch.as_tensor(scaler.transform(a), dtype=torch.float64)  # noqa: E731
    data = PreparedData(sample, scaler, as_t(sample.train), as_t(sample.val), as_t(sample.test))
    # The true density in scaled units: u = scale (x - lo) is Gaussian with these parameters.
    model = AffineGaussian(scaler.transform(MEANS[None])[0], SIGMAS * scaler.scale)
    return data, model


def test_affine_toy_logdet_matches_autograd_jacobian():
    data, model = gaussian_setup(n=200)
    u = data.test[:3]
    _, logdet = model.forward_and_logdet(u)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], u[i])
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-12)


def test_nll_in_physical_units_matches_the_analytic_density():
    data, model = gaussian_setup()
    assert abs(data.scaler.log_abs_det) > 1.0, "the scaling's Jacobian must matter for this test"
    out = evaluate.test_nll(model, data)
    x = data.sample.test
    exact = -norm.logpdf(x, MEANS, SIGMAS).sum(axis=1)
    assert out["n_events"] == len(x) and out["n_nonfinite"] == 0
    assert out["nll"] == pytest.approx(exact.mean(), rel=1e-12)
    assert out["nll_sem"] == pytest.approx(exact.std(ddof=1) / math.sqrt(len(x)), rel=1e-9)
    # Closed form of the expectation: sum_j (1/2 + log(2 pi)/2 + log sigma_j); -log p - const is
    # chi2_5 / 2 with variance 5/2.
    expected = np.sum(0.5 + 0.5 * np.log(2 * np.pi) + np.log(SIGMAS))
    assert abs(out["nll"] - expected) < 4 * math.sqrt(2.5 / len(x))
    # batching changes nothing
    assert evaluate.test_nll(model, data, batch_size=7)["nll"] == pytest.approx(out["nll"], rel=1e-13)


def test_nll_restores_mode_and_rejects_models_without_logdet():
    data, model = gaussian_setup(n=200)
    model.train()
    evaluate.test_nll(model, data)
    assert model.training
    with pytest.raises(TypeError, match="forward_and_logdet"):
        evaluate.test_nll(torch.nn.Linear(5, 5), data)
    with pytest.raises(ValueError, match="split"):
        evaluate.test_nll(model, data, split="holdout")


# -- evaluate_model end to end on the toy model ----------------------------------------------------
def toy_trained(seed: int = 5) -> TrainedModel:
    data, model = gaussian_setup(n=4_000)
    history = [{"epoch": 1, "seconds": 1.5}, {"epoch": 2, "seconds": 2.25}]
    result = TrainResult(history=history, checkpoint=Path("unused"), seconds=0.0, epochs_run=0)
    cfg = INNRunConfig(profile="quick", seed=seed, n_events=4_000, epochs=2)
    return TrainedModel(cfg, model, data, result, Path("unused"))


def test_evaluate_model_on_the_exact_toy_model():
    trained = toy_trained()
    m = evaluate.evaluate_model(trained, seed=3)
    assert m["n_test"] == m["n_generated"] == 2_000 and m["n_generated_nonfinite"] == 0
    assert m["n_dropped_observables"] == 0
    for o in distances.METRIC_OBSERVABLES:
        assert f"w1/{o}" in m and 0.0 <= m[f"js/{o}"] < 0.1
    assert {"js/m_ll_peak", "js/m_ll_tails", "peak_excess/m_ll", "peak_share_error/m_ll"} <= set(m)
    assert m["peak_share_error/m_ll"] == abs(m["peak_excess/m_ll"]) or np.isnan(m["peak_excess/m_ll"])
    assert m["nll"] == pytest.approx(evaluate.test_nll(trained.model, trained.data)["nll"])
    assert abs(m["auc"] - 0.5) < 4 * m["auc_sem"], "the model is the true density"
    assert m["recon_mean"] < 1e-12, "affine round trip is exact"
    assert m["params_total"] == 10
    assert m["train_seconds"] == 3.75 and m["train_epochs"] == 2
    json.dumps(m)  # JSON-ready
    assert evaluate.evaluate_model(trained, seed=3) == m, "seeded: deterministic"


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_evaluate_model_peak_metrics_use_the_kept_events():
    trained = toy_trained()
    gen = trained.generate(1_000, seed=4)
    # eta_lp - eta_lm = 2e155: Delta R and M_ll overflow, so this row is dropped from every metric
    dirty = np.vstack([gen, [[40.0, 40.0, 1.0, 1e155, -1e155]]])
    m = evaluate.evaluate_model(trained, seed=3, generated=dirty)
    assert m["n_dropped_observables"] == 1 and m["n_generated"] == 1_001
    from qinn_lib.events.observables import reconstruct

    ref = distances.peak_and_tails(reconstruct(np.asarray(trained.data.sample.test))["m_ll"], reconstruct(gen)["m_ll"])
    assert m["peak_excess/m_ll"] == ref["peak_fraction_generated"] - ref["peak_fraction_truth"]
    assert m["js/m_ll"] == distances.observable_distances(trained.data.sample.test, gen)["m_ll"]["js"]


# -- the field's measures and the honest likelihood in evaluate_model ------------------------------
#: Two-sided 99 % bound in units of a 5-fold error (4 degrees of freedom).
T99 = float(stats.t.ppf(0.995, df=4))


def toy_box_mass(trained) -> float:
    """The toy's true density in scaled units is N(mu_u, s_u): its mass in [0, pi]^5, analytically."""
    mu, s = trained.model.mu.detach().numpy(), trained.model.s.detach().numpy()
    return float(np.prod(norm.cdf((np.pi - mu) / s) - norm.cdf(-mu / s)))


def test_evaluate_model_reports_the_field_metrics_and_the_honest_likelihood():
    trained = toy_trained()
    m = evaluate.evaluate_model(trained, seed=3)
    assert set(evaluate.FIELD_METRICS) | {"log_z", "log_z_err", "nll_normalised", "nll_normalised_err"} <= set(m)
    assert not {"fold_fraction", "box_negative_fraction", "minority_mass"} & set(m), "no Jacobian: no folds"
    # the toy is the true density: the field's measures sit at their noise floor
    assert abs(m["auc_bdt"] - 0.5) < T99 * m["auc_bdt_err"] and abs(m["auc_bdt_derived"] - 0.5) < T99 * m["auc_bdt_derived_err"]
    assert m["fpd"] < 0.02 and abs(m["kpd"]) < 4 * m["kpd_err"]
    # Z over the box: the toy Gaussian's mass in [0, pi]^5 (the box is the training range: ~1 % outside)
    exact = math.log(toy_box_mass(trained))
    assert exact < -0.003
    assert abs(m["log_z"] - exact) < 4 * m["log_z_err"]
    assert m["nll_normalised"] == pytest.approx(m["nll"] + m["log_z"])
    assert m["nll_normalised_err"] == pytest.approx(math.hypot(m["nll_sem"], m["log_z_err"]))
    records.check_record(records.make_record("toy", trained, m), "record")


def test_an_exact_bijection_gets_z_from_its_own_samples():
    trained = toy_trained()
    trained.model.exact_bijection = True  # the affine toy is one
    gen = trained.generate(2_000, seed=4)
    m = evaluate.evaluate_model(trained, seed=3, generated=gen)
    u = trained.data.scaler.transform(gen)
    share = np.all((u >= 0) & (u <= np.pi), axis=1).mean()
    assert m["log_z"] == pytest.approx(math.log(share))
    assert abs(m["log_z"] - math.log(toy_box_mass(trained))) < 4 * m["log_z_err"]


def test_truth_floor_compares_two_true_samples():
    trained = toy_trained()
    floor = evaluate.truth_floor(trained.data, seed=5)
    assert set(floor) == set(evaluate.FIELD_METRICS) | {"n_events"}
    assert floor["n_events"] == 2_000  # test (2000) against train + val (1500 + 500)
    assert abs(floor["auc_bdt"] - 0.5) < T99 * floor["auc_bdt_err"]
    assert floor["fpd"] < 0.02 and abs(floor["kpd"]) < 4 * floor["kpd_err"]
    assert evaluate.truth_floor(trained.data, seed=5) == floor, "seeded"


@pytest.mark.parametrize("metrics, match", [
    ({"fpd": "0.1", "fpd_err": 0.01}, r"metric 'fpd' must be a number, got '0.1'"),
    ({"kpd": 0.1}, r"metric 'kpd' comes without 'kpd_err'"),
    ({"log_z_err": 0.1}, r"metric 'log_z_err' comes without 'log_z'"),
    ({"fold_fraction": None}, r"metric 'fold_fraction' must be a number"),
])
def test_records_refuse_malformed_field_metrics(metrics, match):
    with pytest.raises(ValueError, match=match):
        records.check_record(record("QINN", 1, metrics), "rec")
    records.check_record(record("QINN", 1, {"fpd": float("nan"), "fpd_err": float("nan")}), "NaN is a number")


# -- results files and tables ----------------------------------------------------------------------
def record(label, seed, metrics_, data_fp="d" * 16, cfg=None):
    return {"label": label, "config": dict(cfg or {"size": label}), "config_fingerprint": f"c{seed}",
            "data_fingerprint": data_fp, "seed": seed, "metrics": metrics_}


def test_results_round_trip(tmp_path):
    trained = toy_trained(seed=8)
    rec = records.make_record("INN toy", trained, {"auc": 0.51, "nll": 3.5, "nll_inf": float("inf")}, eval_seed=4)
    assert rec["seed"] == 8 and rec["data_fingerprint"] == trained.data.fingerprint
    assert rec["config_fingerprint"] == trained.cfg.fingerprint() and rec["eval_seed"] == 4
    recs = [rec, record("QINN", 1, {"auc": 0.7}, data_fp=trained.data.fingerprint)]
    path = tmp_path / "sub" / "results.json"
    assert records.write_results(path, recs) is None, "a notebook cell ending in it prints no path"
    assert records.read_results(path) == recs
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == records.RESULTS_SCHEMA_VERSION and "created" in doc
    assert [p.name for p in path.parent.iterdir()] == ["results.json"], "no temporary file left behind"
    with pytest.raises(ValueError, match="lacks key"):
        records.write_results(tmp_path / "bad.json", [{"label": "x"}])


@pytest.mark.parametrize("version", [0, 2, None])
def test_results_schema_version_is_checked(tmp_path, version):
    path = tmp_path / "old.json"
    doc = {"created": "x", "records": []}
    if version is not None:
        doc["schema_version"] = version
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=rf"old\.json has schema_version {version}.*version {records.RESULTS_SCHEMA_VERSION}"):
        records.read_results(path)


def test_results_with_different_data_are_refused(tmp_path):
    recs = [record("QINN", 1, {"auc": 0.7}, data_fp="aaaa"), record("INN", 1, {"auc": 0.6}, data_fp="bbbb")]
    path = tmp_path / "r.json"
    records.write_results(path, recs)
    with pytest.raises(ValueError, match="different data") as err:
        records.read_results(path)
    for piece in ("aaaa", "bbbb", "'QINN'", "'INN'", "r.json"):
        assert piece in str(err.value)
    assert records.read_results(path, require_same_data=False) == recs


def test_summarise_mean_and_std_over_seeds():
    recs = [record("QINN", s, {"auc": a, "w1": {"m_ll": w}, "flag": True, "mae": [1, 2]})
            for s, a, w in ((1, 0.6, 1.0), (2, 0.7, 2.0), (3, 0.8, 6.0))]
    recs.append(record("INN", 1, {"auc": 0.51234, "params_total": 15960}))
    rows = ensemble_tables.summarise(recs)
    assert [r["label"] for r in rows] == ["QINN", "INN"]
    q, i = rows
    assert q["n_seeds"] == 3 and q["seeds"] == [1, 2, 3]
    assert q["metrics"]["auc"]["mean"] == pytest.approx(0.7) and q["metrics"]["auc"]["std"] == pytest.approx(0.1)
    assert q["metrics"]["w1/m_ll"]["mean"] == pytest.approx(3.0)
    assert q["metrics"]["w1/m_ll"]["std"] == pytest.approx(math.sqrt(7.0))  # deviations -2, -1, 3
    assert "flag" not in q["metrics"] and "mae" not in q["metrics"]
    assert i["metrics"]["auc"]["n"] == 1 and math.isnan(i["metrics"]["auc"]["std"])
    assert q["metrics"]["w1/m_ll"]["values"] == [1.0, 2.0, 6.0] and i["metrics"]["auc"]["values"] == [0.51234]
    with pytest.raises(ValueError, match="several records with seed"):
        ensemble_tables.summarise(recs + [record("INN", 1, {"auc": 0.5})])
    with pytest.raises(ValueError, match=r"differ in \['size'\]"):
        ensemble_tables.summarise([record("QINN", 1, {}, cfg={"size": "a", "seed": 1}),
                                   record("QINN", 2, {}, cfg={"size": "b", "seed": 2})])


def test_format_table_shows_the_numbers():
    recs = [record("QINN", s, {"auc": a, "nll": n}) for s, a, n in ((1, 0.6, 10.0), (2, 0.7, 10.5), (3, 0.8, 11.0))]
    recs.append(record("INN", 1, {"auc": 0.51234, "params_total": 15960}))
    table = ensemble_tables.format_table(ensemble_tables.summarise(recs), metrics=["auc", "nll", "params_total"])
    lines = table.splitlines()
    assert lines[0] == "| model | seeds | auc | nll | params_total |"
    assert lines[2] == "| QINN | 3 | 0.70 ± 0.10 | 10.50 ± 0.50 | – |"
    assert lines[3] == "| INN | 1 | 0.5123 | – | 15960 |"
    every = ensemble_tables.format_table(ensemble_tables.summarise(recs))
    assert "params_total" in every.splitlines()[0] and "0.5123" in every


def test_format_table_shows_one_value_when_every_seed_agrees_and_picks_present_metrics():
    """Issue 23: lockstep INN seeds share one job's wall time, and a parameter count is the same for
    every seed: "416.4 ± 0" read as a measured spread of zero; the table shows the value alone."""
    recs = [record("INN", s, {"train_seconds": 416.4, "params_total": 1920, "nll": n}) for s, n in ((1, 11.6), (2, 11.7))]
    rows = ensemble_tables.summarise(recs)
    assert rows[0]["metrics"]["nll"]["seeds"] == [1, 2]
    table = ensemble_tables.format_table(rows, ["train_seconds", "params_total", "nll"])
    assert table.splitlines()[2] == "| INN | 2 | 416.4 | 1920 | 11.650 ± 0.071 |"
    assert ensemble_tables.present_metrics(rows, ["fpd", "nll", "kpd", "params_total"]) == ["nll", "params_total"]


def test_a_metric_equal_in_every_seed_prints_as_its_value():
    """Regression: "416.4 ± 0" for the wall time three lockstep INN seeds share (and "2063 ± 0")."""
    recs = [record("INN 2k", s, {"train_seconds": 416.4, "params_total": 1920, "auc": 0.5 + s / 100}) for s in (1, 2, 3)]
    table = ensemble_tables.format_table(ensemble_tables.summarise(recs), ["train_seconds", "params_total", "auc"])
    assert table.splitlines()[2] == "| INN 2k | 3 | 416.4 | 1920 | 0.520 ± 0.010 |"
