"""One calibrated backend against exact simulation: what notebook 07's section "On a real device's
noise" measures, for one trained QINN.

For backend ``name`` (:class:`~qinn_lib.hardware.ibm.backend_qinn.BackendQINN`, ``shots`` per
event and circuit) and evaluation seed ``seed``:

- **generation** (z ~ N(0, 1) -> psi = g_C -> inverse circuit -> P -> x~, eq. 13-15, 21-22) of
  ``n_generate`` events, the latent points those of notebook 07's sweep for the same seed: the
  measured P(qubit = 1) against the exact one, event by event (mean |Delta P| with its standard
  error over events; the same with ``shots`` shots and no noise; a one-sided Wilcoxon signed-rank
  test that the device's per-event deviation exceeds shot noise's; readout mitigation's paired
  effect), the RMS error of the generated angles (``angle_error`` as in notebook 07's sweep; its
  noise-only part with the shot part removed in quadrature, the two being independent), and the
  generated M_ll and Delta R against the test split (JS, W1) and against the exact sample from
  the same latent points (two-sample KS), and the field's measures of notebooks 03-06 against the
  test split (FPD, KPD, the boosted-tree AUCs with their errors: ``sweeps.field_metrics``; NaN when
  fewer than 100 events are generated, as in the quick profile);
- **the inverse** x -> z -> x~ of ``n_test`` test events, both circuits on the backend, without
  and with mitigation: the forward circuit's mean |Delta P|, the reconstruction deviation and its
  paired difference from exact simulation;
- **cost**: the routed circuits' resources and every sampler call's events and seconds, with the
  fixed and the per-event cost from a least-squares line (scipy.stats.linregress).

All values are plain JSON (:attr:`Study.summary`); the generated samples are kept for figures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from qinn_lib.evaluation import distances, evaluate
from qinn_lib.events import observables
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.hardware.ibm import backends, mitigation
from qinn_lib.hardware.ibm.backend_qinn import BackendQINN
from qinn_lib.hardware.sweeps import OBSERVABLES, SHOT_SEED_OFFSET, field_metrics

__all__ = ["VARIANTS", "Study", "study_backend", "call_cost"]

#: The measurements compared with exact simulation: the backend as read, readout-mitigated, and
#: exact circuits measured with the same number of shots (shot noise alone).
VARIANTS = ("raw", "mitigated", "shots_only")


@dataclass
class Study:
    """``summary`` (plain JSON) and the generated events in physical units per variant (+ ``exact``)."""

    summary: dict[str, Any]
    generated: dict[str, np.ndarray] = field(repr=False)


def _sem(values: np.ndarray) -> float:
    return float(stats.sem(values)) if len(values) > 1 else float("nan")


def _angle_error(u: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """RMS over events and features of u - ref (rad) and its standard error (delta method on the
    mean of the per-event mean squares)."""
    both = np.all(np.isfinite(u), axis=1) & np.all(np.isfinite(ref), axis=1)
    per_event = np.mean((u[both] - ref[both]) ** 2, axis=1)
    rms = float(np.sqrt(per_event.mean()))
    return rms, (_sem(per_event) / (2 * rms) if rms > 0 else 0.0)


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(stats.ks_2samp(a, b).pvalue) if len(a) and len(b) else float("nan")


def call_cost(calls) -> dict[str, Any]:
    """Sampler calls that ran (not read from disk): their count, events, total seconds and the line
    seconds = fixed + per_event x events (None where the call sizes do not allow a fit)."""
    ran = [c for c in calls if not c.cached]
    events = np.array([c.events for c in ran], dtype=float)
    seconds = np.array([c.seconds for c in ran], dtype=float)
    out: dict[str, Any] = {"calls": len(ran), "events": int(events.sum()), "seconds": float(seconds.sum()),
                           "calls_from_disk": sum(c.cached for c in calls), "fixed_seconds": None,
                           "seconds_per_event": None}
    if len(set(events.tolist())) >= 2:
        fit = stats.linregress(events, seconds)
        out["fixed_seconds"], out["seconds_per_event"] = float(fit.intercept), float(fit.slope)
    return out


def _field(truth: np.ndarray, sample: np.ndarray, seed: int) -> dict[str, float]:
    """The field's measures of one sample, without their wall time (the summary of a resumed study
    must equal the first one's)."""
    return {k: v for k, v in field_metrics(truth, sample, seed=seed).items() if k != "seconds_field"}


