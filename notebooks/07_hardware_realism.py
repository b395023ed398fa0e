# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-widgets
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 — The QINN on a simulated quantum computer
#
# Beyond the paper. Everything so far used exact expectation values: every $P(\text{qubit}=1)$ of
# eq. 16 came straight from the state vector. A quantum computer gives something else:
#
# * **finite shots** — a circuit is run $N$ times and every probability is a share of $N$ bit
#   strings, so it carries a binomial error $\sqrt{P(1-P)/N}$;
# * **a measured Jacobian** — the NLL (eq. 5–7) needs $\partial z/\partial x$, which a device measures
#   with the parameter-shift rule (refs. [60, 61], sec. 3.1): $\partial P/\partial x'_i =
#   [P(x'_i+\pi/2) - P(x'_i-\pi/2)]/2$, i.e. $1 + 2n = 11$ circuits per event, each with its own shots;
# * **noisy gates** — here a depolarising or an amplitude-damping channel of strength $p$ after every gate.
#
# This notebook takes the trained QINN of notebook 03, runs it on such an emulated device in both
# directions (generation through the learned inverse; the likelihood through the forward map) and
# asks: from how many shots on, and up to which noise level, is it still as good as with exact
# simulation? Then: what would the paper's tasks cost on a device?
#
# The emulation lives in `qinn_lib.hardware.shots` (sampling, parameter shift), `qinn_lib.hardware.noise` (density
# matrices), `qinn_lib.hardware.device` (the QINN on a device), `qinn_lib.hardware.sweeps` (metrics and
# verdicts) and `qinn_lib.hardware.resources` (circuit counts, device cost). The last section puts
# the same QINN on models of real IBM devices (`qinn_lib.hardware.ibm`: calibrated noise, routed
# circuits, OpenQASM export).

# %% tags=["parameters"]
# Parameters (papermill) = the fields of qinn_lib.training.config.HardwareRealismConfig.
# These defaults are the paper-profile values: the QINN of notebook 03 (Table 1 of the paper, 100k
# events, 200 epochs, reloaded from its checkpoint), evaluated with 3 seeds on 50k generated and 50k
# test events. The noise scan reaches below p = 1e-4 because the generated M_ll already degrades
# there; shot_rate_hz is an assumption that only converts executions into device hours.
# Beside the sweep's own metrics, every device and seed gets the field's measures of notebooks 03-06
# (FPD, KPD, boosted-tree AUCs; qinn_lib.evaluation.evaluate.field_metrics with its defaults, the boosted
# trees on 20 000 events per class as there, so the exact row compares with notebook 03's): measured on
# this loaded 2-core machine about 4-5 s per device and seed, ~5 min for the 66 evaluations of the sweep.
# The quick profile (chosen by the reports runner, not here) trains a tiny QINN (2 epochs, 8k
# events), caps the event counts at 4k, evaluates 2 seeds and thins the grids to 3 shot counts
# and 4 noise levels, both ends kept (qinn_lib.training.budget.grid).
seed = 1234
n_events = 100_000
data_seed = 1234
lhe_file = ""
epochs = 200
n_eval_seeds = 3
n_generate = 50_000
n_test = 50_000
shots = [1e2, 1e3, 1e4, 1e5, 1e6]
noise_levels = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2, 1e-1]
shot_rate_hz = 1e3
# On a real device's noise (needs the optional extra: pip install -e ".[hardware]"): calibrated IBM
# device models of two processor generations, 1000 generated and 250 reconstructed events each at
# 10k shots (Aer's density matrices of a routed circuit, measured here on a loaded 2-core machine:
# 3-8 s per sampler call plus 0.08-0.10 s per event and circuit, ~3.5 min per device). The quick
# profile runs the 5-qubit FakeManilaV2 with 24 events and 2000 shots instead.
device_backends = "FakeTorino,FakeSherbrooke"
device_generate = 1_000
device_test = 250
device_shots = 10_000

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from qinn_lib import paths
from qinn_lib.evaluation import records as records_lib
from qinn_lib.evaluation import results as results_store
from qinn_lib.events import observables
from qinn_lib.experiments import ensembles, one_model, plans
from qinn_lib.hardware import field_measures, noise, resources, sweep_figures, sweeps
from qinn_lib.hardware import shots as shots_lib
from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.notebook import plots, profiles
from qinn_lib.training.budget import budget, device_models, grid
from qinn_lib.training.config import HardwareRealismConfig

