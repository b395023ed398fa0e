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
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 — The circuit and its inverse
#
# A QINN (paper sec. 3) has three parts, each of which must be inverted:
#
# 1. **state preparation** — a trainable linear map $x' = a\odot x + \pi b$ with $a\in[0,1]^n$,
#    $b \in [0, 1-a]^n$, then one $R_y(x'_i)$ rotation per qubit (angle encoding);
# 2. **model circuit** $U$ — layers of $\mathrm{Rot}(\phi,\theta,\omega)$ on every qubit followed by a
#    ring of CNOTs (the hardware-efficient ansatz, Fig. 2);
# 3. **measurement** — $P(\text{qubit } i = 1)$ for every qubit, then a trainable linear map
#    $z = c \odot P + d$ (eq. 16).
#
# Parts 1 and 2 invert exactly. Part 3 does not: that is what the learned *inverse state
# preparation* (ISP) is for. This notebook shows each statement numerically.

# %% tags=["parameters"]
# Parameters (papermill). These defaults are the paper's: 12 model layers, 8 ISP layers (Table 1).
# fit_steps, n_seeds and max_depth only set the size of the depth scan at the end (not in the
# paper). The profile is not a parameter: the reports runner chooses it (see the printed line).
seed = 1234
n_layers = 12
isp_layers = 8
n_events = 100_000
data_seed = 1234
lhe_file = ""
fit_steps = 300
n_seeds = 3
max_depth = 12

# %%
import matplotlib.pyplot as plt
import numpy as np
import pennylane as qml
import torch

from qinn_lib.events.observables import FEATURE_LABELS, FEATURES
from qinn_lib.experiments import ensembles, one_model
from qinn_lib.models.qinn import circuits
from qinn_lib.models.qinn.model import QINN
from qinn_lib.notebook import depth_explorer, model_viewer, plots, profiles
from qinn_lib.training.budget import budget
from qinn_lib.training.config import CircuitDemoConfig

cfg = profiles.notebook_config(CircuitDemoConfig, globals())
plots.style()
torch.manual_seed(cfg.seed)
data = one_model.prepare_data(budget(cfg.profile, "n_events", cfg.n_events), cfg.data_seed, dtype="float64",
                              lhe_file=cfg.lhe_file)
model = QINN(5, cfg.n_layers, cfg.isp_layers, seed=cfg.seed, dtype=torch.float64)

# %%
# NBVAL_CHECK_OUTPUT
counts = model.parameter_counts()
print(f"trainable parameters: {counts['quantum']} quantum, {counts['classical']} classical, {counts['total']} total")

# %% [markdown]
# ## The circuits
# The forward circuit (first two of the layers; the pattern repeats): $R_y$ encoding, then
# Rot + CNOT ring per layer, then measurement of every qubit.

# %%
fig = circuits.draw(model, "forward", max_layers=2, decimals=1)
plots.save(fig, "02_circuit_forward")
plt.show()

# %% [markdown]
# The inverse direction (Fig. 4): the ISP network $g_C$ turns the measured vector into $3n$ angles,
# Rot gates prepare $|\psi\rangle$, the ISP circuit $g_Q$ maps it to $|\tilde y\rangle$, and the
# adjoint model circuit $U^\dagger$ (eq. 13–15) brings it back to the data side, where we measure.

# %%
fig = circuits.draw(model, "inverse", max_layers=2, decimals=1)
plots.save(fig, "02_circuit_inverse")
plt.show()

# %% [markdown]
# The SWAP test (Fig. 3) compares $|y\rangle = U|x\rangle$ with the ISP's $|\tilde y\rangle$:
# $P(\text{ancilla} = 0) = (1 + |\langle \tilde y | y\rangle|^2)/2$. Training uses the closed-form overlap,
# which the tests check equals this circuit.

# %%
fig = circuits.draw(model, "swap", max_layers=1, decimals=1)
plots.save(fig, "02_circuit_swap_test")
plt.show()

# %% [markdown]
# ## The model circuit inverts exactly
# $U^\dagger = U_1^\dagger \cdots U_l^\dagger$ with $\mathrm{Rot}^\dagger(\phi,\theta,\omega) =
# \mathrm{Rot}(-\omega,-\theta,-\phi)$ and $\mathrm{CNOT}^\dagger = \mathrm{CNOT}$ (eq. 13–15). We build the
# explicit adjoint circuit in PennyLane and multiply it with the fast simulator's $U$.