def _generation(bq: BackendQINN, exact: DeviceQINN, shots_only: DeviceQINN, trained: Any, n: int, seed: int,
                dtype: torch.dtype) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    z = exact.latent(n, latent_seed=seed, latent_dtype=dtype)
    psi = exact.latent_isp_angles(z)
    p_exact = exact.measure_inverse(psi).numpy()
    p_raw = bq.measure_raw("inverse", psi.reshape(n, -1).numpy())
    p = {"raw": p_raw, "mitigated": mitigation.mitigate(p_raw, bq.calibration, bq.routed["inverse"].measured),
         "shots_only": shots_only.measure_inverse(psi).numpy()}
    u_exact = exact.decode(torch.as_tensor(p_exact)).numpy()
    truth = np.asarray(trained.data.sample.test, dtype=np.float64)
    scaler = trained.data.scaler
    physical = {"exact": scaler.inverse(u_exact[np.all(np.isfinite(u_exact), axis=1)])}
    obs_exact = observables.reconstruct(physical["exact"])
    out: dict[str, Any] = {"n": int(n)}
    dev = {k: np.abs(v - p_exact).mean(axis=1) for k, v in p.items()}  # per-event mean |Delta P| over qubits
    d_exact = distances.observable_distances(truth, physical["exact"], observables=OBSERVABLES)
    out["exact"] = {f"{m}/{o}": float(d_exact[o][m]) for o in OBSERVABLES for m in ("js", "w1")}
    out["exact"].update(_field(truth, physical["exact"], seed))
    for k, pk in p.items():
        u = exact.decode(torch.as_tensor(pk)).numpy()
        physical[k] = scaler.inverse(u[np.all(np.isfinite(u), axis=1)])
        d = distances.observable_distances(truth, physical[k], observables=OBSERVABLES)
        obs = observables.reconstruct(physical[k])
        err, err_se = _angle_error(u, u_exact)
        out[k] = {"mean_abs_dp": float(dev[k].mean()), "mean_abs_dp_sem": _sem(dev[k]),
                  "max_abs_dp": float(np.abs(pk - p_exact).max()), "angle_error": err, "angle_error_se": err_se,
                  **{f"{m}/{o}": float(d[o][m]) for o in OBSERVABLES for m in ("js", "w1")},
                  **{f"ks_p/{o}": _ks(obs[o], obs_exact[o]) for o in OBSERVABLES},
                  **_field(truth, physical[k], seed)}
    shot_err = out["shots_only"]["angle_error"]
    for k in ("raw", "mitigated"):
        a, se = out[k]["angle_error"], out[k]["angle_error_se"]
        noise_only = math.sqrt(max(a * a - shot_err * shot_err, 0.0))
        out[k]["angle_error_noise"] = noise_only
        out[k]["angle_error_noise_se"] = se * a / noise_only if noise_only > 0 else float("nan")
        # H1: the device's per-event deviation is larger than shot noise's (paired, same events)
        out[k]["beyond_shot_noise_p"] = float(stats.wilcoxon(dev[k], dev["shots_only"], alternative="greater").pvalue)
    diff = dev["mitigated"] - dev["raw"]
    out["mitigation_effect"] = {"mean": float(diff.mean()), "sem": _sem(diff),
                                "p": float(stats.wilcoxon(dev["mitigated"], dev["raw"]).pvalue)}
    return out, physical


def _relative(x: np.ndarray, x_rec: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x_rec - x, axis=1) / np.linalg.norm(x, axis=1)  # as evaluate.reconstruction_deviation