cfg = profiles.notebook_config(HardwareRealismConfig, globals())
torch.set_num_threads(1)  # small tensors: one thread; timings below are single-core
plots.style()
(qinn_cfg,) = plans.hardware_realism_configs(cfg)["QINN"]  # notebook 03's QINN, profile-capped
n_gen = budget(cfg.profile, "n_generate", cfg.n_generate)
n_tst = budget(cfg.profile, "n_generate", cfg.n_test)
eval_seeds = ensembles.seeds(cfg.seed + ensembles.EVAL_SEED_OFFSET, budget(cfg.profile, "eval_seeds", cfg.n_eval_seeds))
shot_grid = [shots_lib.check_shots(n) for n in grid(cfg.profile, "shots", cfg.shots)]
noise_grid = grid(cfg.profile, "noise_levels", cfg.noise_levels)
print(f"QINN of notebook 03 ({qinn_cfg.n_events} events, {qinn_cfg.epochs} epochs); "
      f"{n_gen} generated and {n_tst} test events per device, evaluation seeds {eval_seeds}")

# %% [markdown]
# ## The trained QINN
# Notebook 03's configuration, so its finished run is reloaded (or trained, then checkpointed).

# %%
trained = one_model.train_qinn(qinn_cfg, progress=False)
model = trained.model
print(f"run: {trained.run_dir.name}, {len(trained.history)} epochs")

# %% [markdown]
# ## Finite shots
# The fast path samples the counts of all $2^5$ outcomes of $N$ shots from the exact outcome
# distribution (a multinomial draw), and reads every qubit's $P(1)$ off the same shots, as a device
# does: each estimate is Binomial$(N, P)/N$, and estimates of different qubits are correlated
# (`tests/test_shots.py` checks the mean, variance and covariances against these laws). The readable
# reference is PennyLane's `default.qubit` with `shots=N`. Three test events, $N = 1000$: both
# estimates scatter around the exact value by about the binomial error.

# %%
n_check = 1000
x3 = trained.data.test[:3]
dq_exact = DeviceQINN(model, Device(), seed=0)  # float64 copy of the trained model, no shots, no noise
x_prime = dq_exact.encode(x3)
dist = dq_exact.forward_distribution(x_prime)  # exact outcome probabilities, (3, 32)
exact_p = dq_exact.measure(dist)
fast_p = shots_lib.estimate_marginals(dist, n_check, torch.Generator().manual_seed(1))
pl_p = shots_lib.reference_shot_marginals(dq_exact.model, x_prime, n_check, seed=2)
binomial = torch.sqrt(exact_p * (1 - exact_p) / n_check)
for e in range(3):
    print(f"event {e}: exact P(1)  " + "  ".join(f"{v:.4f}" for v in exact_p[e]))
    print("         fast sampler " + "  ".join(f"{v:.4f}" for v in fast_p[e]))
    print("         PennyLane    " + "  ".join(f"{v:.4f}" for v in pl_p[e]))
    print("         binomial err " + "  ".join(f"{v:.4f}" for v in binomial[e]))
pulls = torch.cat([(fast_p - exact_p) / binomial, (pl_p - exact_p) / binomial]).flatten()
print(f"pulls (estimate - exact) / binomial error, both samplers: mean {pulls.mean():+.2f}, rms {pulls.square().mean().sqrt():.2f}"
      " (expected 0 and 1)")

# %% [markdown]
# Without shots and noise the emulated device is the exact simulation: the parameter-shift
# Jacobian of the 11 circuits equals the analytic one of notebook 02 to rounding.

# %%
m64 = dq_exact.model
with torch.no_grad():
    z_ref, jac_ref = m64.forward_and_jacobian(trained.data.test[:256].double())
