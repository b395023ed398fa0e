"""The QINN on calibrated IBM device models (qinn_lib.hardware.ibm): OpenQASM round trips against
PennyLane, routed noiseless circuits against exact simulation within shot noise, readout-error
mitigation against a known readout matrix, resumable sampler runs, the placement on notebook 07's
noise axis, and every bad input's one-line error.

Tests that need the optional ``[hardware]`` extra skip without it, except with
QINN_REQUIRE_HARDWARE=1 (set by .ci/run, whose test command installs ``.[dev,hardware]``), where a
missing extra fails them: these tests must run in CI. The
missing-extra error and the placement arithmetic need no Qiskit and always run."""

from __future__ import annotations

import math
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from qinn_lib.errors import QinnError, one_line
from qinn_lib.events.scaling import AngleScaler
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.hardware.ibm import extra, placement
from qinn_lib.models.qinn.model import QINN

pytestmark = pytest.mark.usefixtures("one_thread")

_REQUIRED = os.environ.get("QINN_REQUIRE_HARDWARE") == "1"
if _REQUIRED and not extra.available():
    needs_extra = pytest.mark.usefixtures("_extra_required_in_ci")
else:
    needs_extra = pytest.mark.skipif(not extra.available(), reason=f"needs the [hardware] extra: {extra.INSTALL}")


@pytest.fixture
def _extra_required_in_ci():
    pytest.fail(f"QINN_REQUIRE_HARDWARE=1: install the [hardware] extra ({extra.INSTALL}); missing: {extra.missing()}")


#: Family-wise error rate of the statistical checks below (Bonferroni over their cells).
ALPHA = 1e-3


def _model(n: int = 5, layers: int = 2, isp_layers: int = 2, seed: int = 3) -> QINN:
    return QINN(n, layers, isp_layers, seed=seed, dtype=torch.float64)