def _reconstruction(bq: BackendQINN, exact: DeviceQINN, trained: Any, n_test: int) -> dict[str, Any]:
    x = trained.data.test[:n_test].to(torch.float64)
    x_np = x.numpy()
    # the forward circuit's P(qubit = 1) against exact (the reconstruction below reuses this run)
    x_prime = exact.encode(x)
    p_exact = exact.measure_forward(x_prime).numpy()
    p_raw = bq.measure_raw("forward", x_prime.numpy())
    forward = {"raw": p_raw, "mitigated": mitigation.mitigate(p_raw, bq.calibration, bq.routed["forward"].measured)}
    rec = {"exact": exact.reconstruct(x).numpy()}
    for k, mitigate in (("raw", False), ("mitigated", True)):
        bq.mitigate = mitigate
        rec[k] = bq.reconstruct(x).numpy()
    bq.mitigate = False
    out: dict[str, Any] = {"n": int(len(x))}
    for k, pk in forward.items():
        dev = np.abs(pk - p_exact).mean(axis=1)
        out[f"forward_{k}"] = {"mean_abs_dp": float(dev.mean()), "mean_abs_dp_sem": _sem(dev)}
    rel_exact = _relative(x_np, rec["exact"])
    for k, x_rec in rec.items():
        dev = evaluate.reconstruction_deviation(x_np, x_rec)
        out[k] = {"recon_mean": dev["mean"], "recon_sem": dev["sem"], "recon_median": dev["median"],
                  "n_nonfinite": dev["n_nonfinite"]}
        if k != "exact":
            rel = _relative(x_np, x_rec)
            ok = np.isfinite(rel) & np.isfinite(rel_exact)
            d = rel[ok] - rel_exact[ok]
            out[k]["minus_exact"] = {"mean": float(d.mean()), "sem": _sem(d),
                                     "p": float(stats.wilcoxon(rel[ok], rel_exact[ok]).pvalue)}
    return out


def study_backend(trained: Any, name: str, *, n_generate: int, n_test: int, shots: int, seed: int,
                  store: str | Path | None = None, transpile_seed: int = 0,
                  log: Callable[[str], None] = print, **backend_options: Any) -> Study:
    """Measure ``trained`` (a QINN :class:`qinn_lib.experiments.one_model.TrainedModel`) on backend
    ``name`` (see the module docstring). Sampler results are kept in ``store`` (a run interrupted
    resumes from there); ``backend_options`` go to :class:`BackendQINN` (e.g. ``chunk``)."""
    if n_generate < 2 or n_test < 2:
        raise ValueError(f"n_generate and n_test must be >= 2 (standard errors), got {n_generate}, {n_test}")
    start = time.perf_counter()
    model = trained.model
    dtype = next(model.parameters()).dtype
    bq = BackendQINN(model, name, shots=shots, seed=seed + SHOT_SEED_OFFSET, store=store,
                     transpile_seed=transpile_seed, **backend_options)
    exact = DeviceQINN(model, Device(), seed=0)
    shots_only = DeviceQINN(model, Device(shots=shots), seed=seed + SHOT_SEED_OFFSET)
    resources = bq.resources()
    qubits = sorted({q for r in resources for q in r["physical_qubits"]})
    summary: dict[str, Any] = {
        **backends.describe(bq.backend), "shots": int(shots), "seed": int(seed), "resources": resources,
        "calibration": backends.calibration(bq.backend, qubits),
    }
    cal = bq.calibration
    summary["readout"] = {"qubits": list(cal.qubits), "e01": cal.e01.tolist(), "e10": cal.e10.tolist(),
                          "shots": int(cal.shots)}
    log(f"[{bq.backend.name}] routed: forward {resources[0]['native_2q']} / inverse {resources[1]['native_2q']} "
        f"{resources[0]['two_qubit_gate']} gates; generating {n_generate} events ...")
    summary["generation"], generated = _generation(bq, exact, shots_only, trained, n_generate, seed, dtype)
    log(f"[{bq.backend.name}] reconstructing {n_test} test events ...")
    summary["reconstruction"] = _reconstruction(bq, exact, trained, n_test)
    summary["cost"] = call_cost(bq.runner.calls + bq._calibration_runner.calls)
    summary["seconds"] = time.perf_counter() - start
    g = summary["generation"]
    log(f"[{bq.backend.name}] mean |dP| {g['raw']['mean_abs_dp']:.4f} (mitigated {g['mitigated']['mean_abs_dp']:.4f}, "
        f"shots only {g['shots_only']['mean_abs_dp']:.4f}); {summary['cost']['calls']} sampler calls, "
        f"{summary['seconds']:.0f} s")
    return Study(summary, generated)