z_dev, jac_dev = dq_exact.forward_and_jacobian(trained.data.test[:256])
print(f"max |z_device - z| = {float((z_dev - z_ref).abs().max()):.1e}, "
      f"max |J_parameter-shift - J_analytic| = {float((jac_dev - jac_ref).abs().max()):.1e}")

# %% [markdown]
# ## Noise
# After every gate (the encoding $R_y$, every Rot, each CNOT on both its wires) a single-qubit
# channel of strength $p$: depolarising, $\rho \to (1 - \tfrac{4p}{3})\rho + \tfrac{2p}{3}\mathbb 1$,
# or amplitude damping ($|1\rangle \to |0\rangle$ with probability $p$, i.e. $T_1$ decay). The
# readable reference is PennyLane's `default.mixed` with the channel inserted after every gate
# (`qml.noise.insert`); the fast path carries the $2^5$ measured projectors back through the noisy
# circuit once (Heisenberg picture) and contracts them with each event's prepared product state.
# Both on three test events at $p = 10^{-2}$:

# %%
psi3 = dq_exact.isp_angles(exact_p)  # the ISP angles of the three events' own P
for channel in noise.CHANNELS:
    nm = noise.NoiseModel(channel, 1e-2)
    start = time.perf_counter()
    fast = noise.NoisyCircuits(m64, nm)
    fwd, inv = fast.forward_distribution(x_prime), fast.inverse_distribution(psi3)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    ref_fwd, ref_inv = noise.reference_forward_probs(m64, x_prime, nm), noise.reference_inverse_probs(m64, psi3, nm)
    t_ref = time.perf_counter() - start
    print(f"{channel:>17}: max |fast - default.mixed| forward {float((fwd - ref_fwd).abs().max()):.1e}, "
          f"inverse {float((inv - ref_inv).abs().max()):.1e}; {t_fast:.2f} s (incl. building both circuits) "
          f"vs {t_ref:.2f} s for 3 events")

# %% [markdown]
# ## The sweep
# For every device and evaluation seed: generate events through the inverse on the device and
# compare with the test split (JS and W1 of $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$, classifier AUC);
# reconstruct test events with both directions on the device (reconstruction deviation); evaluate
# the test NLL with $z$ and the Jacobian measured on the device. A seed fixes the latent sample and
# the classifier (the same for every device) and the shots. The exact-simulation reference runs
# through the same code without shots and noise. Noise is studied with exact expectation values,
# so that each effect is seen alone. Every generated sample also gets the field's measures of
# notebooks 03–06 (`qinn_lib.hardware.sweeps.field_metrics`, i.e. `evaluate.field_metrics`): FPD and KPD of
# the five features, the boosted-tree AUC on the raw features and with $M_{\ell\ell}$, $\Delta R$
# added; they are tabulated after the sweep's own metrics.

# %%
devices = [Device(shots=n) for n in shot_grid]
devices += [Device(noise=noise.NoiseModel(c, p)) for c in noise.CHANNELS for p in noise_grid]
start = time.perf_counter()
records = sweeps.sweep(trained, devices, seeds=eval_seeds, n_generate=n_gen, n_test=n_tst)
sweep_seconds = time.perf_counter() - start
rows = sweeps.summarise_sweep(records)
field_seconds = sum(r["metrics"]["seconds_field"] for r in records)
print(f"{len(records)} evaluations in {sweep_seconds / 60:.1f} min, of which the field's measures "
      f"(FPD, KPD, two boosted-tree AUCs) {field_seconds / 60:.1f} min")

# %%
columns = ["js/m_ll", "w1/m_ll", "js/delta_r", "w1/delta_r", "auc", "recon_mean", "nll", "angle_error"]
exact_row = [r for r in rows if r["label"] == sweeps.EXACT]
shot_rows = exact_row + [r for r in rows if r["device"]["shots"] is not None]
noise_rows = exact_row + [r for r in rows if r["device"]["channel"] is not None]
shots_table = sweeps.verdict_table(shot_rows, columns)
noise_table = sweeps.verdict_table(noise_rows, columns)
display(Markdown(shots_table))
display(Markdown(noise_table))