def _events(model: QINN, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded angles x' and ISP angles psi of ``count`` events."""
    exact = DeviceQINN(model, Device(), seed=0)
    x = torch.rand((count, model.n_features), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    psi = exact.latent_isp_angles(exact.latent(count, latent_seed=seed))
    return exact.encode(np.pi * x), psi


def _room_modules() -> list[str]:
    return [m for m in sys.modules if m.startswith("qinn_lib.hardware.ibm.") and not m.endswith((".extra", ".placement"))]


# -- bad input -------------------------------------------------------------------------------------
def test_a_missing_extra_is_one_line_naming_the_install_command(monkeypatch):
    for name in _room_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "qiskit_aer", None)  # as if the extra were not installed
    assert "qiskit_aer" in extra.missing() and not extra.available()
    with pytest.raises(extra.MissingExtraError) as err:
        import qinn_lib.hardware.ibm.backends  # noqa: F401
    message = one_line(err.value)
    assert message == str(err.value) and isinstance(err.value, QinnError)
    assert "qinn_lib.hardware.ibm.backends needs the optional [hardware] extra" in message
    assert "qiskit_aer" in message and 'pip install -e ".[hardware]"' in message
    with pytest.raises(extra.MissingExtraError, match=r"notebook 07's device section needs .*qiskit_aer"):
        extra.require("notebook 07's device section")


@needs_extra
def test_an_unknown_backend_lists_the_available_ones():
    from qinn_lib.hardware.ibm import backends

    with pytest.raises(backends.UnknownBackendError) as err:
        backends.load_backend("FakeTorin")
    message = str(err.value)
    assert "\n" not in message and "unknown backend 'FakeTorin' (did you mean FakeTorino" in message
    assert "available: " in message and "FakeManilaV2" in message and "FakeSherbrooke" in message
    with pytest.raises(backends.UnknownBackendError, match="non-empty string"):
        backends.load_backend("")
    assert backends.load_backend("torino") is backends.load_backend("FakeTorino")  # device and class names
    assert backends.load_backend("fake_manila").num_qubits == 5


@needs_extra
def test_a_circuit_too_wide_for_the_backend_says_so():
    from qinn_lib.hardware.ibm.backend_qinn import BackendQINN
    from qinn_lib.hardware.ibm.routing import CircuitTooWideError

    with pytest.raises(CircuitTooWideError) as err:
        BackendQINN(_model(n=6, layers=1, isp_layers=1), "FakeManilaV2", seed=0)
    assert str(err.value).startswith("the qinn_forward circuit needs 6 qubits, backend fake_manila has 5")


@needs_extra
def test_a_failing_sampler_is_one_line_naming_backend_circuit_and_cause():
    from qinn_lib.hardware.ibm.backend_qinn import BackendQINN
    from qinn_lib.hardware.ibm.sampler import SamplerError

    class Broken:
        def run(self, pubs, shots):
            raise RuntimeError("the service refused the job\nretry later")

    model = _model()
    bq = BackendQINN(model, "FakeManilaV2", shots=100, seed=0, sampler_factory=lambda seed: Broken())
    x_prime, _ = _events(model, 3)
    with pytest.raises(SamplerError) as err:
        bq.measure_forward(x_prime)
    assert one_line(err.value) == ("sampler failed on backend fake_manila, qinn_forward circuit, 3 events x 100 shots: "
                                   "RuntimeError: the service refused the job | retry later")


# -- OpenQASM export -------------------------------------------------------------------------------
@needs_extra
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_openqasm_exports_reproduce_pennylane_probabilities(direction, tmp_path):
    import qiskit.qasm2
    import qiskit.qasm3
    from qiskit.quantum_info import Statevector

    from qinn_lib.hardware.ibm import qasm
    from qinn_lib.hardware.ibm.qiskit_circuits import pennylane_order

    model = _model()
    x_prime, psi = _events(model, 1, seed=4)
    angles = (x_prime if direction == "forward" else psi.reshape(1, -1))[0]
    expected = qasm.probs_qnode(model, direction)(angles).numpy()  # PennyLane: wire 0 most significant

    def probs(qc):
        qc = qc.remove_final_measurements(inplace=False)
        return Statevector(qc).probabilities()  # Qiskit: qubit 0 least significant

    from_qasm2 = probs(qiskit.qasm2.loads(qasm.qasm2(model, direction, angles)))
    assert np.abs(pennylane_order(from_qasm2) - expected).max() < 1e-10
    assert np.abs(from_qasm2 - expected).max() > 1e-3, "the bit order matters: the check would see it reversed"
    qc3 = qiskit.qasm3.loads(qasm.qasm3(model, direction))
    by_name = {p.name: p for p in qc3.parameters}
    prefix = "x" if direction == "forward" else "psi"
    assert len(by_name) == len(angles), "every event angle is an input"
    bound = qc3.assign_parameters({by_name[f"_{prefix}_{i}_"]: float(a) for i, a in enumerate(angles)})
    assert np.abs(pennylane_order(probs(bound)) - expected).max() < 1e-10
    written = qasm.export(model, tmp_path, x_prime=x_prime[0], psi=psi[0])
    assert sorted(p.name for p in written) == ["forward.qasm", "forward.qasm3", "inverse.qasm", "inverse.qasm3"]
    assert written[0].read_text().startswith("OPENQASM 2.0;")
    with pytest.raises(ValueError, match="takes 15 angles for one event, got 5"):
        qasm.qasm2(model, "inverse", angles[:5])


# -- routed circuits, noiseless ----------------------------------------------------------------------
def _within_shot_noise(p_hat: np.ndarray, p: np.ndarray, shots: int) -> float:
    """Smallest Bonferroni-scaled two-sided exact binomial p-value of every (event, qubit) estimate."""
    k = np.rint(p_hat * shots).astype(int)
    pvalues = [stats.binomtest(int(ki), shots, float(min(max(pi, 1e-12), 1 - 1e-12))).pvalue
               for ki, pi in zip(k.ravel(), p.ravel())]
    return min(pvalues) * len(pvalues)


@needs_extra
@pytest.mark.parametrize("backend", ["FakeManilaV2", "FakeTorino"])
def test_routed_noiseless_circuits_equal_exact_simulation_within_shot_noise(backend):
    from qinn_lib.hardware.ibm.backend_qinn import BackendQINN

    model, shots = _model(), 4000
    bq = BackendQINN(model, backend, shots=shots, seed=11, noisy=False)
    exact = DeviceQINN(model, Device(), seed=0)
    x_prime, psi = _events(model, 12, seed=2)
    for measured, truth in ((bq.measure_forward(x_prime), exact.measure_forward(x_prime)),
                            (bq.measure_inverse(psi), exact.measure_inverse(psi))):
        measured, truth = measured.numpy(), truth.numpy()
        assert _within_shot_noise(measured, truth, shots) > ALPHA
        # the same check sees a wrong qubit order (its power): reversed bits are far outside shot noise
        assert _within_shot_noise(measured[:, ::-1], truth, shots) < ALPHA
    resources = bq.resources()
    assert [r["circuit"] for r in resources] == ["qinn_forward", "qinn_inverse"]
    assert all(r["native_2q"] >= 2 * 5 for r in resources), "at least the logical CNOTs (2 layers x 5)"
    assert all(len(r["measured"]) == 5 and r["duration_us"] > 0 for r in resources)


# -- readout-error mitigation ------------------------------------------------------------------------
@needs_extra
def test_mitigation_recovers_a_known_readout_matrix():
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel, ReadoutError

    from qinn_lib.hardware.ibm import mitigation
    from qinn_lib.hardware.ibm.routing import Routed
    from qinn_lib.hardware.ibm.sampler import Runner, aer_sampler

    e01, e10 = np.array([0.02, 0.10, 0.05]), np.array([0.04, 0.20, 0.01])  # known, different per qubit
    noise = NoiseModel()
    for q in range(3):
        noise.add_readout_error(ReadoutError([[1 - e01[q], e01[q]], [e10[q], 1 - e10[q]]]), [q])
    shots = 40_000
    runner = Runner(aer_sampler(AerSimulator(noise_model=noise)), backend="toy", shots=shots, seed=3)
    cal = mitigation.calibrate(runner, [0, 1, 2], width=3)
    cells = [(cal.e01[q], e01[q]) for q in range(3)] + [(cal.e10[q], e10[q]) for q in range(3)]
    pvalues = [stats.binomtest(int(round(est * shots)), shots, true).pvalue for est, true in cells]
    assert min(pvalues) * len(pvalues) > ALPHA, (cal, pvalues)
    assert np.allclose(cal.matrix(1), [[0.9, 0.2], [0.1, 0.8]], atol=0.01)
    # a known state read through the known readout: mitigated, it is the true P again
    theta = np.array([0.6, 2.5, 1.9])
    p_true = np.sin(theta / 2) ** 2
    qc = QuantumCircuit(3, 3, name="state")
    for q in range(3):
        qc.ry(float(theta[q]), q)
    qc.measure(range(3), range(3))
    read = runner.marginals(Routed("state", "toy", qc, 0, (), (0, 1, 2), "state", 0.0), np.zeros((1, 0)))
    mitigated = mitigation.mitigate(read, cal, [0, 1, 2])[0]
    p_read_true = p_true * (1 - e10) + (1 - p_true) * e01
    scale = 1 - e01 - e10
    z_mit = (mitigated - p_true) / (np.sqrt(p_read_true * (1 - p_read_true) / shots) / scale)
    z_raw = (read[0] - p_true) / np.sqrt(p_read_true * (1 - p_read_true) / shots)
    limit = stats.norm.ppf(1 - ALPHA / (2 * 3))  # Bonferroni over the three qubits
    assert np.all(np.abs(z_mit) < limit), z_mit
    assert np.any(np.abs(z_raw) > limit), "unmitigated, the readout error is visible (the check's power)"
    with pytest.raises(ValueError, match="too poor to invert"):
        mitigation.mitigate(read, mitigation.ReadoutCalibration((0, 1, 2), np.full(3, 0.5), np.full(3, 0.5), 1), [0, 1, 2])


# -- an interrupted device run keeps what finished and resumes ---------------------------------------
@needs_extra
def test_an_interrupted_run_keeps_finished_chunks_and_resumes(tmp_path):
    from qinn_lib.hardware.ibm import backends
    from qinn_lib.hardware.ibm.backend_qinn import BackendQINN
    from qinn_lib.hardware.ibm.sampler import SamplerError, aer_sampler

    model = _model()
    x_prime, _ = _events(model, 12)
    calls = []

    def flaky(seed):
        calls.append(seed)
        if len(calls) == 3:
            raise RuntimeError("connection lost")
        return aer_sampler(backends.ideal_simulator())(seed)

    def on_device(factory, store):
        return BackendQINN(model, "FakeManilaV2", shots=500, seed=1, noisy=False, chunk=5, store=store,
                           sampler_factory=factory, sampler_name="aer ideal, flaky link")  # one sampler, two factories

    with pytest.raises(SamplerError, match="connection lost"):
        on_device(flaky, tmp_path).measure_forward(x_prime)
    assert len(list(tmp_path.glob("*.npy"))) == 2, "the two finished chunks are on disk"
    again = on_device(flaky, tmp_path)
    resumed = again.measure_forward(x_prime)
    assert [c.cached for c in again.runner.calls] == [True, True, False], "only the missing chunk ran"
    fresh = on_device(aer_sampler(backends.ideal_simulator()), None).measure_forward(x_prime)
    assert torch.equal(resumed, fresh), "same seed, same chunks: the same numbers"


@needs_extra
def test_samplers_sharing_a_store_never_read_each_others_results(tmp_path):
    """Regression: chunks were keyed by the routed circuit alone, so a noiseless run (or a real
    device's sampler) sharing the store with a noisy one read the noisy results back, and the
    readout calibration of two backends with the same width and qubits was shared."""
    from qinn_lib.hardware.ibm.backend_qinn import BackendQINN

    model = _model()
    x_prime, _ = _events(model, 4)
    noisy = BackendQINN(model, "FakeManilaV2", shots=2000, seed=1, store=tmp_path)
    p_noisy = noisy.measure_forward(x_prime)
    ideal = BackendQINN(model, "FakeManilaV2", shots=2000, seed=1, noisy=False, store=tmp_path)
    p_ideal = ideal.measure_forward(x_prime)
    assert [c.cached for c in ideal.runner.calls] == [False], "the ideal run measured, it did not read the noisy one"
    assert not torch.equal(p_noisy, p_ideal)
    again = BackendQINN(model, "FakeManilaV2", shots=2000, seed=1, store=tmp_path)
    assert torch.equal(again.measure_forward(x_prime), p_noisy) and again.runner.calls[0].cached
    noisy.calibration, ideal.calibration  # noqa: B018 - measure both calibrations into the store
    assert ideal._calibration_runner.calls[0].cached is False
    assert np.all(ideal.calibration.e01 == 0) and np.any(noisy.calibration.e01 > 0)


# -- the section end to end on a toy model (cheap backend, few events) --------------------------------
def _toy_trained(n_events: int = 200) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    physical = np.column_stack([rng.uniform(20, 80, n_events), rng.uniform(20, 80, n_events),
                                rng.uniform(-3, 3, n_events), rng.uniform(-2.4, 2.4, n_events),
                                rng.uniform(-2.4, 2.4, n_events)])
    scaler = AngleScaler.fit(physical)
    scaled = torch.as_tensor(scaler.transform(physical), dtype=torch.float32)
    data = SimpleNamespace(sample=SimpleNamespace(test=physical), scaler=scaler, test=scaled, fingerprint="toy")
    return SimpleNamespace(model=QINN(n_layers=1, isp_layers=1, seed=1), data=data)


def _scan_rows(values: dict[str, list[tuple[float, float]]]) -> list[dict]:
    return [{"label": f"{c} p={p:g}", "device": {"channel": c, "p": p, "shots": None},
             "metrics": {"angle_error": {"mean": v, "std": 0.0, "n": 2}}}
            for c, pts in values.items() for p, v in pts]


@needs_extra
def test_a_backend_study_measures_every_number_the_section_reports(tmp_path):
    from qinn_lib.hardware.ibm import figures, study

    trained = _toy_trained()
    st = study.study_backend(trained, "FakeManilaV2", n_generate=16, n_test=8, shots=1000, seed=5,
                             store=tmp_path, log=lambda _: None)
    s = st.summary
    g, r = s["generation"], s["reconstruction"]
    assert s["family"] == "Falcon" and s["two_qubit_gate"] == "cx" and s["calibrated"].startswith("20")
    for k in study.VARIANTS:
        assert 0 <= g[k]["mean_abs_dp"] < 1 and math.isfinite(g[k]["angle_error"])
    assert g["raw"]["mean_abs_dp"] > g["shots_only"]["mean_abs_dp"], "a 1e-2 two-qubit error is no shot noise"
    assert 0 < g["raw"]["beyond_shot_noise_p"] < 0.05
    assert {"raw", "mitigated", "exact"} <= set(r) and r["exact"]["recon_mean"] >= 0
    assert s["cost"]["calls"] >= 4 and s["cost"]["seconds"] > 0
    assert set(st.generated) == {"exact", "raw", "mitigated", "shots_only"}
    assert all(math.isnan(g[k]["fpd"]) and math.isnan(g[k]["auc_bdt"]) for k in (*study.VARIANTS, "exact")), \
        "16 events: too few for the field's measures, recorded as NaN rather than an error"
    rows = _scan_rows({"depolarizing": [(1e-4, 1e-3), (1e-2, 0.1), (1e-1, 2.0)]})
    pl = placement.place(s, rows, {"depolarizing": {"distributions": 1e-5}})
    assert pl["depolarizing"]["usable"] is False
    text = placement.verdict([s], [pl])
    assert text.startswith("On fake_manila (Falcon, CX;") and "not usable" in text
    assert "\u00a0±\u00a0" in placement.results_table([s], [pl])
    fig = figures.plot_noise_axis(rows, [s], [pl])
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes), "the legend sits outside the axes"
    again = study.study_backend(trained, "FakeManilaV2", n_generate=16, n_test=8, shots=1000, seed=5,
                                store=tmp_path, log=lambda _: None)
    same = placement.json_safe(again.summary["generation"]) == placement.json_safe(g)  # NaN as None: comparable
    assert same and again.summary["cost"]["calls"] == 0, "resumed from disk"