# %%
wires = list(range(5))
w = model.weights.detach()
U_fast = model.unitary().detach().numpy()
U_pl = qml.matrix(circuits.model_circuit, wire_order=wires)(w, wires)
U_dag_pl = qml.matrix(circuits.model_circuit_adjoint, wire_order=wires)(w, wires)
print(f"max |U_fast - U_PennyLane|   = {np.abs(U_fast - np.asarray(U_pl)).max():.2e}")
print(f"max |U_dagger U - 1|          = {np.abs(np.asarray(U_dag_pl) @ U_fast - np.eye(32)).max():.2e}")

# %% [markdown]
# ## The state preparation inverts exactly — with the right convention
# $R_y(x)|0\rangle = \cos(x/2)|0\rangle + \sin(x/2)|1\rangle$, so $P(1) = \sin^2(x/2)$ and the inverse is
# $x = 2\arcsin\sqrt{P(1)}$ on $x \in [0, \pi]$. The paper's eq. 12 writes $\cos(x_i)|0\rangle + \sin(x_i)|1\rangle$
# and $x_i = \arcsin\sqrt{\cdot}$, dropping the factors of 2; with $R_y$ as PennyLane (and every
# textbook) defines it, the half angles are needed. The map $[0,\pi] \to [0,1]$ is monotonic, which is
# why the features are scaled to $[0, \pi]$ and not $[0, 2\pi]$. The scaling uses the training
# split's minimum and maximum, so a few test events land just outside $[0,\pi]$; for them the
# encoding folds back (counted below).

# %%
x = data.test[:2000]
angles = model.encode(x).detach()
prep = qml.QNode(lambda a: (circuits.state_preparation(a, wires), [qml.probs(wires=i) for i in wires])[1],
                 qml.device("default.qubit", wires=5), interface="torch")
p1 = torch.stack([p[..., 1] for p in prep(angles)], dim=-1)
recovered = 2 * torch.arcsin(torch.sqrt(p1))
inside = ((angles >= 0) & (angles <= np.pi)).all(dim=1)
err = (recovered - angles).abs()
print(f"max |2 arcsin sqrt(P(1)) - x'| over the {int(inside.sum())} of {len(x)} test events inside [0, pi]: "
      f"{err[inside].max():.2e}")
wrong = torch.arcsin(torch.sqrt(p1))
print(f"with the paper's loose arcsin sqrt(P): max error {(wrong - angles)[inside].abs().max():.2f} rad")
print(f"{int((~inside).sum())} test events lie outside the training split's range, so an angle leaves [0, pi] "
      f"and folds back (sin^2(x/2) is symmetric about pi): max error there {err[~inside].max() if (~inside).any() else 0:.2e}")

# %% [markdown]
# ## The measurement does not invert
# $P(\text{qubit } i = 1)$ keeps $n$ real numbers of a state with $2^{n+1}-2$ real degrees of freedom.
# Any phase that is diagonal in the computational basis leaves every $P_i$ unchanged. Below, two
# different states $|y\rangle$ and $R_z$-rotated $|y'\rangle$ give *identical* measurements but overlap
# far from 1. Hence the ISP: a network $g_C$ plus circuit $g_Q$ trained so that the state it
# prepares from $P$ maps back to $x$ under $U^\dagger$ (eq. 19–22).

# %%
state = model.output_state(x[:1]).detach()[0].numpy()
basis = np.arange(32)
phase = np.exp(1j * 0.7 * ((basis >> 2) & 1) - 1j * 1.3 * ((basis >> 0) & 1))
state2 = phase * state
bits = ((basis[:, None] >> (4 - np.arange(5))) & 1).astype(float)
print("P(q=1) of |y>  :", np.round(np.abs(state) ** 2 @ bits, 6))
print("P(q=1) of |y'> :", np.round(np.abs(state2) ** 2 @ bits, 6))
print(f"|<y|y'>|^2 = {abs(np.vdot(state, state2)) ** 2:.3f}")

# %% [markdown]
# ## The full Jacobian
# A coupling INN gives only $\det J$ (its Jacobian is triangular by construction, eq. 3). The QINN's
# $5\times5$ Jacobian $\partial z/\partial x$ is dense and available in closed form (forward-mode through the
# simulator) — the advantage sec. 3.1 points out. One test event:

# %%
J = model.jacobian(x[:1]).detach()[0].numpy()
fig, ax = plt.subplots(figsize=(4.2, 3.6))
im = ax.imshow(J, cmap="RdBu_r", vmin=-np.abs(J).max(), vmax=np.abs(J).max())
ax.set_xticks(range(5), [FEATURE_LABELS[f].split(" [")[0] for f in FEATURES], rotation=45)
ax.set_yticks(range(5), [f"$z_{i}$" for i in range(5)])
fig.colorbar(im, ax=ax, label=r"$\partial z_i / \partial x_j$")
ax.set_title("Jacobian of an untrained QINN, one event")
plots.save(fig, "02_jacobian")
plt.show()
eps = 1e-6
fd = np.stack([(model(x[:1] + eps * torch.eye(5, dtype=x.dtype)[j]) - model(x[:1] - eps * torch.eye(5, dtype=x.dtype)[j])).detach().numpy()[0] / (2 * eps) for j in range(5)], axis=1)
print(f"max |J - finite differences| = {np.abs(J - fd).max():.1e};  log|det J| = {np.linalg.slogdet(J)[1]:.4f}")

# %% [markdown]
# ## Depth explorer
# How deep must the circuit be? For each depth we train a fresh QINN on the invertibility loss
# alone (eq. 20) for a fixed number of Adam steps, with several seeds, and record how well the ISP
# learns to undo it, and how widely the measured $P(q=1)$ spread over the events (a shallow
# circuit with little entanglement maps many events into a narrow band). The static scan below is
# what the executed report shows. A few hundred steps do not converge (the curves still fall): the
# scan compares depths at equal effort, it does not find each depth's best.

# %%
steps = budget(cfg.profile, "fit_steps", cfg.fit_steps)
depths = [d for d in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64) if d <= cfg.max_depth]
scan_seeds = ensembles.seeds(cfg.seed, budget(cfg.profile, "n_seeds", cfg.n_seeds))
scan = depth_explorer.depth_scan(data.train[:4000], depths, cfg.isp_layers, steps=steps, seeds=scan_seeds)
for d in depths:
    fits = [r for r in scan if r["n_layers"] == d]
    mse = np.array([r["final_mse"] for r in fits])
    print(f"{d:>3} layers: final invertibility MSE {mse.mean():.3e} ± {mse.std():.1e} over {len(fits)} seed(s)   "
          f"mean output spread {np.mean([r['spread_after'].mean() for r in fits]):.3f}   "
          f"({np.mean([r['seconds'] for r in fits]):.1f} s per fit)")
fig = depth_explorer.plot_depth_scan(scan)
plots.save(fig, "02_depth_scan")
fig

# %% [markdown]
# ### Live: fit a depth yourself
# Move the sliders and press **fit**: the fit runs in the background (the notebook stays usable;
# **stop** ends it) and is added to the comparison, which starts from the static scan above; your
# fits are the stars (and the thick dashed loss curves). After each fit the seed slider moves on to
# a seed not yet kept, so pressing **fit** again adds another seed at that depth; asking for a fit
# that is already kept (same depth, ISP depth, steps and seed give the same numbers) shows it
# instead of counting it twice. Another ISP depth or step count gets its own colour. The circuit
# picture shows the first layers; every further layer repeats the same pattern.

# %%
explorer = depth_explorer.depth_panel(data.train[:4000], max_depth=max(cfg.max_depth, 16), steps=steps,
                                      seed=cfg.seed, isp_layers=cfg.isp_layers, results=scan)
explorer

# %% [markdown]
# ### Look inside a trained QINN
# Choose a trained QINN — one shipped with the package (each label names its set, e.g. an ablation
# of notebook 06, and what differs from Table 1), or a finished run of notebook 03 under
# `build/runs` — and **load** it: its generated $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$ against the
# test events, then, for the test event you pick, its full Jacobian $\partial z/\partial x$ and
# the round trip $x \to z \to \tilde x$ through the learned inverse.

# %%
viewer = model_viewer.ModelViewer(n_generate=budget(cfg.profile, "n_generate", 20_000), seed=cfg.seed)
viewer