# %% [markdown]
# ### The field's measures
# The same devices by the field's measures: FPD and KPD of the five features (Kansal et al. 2023;
# standardised with the test split's mean and width) and the AUC of a boosted-tree classifier (5
# folds, 20 000 events per class as in notebooks 03–06) on the raw features and with $M_{\ell\ell}$
# and $\Delta R$ added. Seed mean ± std over the evaluation seeds; in brackets the mean of each
# number's own error (FPD: its extrapolation to infinite samples; KPD: the spread of its batches;
# AUC: the fold spread). The last two columns: as good as exact simulation by the sweep's metrics
# above (JS, W1, the MLP's AUC) and by these four, with the same rule (equivalent to exact simulation
# by a two one-sided test against the declared margin, here and at every more favourable point; see
# "Is it as good as exact simulation?" below).

# %%
field_shots_table = field_measures.field_table(shot_rows)
field_noise_table = field_measures.field_table(noise_rows)
display(Markdown(field_shots_table))
display(Markdown(field_noise_table))

# %% [markdown]
# ### Against the number of shots
# Seed mean ± std; the black line is exact simulation, the grey band the equivalence margin around it
# (×1.25 either way; AUC: of AUC − ½; NLL: ±0.05 nats/event). A cross marks a point found *not* as
# good as exact (a difference outside the margin, by a paired test), an open square a point left
# undecided; an unmarked point is equivalent by the two one-sided tests. The last panel is a
# diagnostic without a verdict: the RMS difference between the angles $\tilde x'$ generated on the
# device and exactly, event by event from the same $z$.

# %%
fig = sweep_figures.plot_sweep(rows, columns, x="shots")
plots.save(fig, "07_metrics_vs_shots")
plt.show()

# %% [markdown]
# The field's measures against the number of shots, drawn the same way (a cross: not as good as
# exact; an open square: undecided).

# %%
fig = sweep_figures.plot_sweep(rows, field_measures.FIELD_COLUMNS, x="shots", judged=field_measures.FIELD_COLUMNS)
plots.save(fig, "07_field_vs_shots")
plt.show()

# %% [markdown]
# ### Against the gate-noise strength

# %%
fig = sweep_figures.plot_sweep(rows, columns, x="p")
plots.save(fig, "07_metrics_vs_noise")
plt.show()

# %%
fig = sweep_figures.plot_sweep(rows, field_measures.FIELD_COLUMNS, x="p", judged=field_measures.FIELD_COLUMNS)
plots.save(fig, "07_field_vs_noise")
plt.show()

# %% [markdown]
# ### What the generated distributions look like
# $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$ of the first evaluation seed on a few devices: few shots
# blur the inverse (every angle is decoded from a noisy $P$); depolarising noise pulls every $P$
# towards 1/2, amplitude damping towards 0. A device whose curve is missing on the left generated
# (almost) no event inside the plotted $M_{\ell\ell}$ window: the shares are printed below the figure.