# -- placement on notebook 07's noise axis (no Qiskit needed) ----------------------------------------
def test_effective_p_interpolates_the_scan_in_log_log():
    rows = _scan_rows({"depolarizing": [(1e-6, 1e-5), (1e-4, 1e-3), (1e-2, 1e-1)],
                       "amplitude_damping": [(1e-6, 5e-6), (1e-2, 5e-2)]})
    eff = placement.effective_p(rows, "depolarizing", 1e-2, 0.0)
    assert eff["p"] == pytest.approx(1e-3) and eff["p_lo"] == eff["p_hi"] == pytest.approx(1e-3)
    eff = placement.effective_p(rows, "depolarizing", 1e-4, 1e-5)
    assert eff["p"] == pytest.approx(1e-5) and eff["p_lo"] < eff["p"] < eff["p_hi"]
    assert placement.effective_p(rows, "depolarizing", 0.5, 0.0)["p"] == math.inf
    assert placement.effective_p(rows, "depolarizing", 1e-7, 0.0)["p"] == -math.inf
    with pytest.raises(ValueError, match="at least two scan points"):
        placement.effective_p(rows, "bit_flip", 1e-3, 0.0)
    summary = {"generation": {"raw": {"angle_error_noise": 1e-4, "angle_error_noise_se": 1e-6}}}
    near = placement.place(summary, rows, {"depolarizing": {"distributions": 1e-5}, "amplitude_damping": {}})
    assert near["depolarizing"]["usable"] is None, "the interval straddles the threshold: undecided"
    far = placement.place(summary, rows, {"depolarizing": {"distributions": 1e-3}})
    assert far["depolarizing"]["usable"] is True and far["depolarizing"]["factor"] == pytest.approx(1e-2)
    assert far["amplitude_damping"]["threshold"] is None and far["amplitude_damping"]["usable"] is False
    # the scan's resolution: it passes at 1e-4 and fails at the next point, 1e-2, so the device (p = 1e-3)
    # is between 0.1x and 10x the tolerated noise; the interpolation's scan points are named
    mid = placement.place({"generation": {"raw": {"angle_error_noise": 1e-2, "angle_error_noise_se": 0.0}}},
                          rows, {"depolarizing": {"distributions": 1e-4}})["depolarizing"]
    assert mid["threshold_fails_at"] == 1e-2 and mid["factor_lo"] == pytest.approx(0.1)
    assert mid["factor"] == pytest.approx(10.0) and mid["between"] == [pytest.approx(1e-4), pytest.approx(1e-2)]


def test_histogram_ranges_hold_every_sample_so_no_device_looks_absent():
    """Regression: the device figure's fixed M_ll range (75-105 GeV) held none of the devices'
    events, so their histograms were missing from the panel without a word."""
    from qinn_lib.hardware.ibm import figures

    truth = {"m_ll": np.linspace(80.0, 100.0, 201)}
    device = {"m_ll": np.r_[np.linspace(150.0, 300.0, 201), np.nan]}
    lo, hi = figures.common_ranges([truth, device], ["m_ll"])["m_ll"]
    assert lo < 81.0 and hi > 299.0
    assert np.mean((device["m_ll"] >= lo) & (device["m_ll"] <= hi)) > 0.98