# %%
truth = observables.reconstruct(trained.data.sample.test)
shown = [Device(), Device(shots=shot_grid[0]), Device(shots=shot_grid[len(shot_grid) // 2]),
         *(Device(noise=noise.NoiseModel(c, 1e-2)) for c in noise.CHANNELS)]
samples = {d.label: observables.reconstruct(
    DeviceQINN(model, d, seed=eval_seeds[0] + sweeps.SHOT_SEED_OFFSET).generate(
        n_gen, latent_seed=eval_seeds[0], scaler=trained.data.scaler)) for d in shown}
fig = plots.ratio_grid(truth, samples, ["m_ll", "delta_r"], observables.OBSERVABLE_LABELS, ncols=2,
                       ranges={"m_ll": (75.0, 105.0), "delta_r": (0.0, 6.0)})
plots.save(fig, "07_generated_on_devices")
plt.show()
# A device whose curve is missing on the left generated (almost) no event inside the plotted window.
in_window = {label: float(np.mean((s["m_ll"] >= 75.0) & (s["m_ll"] <= 105.0))) for label, s in samples.items()}
print("share of events with 75 GeV <= M_ll <= 105 GeV: true " + f"{np.mean((truth['m_ll'] >= 75.0) & (truth['m_ll'] <= 105.0)):.3f}, "
      + ", ".join(f"{label} {share:.3f}" for label, share in in_window.items()))

# %% [markdown]
# ## Is it as good as exact simulation?
# Computed from the sweep (`sweeps.statement`, tests in `qinn_lib.hardware.equivalence`). "As good
# as exact" is an equivalence claim, so it is decided by two one-sided tests (TOST) against a margin
# declared before the run: the device's value within a factor 1.25 of exact simulation's either way
# (for an AUC, of AUC − ½; for the NLL within ±0.05 nats/event). The tests are paired: over the
# evaluation seeds for metrics of a generated sample (every device sees the same latent points and
# classifier per seed), over the test events for the reconstruction and the NLL. A shot count counts
# when every metric of the group passes (an intersection–union test) there and at every larger shot
# count (a fixed-sequence test), a noise level when it and every smaller one do; each test runs at α
# = 0.05 divided by the notebook's threshold statements (Bonferroni). A point with a difference
# outside the margin is *not* as good; anything else is undecided, and counts as not shown.

# %%
found = sweeps.thresholds(rows)
conclusion = sweeps.statement(rows)
print(conclusion)

# %% [markdown]
# Do the field's measures change that? The same rule on FPD, KPD and the two boosted-tree AUCs
# (`field_measures.field_statement`): the thresholds of the distributions by these four, together
# and one by one, beside the ones above, and any pair of devices (neighbours on a scan, or the two
# channels at one p) that one of them orders the other way round from JS($M_{\ell\ell}$), both
# differences decided by paired t-tests over the evaluation seeds (Holm over every pair and measure).

# %%
field_found = field_measures.field_thresholds(rows)
field_conclusion = field_measures.field_statement(rows)
print(field_conclusion)

# %% [markdown]
# What sets the scale of $p$: the circuits scramble (every layer entangles all qubits), so an error
# anywhere in a circuit reaches every measured qubit and shifts every decoded angle (the
# angle-error panel), while $M_{\ell\ell}$, built from both leptons' momenta, resolves a peak a few
# GeV wide. The number of places where an error can happen is the number of channel applications
# per circuit run (single-qubit gates plus two per CNOT, from the resource table below); times $p$
# it is the expected number of errors per run:

# %%
resource_rows = resources.circuit_resources(model)  # qml.specs of the circuits module's QNodes
for row in resource_rows[:2]:
    locations = row["gates"] + row["cnots"]  # one channel per single-qubit gate, two per CNOT
    print(f"{row['circuit']}: {locations} noisy locations; expected errors per run "
          + ", ".join(f"{locations * p:.2g} at p = {p:g}" for p in noise_grid))

# %% [markdown]
# For scale: published two-qubit gate error rates of today's best devices are of order $10^{-3}$
# (vendors' figures, improving quickly; single-qubit gates are about ten times better). The noise
# scan says how far below that the QINN's gates would have to be:

# %%
TODAY_GATE_ERROR = 1e-3  # order of magnitude of published two-qubit gate errors, for scale only
for channel in (c for c in noise.CHANNELS if c in found):
    limits = found[channel]
    print(f"{channel}: as good as exact up to p = " + ", ".join(
        f"{limits[group]:g} for the {group} ({TODAY_GATE_ERROR / limits[group]:.0f}x below 1e-3)" if limits[group]
        else f"no scanned p for the {group}" for group in ("distributions", "inverse", "NLL")))

# %% [markdown]
# ## Resources and cost on a device
# Per circuit: qubits, gates, CNOTs and depth as written (the SWAP test's controlled SWAPs also
# decomposed into CNOTs and single-qubit gates), the trained angles and the angles set per event.

# %%
resources_table = resources.format_rows(
    resource_rows, ["circuit", "qubits", "gates", "cnots", "cswaps", "depth", "cnots_decomposed", "depth_decomposed",
                    "trained_angles", "event_angles"],
    ["circuit", "qubits", "gates", "CNOTs", "CSWAPs", "depth", "CNOTs (decomposed)", "depth (decomposed)",
     "trained angles", "angles per event"])
display(Markdown(resources_table))

# %% [markdown]
# A device runs every circuit $N$ times: executions = events × circuits per event × shots. We
# cost the paper's tasks at the shot count from which the generated distributions are as good as
# exact simulation (or, if none is, the largest one scanned), and convert to hours at an *assumed*
# shot rate (`shot_rate_hz`; real rates differ by orders of magnitude between platforms). Next to
# it, what the same task costs our exact simulation on one CPU core (minimum of 3 repeats, on a
# shared machine) and our emulation of the device (the sweep's measured time per event).

# %%
n_cost = found["shots"]["distributions"] or shot_grid[-1]
n_weights = model.weights.numel()
cost_rows = resources.device_cost(model.n_features, n_weights, n_cost, n_train=len(trained.data.train),
                                  shot_rate_hz=cfg.shot_rate_hz)
sim = resources.time_exact_simulation(trained)
epoch_seconds = float(np.mean([h["seconds"] for h in trained.history]))
emulated = [r["metrics"] for r in records if r["device"]["shots"] == n_cost and r["device"]["channel"] is None]
per_event_gen = np.mean([m["seconds_generate"] / m["n_generated"] for m in emulated])
per_event_nll = np.mean([m["seconds_nll"] / m["n_test"] for m in emulated if "seconds_nll" in m])
ours = [sim["generate_seconds"], sim["nll_seconds"], epoch_seconds]
emul = [per_event_gen * cost_rows[0]["events"], per_event_nll * cost_rows[1]["events"], float("nan")]
for row, t_exact, t_emul in zip(cost_rows, ours, emul):
    row["exact_seconds"], row["emulated_seconds"] = t_exact, t_emul
cost_table = resources.format_rows(
    cost_rows, ["task", "circuits_per_event", "circuits", "shots", "executions", "device_hours", "exact_seconds",
                "emulated_seconds"],
    ["task", "circuits / event", "circuits", "shots N", "executions", f"device hours at {cfg.shot_rate_hz:g} shots/s",
     "our exact simulation [s]", "our device emulation [s]"])
display(Markdown(cost_table))
print(f"(training epoch: our time is the mean epoch of this run, {len(trained.data.train):,} events with all losses; "
      f"the device count is for the NLL gradient alone)")

# %% [markdown]
# ## On a real device's noise
# The uniform noise above is a ruler, not a device. A real quantum computer differs in three ways:
#
# * **routing** — the 5-qubit CNOT ring of Fig. 2 does not exist on IBM's heavy-hex lattice (its
#   shortest loops have 12 qubits), so the transpiler moves qubits with SWAPs and the logical CNOTs
#   become many more native two-qubit gates;
# * **errors per qubit and per gate** — calibrated two-qubit gate errors, $T_1$/$T_2$ relaxation over
#   each gate's duration, readout errors of a few per cent, different on every qubit;
# * **native gates** — CZ (Heron) or ECR (Eagle) or CX (Falcon), $\sqrt{X}$ and $R_z$.
#
# Qiskit's fake backends carry real devices' coupling maps, gate sets and calibration snapshots;
# Qiskit Aer simulates them (`AerSimulator.from_backend`, density matrices). Each circuit is routed
# **once** with its event angles as circuit parameters (`optimization_level=3`), and all events of
# a sample run in batched sampler calls with `device_shots` shots each. We run the generation
# (z → ISP → inverse circuit → x̃), compare P(qubit = 1) event by event with exact simulation and with
# shots alone, mitigate readout errors with a measured per-qubit calibration matrix, reconstruct test
# events with both circuits on the device, and place each device on the noise axis above: its
# *effective p* is where the uniform scan's angle error equals the device's (shot noise removed).
# This needs the optional extra (`pip install -e ".[hardware]"`); without it the section says so in
# one line and the rest of the notebook is unaffected. Sampler results are kept under
# `build/runs/devices/`, so an interrupted run resumes where it stopped.

# %%
from qinn_lib.hardware.ibm import extra

device_names = device_models(cfg.profile, cfg.device_backends)
n_dev_generate = budget(cfg.profile, "device_events", cfg.device_generate)
n_dev_test = budget(cfg.profile, "device_events", cfg.device_test)
n_dev_shots = budget(cfg.profile, "device_shots", cfg.device_shots)
on_devices = extra.available()
if on_devices:
    from qinn_lib.hardware.ibm import figures as device_figures
    from qinn_lib.hardware.ibm import placement, qasm, study

    studies = [study.study_backend(trained, name, n_generate=n_dev_generate, n_test=n_dev_test, shots=n_dev_shots,
                                   seed=eval_seeds[0], store=paths.runs_dir() / "devices") for name in device_names]
    summaries = [s.summary for s in studies]
    placements = [placement.place(s, rows, found) for s in summaries]
    device_resources_table = placement.resources_table(summaries, resource_rows[:2])
    device_table = placement.results_table(summaries, placements)
    device_verdict = placement.verdict(summaries, placements)
    from qinn_lib.hardware.ibm import device_field
else:
    print(extra.missing_extra("the device section").args[0])

# %% [markdown]
# ### The routed circuits
# Per device and circuit: the logical CNOTs and depth (the resource table above) beside the routed
# circuit's native two-qubit gates, single-qubit gates, depth, two-qubit depth, the duration along
# the critical path from the calibrated gate durations, the physical qubits, and what one sampler
# call of our emulation cost (fixed seconds + seconds per event, fitted over this run's calls).

# %%
if on_devices:
    display(Markdown(device_resources_table))

# %% [markdown]
# ### Against exact simulation and on the noise axis
# Mean |ΔP| is the deviation of the generating circuit's measured P(qubit = 1) from the exact value,
# averaged over qubits and events (± one standard error over events); *shots only* is the same with
# exact circuits and `device_shots` shots, i.e. what shot noise alone gives. The angle error is the
# RMS difference of the generated angles from the exact ones from the same latent points, the
# effective p its place on notebook 07's depolarising scan (in brackets: from ± 2 standard errors).
# JS is against the test split; *exact* is exact simulation of the same latent points (same sample
# size, so the JS values compare like with like). Reconstruction: ‖x̃ − x‖/‖x‖ of x → z → x̃ with both
# circuits on the device.

# %%
if on_devices:
    display(Markdown(device_table))
    fig = device_figures.plot_noise_axis(rows, summaries, placements)
    plots.save(fig, "07_devices_on_the_noise_axis")
    plt.show()

# %% [markdown]
# The field's measures of the same samples against the test split, ± their own errors (one sample
# per device, so no seed spread): FPD and KPD of the five features and the boosted-tree AUCs, on
# the device as read, readout-mitigated, with exact circuits and `device_shots` shots (shot noise
# alone), and in exact simulation of the same latent points; JS($M_{\ell\ell}$) for comparison. The
# boosted trees see all `device_generate` events per class (fewer than the sweep's 20 000, so these
# AUCs compare with each other, not with the sweep's). Below the table, computed from it
# (`device_field.field_statement`): how far each device is from exact simulation by these measures,
# whether the device verdict changes with the threshold the field's measures give the scan, and
# any two samples they order the other way round from JS($M_{\ell\ell}$).

# %%
if on_devices:
    if device_field.has_field(summaries):
        device_field_table = device_field.field_table(summaries)
        device_field_statement = device_field.field_statement(summaries, rows)
        display(Markdown(device_field_table))
    else:
        device_field_table = ""
        device_field_statement = (f"The field's measures need at least 100 generated events per device; this profile "
                                  f"generates {n_dev_generate}.")
    print(device_field_statement)

# %% [markdown]
# What the devices generate: $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$ from the same latent points,
# exactly and on every device (as read and readout-mitigated), against the test split. The ranges
# hold the bulk of every sample, the devices' too (a device's events far from the Z peak would
# otherwise fall outside the panel and look absent); below, the share of events in the Z window.

# %%
if on_devices:
    device_samples = {"exact simulation": observables.reconstruct(studies[0].generated["exact"])}
    for st in studies:
        for variant in ("raw", "mitigated"):
            label = st.summary["backend"] + (" (mitigated)" if variant == "mitigated" else "")
            device_samples[label] = observables.reconstruct(st.generated[variant])
    shown = ["m_ll", "delta_r"]
    fig = plots.ratio_grid(truth, device_samples, shown, observables.OBSERVABLE_LABELS, ncols=2,
                           ranges=device_figures.common_ranges([truth, *device_samples.values()], shown))
    plots.save(fig, "07_generated_on_ibm_devices")
    plt.show()
    print("share of events with 75 GeV <= M_ll <= 105 GeV: true "
          + f"{np.mean((truth['m_ll'] >= 75.0) & (truth['m_ll'] <= 105.0)):.3f}, "
          + ", ".join(f"{k} {np.mean((v['m_ll'] >= 75.0) & (v['m_ll'] <= 105.0)):.3f}" for k, v in device_samples.items()))

# %% [markdown]
# ### Is the paper's QINN usable on today's hardware?
# Computed from the numbers above (`placement.verdict`): a device is usable when the whole interval
# of its effective p lies at or below the p up to which notebook 07's scan keeps the generated
# distributions as good as exact simulation. How much too noisy a device is comes as a range: the
# scan passes at one p and fails at the next scanned one, and the true limit lies between. The error
# rate it would need assumes every error rate of the device scaled by the same factor, and that the
# device's error grows with its error rates as the uniform scan's grows with p.

# %%
if on_devices:
    print(device_verdict)

# %% [markdown]
# ### Taking the circuits to a device
# The trained circuits as OpenQASM: version 2 with one event's angles baked in (`forward.qasm`,
# `inverse.qasm`, from PennyLane's `qml.to_openqasm`), version 3 with the event's angles as inputs
# (`*.qasm3`, from Qiskit), written to the output folder. `tests/test_ibm_devices.py` loads both in
# Qiskit and reproduces PennyLane's outcome probabilities (Qiskit indexes outcomes with qubit 0 as the
# lowest bit, PennyLane with wire 0 as the highest). With IBM credentials the routed circuits run
# on a device unchanged: `BackendQINN(model, name, seed=..., sampler_factory=lambda seed:
# qiskit_ibm_runtime.SamplerV2(mode=service.backend(name)), sampler_name="ibm_torino")` (its results
# are kept apart from the simulation's by `sampler_name`; documented, not tested here).

# %%
if on_devices:
    event_x = dq_exact.encode(trained.data.test[:1])[0]
    event_psi = dq_exact.latent_isp_angles(dq_exact.latent(1, latent_seed=eval_seeds[0]))[0]
    written = qasm.export(model, paths.output_dir() / "qasm", x_prime=event_x, psi=event_psi)
    print("written: " + ", ".join(p.name for p in written))
    print("\n".join(written[0].read_text().splitlines()[:10]) + "\n...")

# %% [markdown]
# ## Recorded results

# %%
records_lib.write_results(paths.output_dir() / "hardware_07.json", records)
results_store.record("07_hardware_realism", {
    "seeds": eval_seeds, "statement": conclusion, "thresholds": found, "shots_table": shots_table,
    "noise_table": noise_table, "resources_table": resources_table, "cost_table": cost_table,
    "cost_shots": n_cost, "shot_rate_hz": cfg.shot_rate_hz, "sweep_seconds": sweep_seconds,
    "n_generate": n_gen, "n_test": n_tst, "run": trained.run_dir.name, "rows": rows,
    "field_statement": field_conclusion, "field_thresholds": field_found, "field_shots_table": field_shots_table,
    "field_noise_table": field_noise_table, "field_seconds": field_seconds,
})
if on_devices:
    results_store.record("07_hardware_device", {
        "backends": [s["backend"] for s in summaries], "shots": n_dev_shots, "n_generate": n_dev_generate,
        "n_test": n_dev_test, "statement": device_verdict, "results_table": device_table,
        "resources_table": device_resources_table, "studies": placement.json_safe(summaries), "placements": placement.json_safe(placements),
        "field_table": device_field_table, "field_statement": device_field_statement,
    })
