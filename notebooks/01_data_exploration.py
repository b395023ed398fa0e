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
# # 01 — The data: pp → Z(→ℓ⁺ℓ⁻) + jet
#
# The paper (Rousselot & Spannowsky 2023, sec. 4) trains every model on 100k events of
# $pp \to Zj \to \ell^+\ell^- j$ at the LHC. They used MadGraph; we generate the same process with
# **Pythia 8** (leading order $q\bar q \to Zg$ and $qg \to Zq$ at $\sqrt{s} = 13$ TeV, a pure $Z$
# without $\gamma^*$, $Z \to e^+e^-/\mu^+\mu^-$, parton level, jet $p_T > 20$ GeV) and apply the
# paper's generator-level cuts: $15 < p_{T,\ell} < 150$ GeV, $|\eta_\ell| < 4.5$, $E_Z < 1900$ GeV.
# A user with a MadGraph sample sets `lhe_file` below (a `.lhe` or `.lhe.gz` path); every notebook
# (01–07) has this parameter and runs on those events instead (`-p all lhe_file FILE` for the
# reports runner; a file with fewer events passing the cuts than `n_events` is an error that says
# how many it has).
#
# The models see five numbers per event:
# $p_{T,\ell^+},\ p_{T,\ell^-},\ \Delta\phi_{\ell\ell},\ \eta_{\ell^+},\ \eta_{\ell^-}$.

# %% tags=["parameters"]
# Parameters (papermill). These defaults reproduce the paper: 100k events after cuts.
# The profile is not a parameter: the reports runner chooses it (the quick profile, in CI, caps
# n_events through qinn_lib.training.budget.budget); run by hand, see the line printed below.
n_events = 100_000
seed = 1234
lhe_file = ""

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from qinn_lib.events import cache, observables
from qinn_lib.events.fits import PDG_GAMMA_Z, PDG_MZ, fit_breit_wigner
from qinn_lib.notebook import plots, profiles
from qinn_lib.training.budget import budget
from qinn_lib.training.config import DataConfig

cfg = profiles.notebook_config(DataConfig, globals())
plots.style()
N_EVENTS = budget(cfg.profile, "n_events", cfg.n_events)
print(f"{N_EVENTS} events, " + (f"from {cfg.lhe_file}" if cfg.lhe_file else f"Pythia seed {cfg.seed}"))

# %% [markdown]
# ## Generate (or load from the cache)
# The first call runs Pythia and caches the events with a metadata record in the git-ignored
# `data/` folder; the same seed gives bit-identical events. The split is the paper's
# 37.5 % / 12.5 % / 50 % (train / validation / test).

# %%
sample = cache.load_sample(N_EVENTS, cfg.seed, lhe_file=cfg.lhe_file, progress=True)
meta = sample.meta

# %%
# NBVAL_CHECK_OUTPUT
print(f"train / val / test: {len(sample.train)} / {len(sample.val)} / {len(sample.test)} events")

# %%
for key in ("generator", "version", "n_generated", "n_passed", "cut_efficiency",
            "sigma_pb", "sigma_err_pb", "sigma_fiducial_pb", "seconds"):
    if key in meta:
        print(f"{key:>18}: {meta[key]}")
print(f"{'fingerprint':>18}: {sample.fingerprint}")

# %% [markdown]
# ## Cross-section
# Pythia integrates the leading-order matrix element while it generates; the fiducial
# cross-section is the total times the fraction of events that pass the cuts. (LO, so expect it
# to sit below a measured $Z$+jet rate; it only sets the overall scale and no model uses it.)

# %%
if "sigma_pb" in meta:
    print(f"σ(pp → Zj → ℓℓj, pTj > 20 GeV, ℓ = e, μ) = {meta['sigma_pb']:.1f} ± {meta['sigma_err_pb']:.1f} pb (LO)")
    print(f"fiducial (after cuts): {meta['sigma_fiducial_pb']:.1f} pb   cut efficiency {meta['cut_efficiency']:.3f}")

# %% [markdown]
# ## Why five numbers are enough
# Each massless lepton has three degrees of freedom ($p_T, \eta, \phi$): six in total. The
# collision is symmetric under rotations about the beam axis, so one azimuth carries no
# information: we rotate each event so that $\phi_{\ell^+} = 0$. What is left is
# $p_{T,\ell^\pm}$, $\eta_{\ell^\pm}$ and the azimuth of $\ell^-$, which is $\Delta\phi_{\ell\ell}$.
# We take $\Delta\phi_{\ell\ell} = (\phi_{\ell^-} - \phi_{\ell^+}) \bmod 2\pi \in [0, 2\pi)$: signed, so the
# event is fully determined, and the nearly back-to-back leptons ($\Delta\phi_{\ell\ell}$ near $\pi$) lie in
# the middle of the range, away from the wrap-around at $0 = 2\pi$.
# The jet is not a free variable at leading order either: it balances the $Z$ in the transverse
# plane. From these five numbers we rebuild both four-momenta ($p_z = p_T \sinh\eta$,
# $E = p_T\cosh\eta$) and every $Z$ observable:
# $M_{\ell\ell}^2 = 2p_{T,1}p_{T,2}(\cosh\Delta\eta - \cos\Delta\phi)$,
# $\Delta R = \sqrt{\Delta\eta^2 + \Delta\phi^2}$ (with $|\Delta\phi|$ folded into $[0,\pi]$).

# %%
splits = {name: observables.reconstruct(sample.split(name)) for name in ("train", "val", "test")}
cuts = {"pt_lp": (15, 150), "pt_lm": (15, 150), "eta_lp": (-4.5, 4.5), "eta_lm": (-4.5, 4.5)}
fig = plots.hist_grid(splits, observables.FEATURES, observables.OBSERVABLE_LABELS, cuts=cuts)
fig.suptitle("The five training features (dashed: generator cuts)", y=1.02)
plots.save(fig, "01_features")
plt.show()

# %% [markdown]
# The $p_T$ cuts are hard edges that every model has to learn; the $\eta$ cut at 4.5 is hardly
# reached. Train, validation and test agree within statistics, as they must for i.i.d. events.
#
# $\Delta\phi_{\ell\ell}$ is not peaked at $\pi$: it has a dip there, between two maxima on either side
# (counted below). At leading order the $Z$ recoils against a jet of $p_T > 20$ GeV, so its leptons
# are never exactly back-to-back: for a $Z$ of transverse momentum $q$ the acoplanarity
# $\pi - \Delta\phi_{\ell\ell}$ is roughly $(2q/M_Z)\sin\alpha$, with $\alpha$ the angle, in the transverse
# plane, between the $Z$'s momentum and the decay axis (roughly uniform), and the
# sine of a uniform angle piles up at its extremes: two Jacobian peaks near $\pi \pm 2q/M_Z$
# ($\pm 0.44$ rad at $q = 20$ GeV).

# %%
counts, edges = np.histogram(splits["test"]["dphi_ll"], bins=64, range=(0.0, 2 * np.pi))
centres = 0.5 * (edges[1:] + edges[:-1])
left, right = np.argmax(np.where(centres < np.pi, counts, -1)), np.argmax(np.where(centres > np.pi, counts, -1))
at_pi = counts[np.abs(centres - np.pi) < 0.1].mean()
print(f"Delta phi_ll (test split, 64 bins of {edges[1]:.3f} rad): maxima at {centres[left]:.2f} and {centres[right]:.2f} rad "
      f"({counts[left]} and {counts[right]} events per bin); at pi: {at_pi:.0f} per bin, "
      f"{at_pi / max(counts[left], counts[right]):.2f} of the higher maximum")

# %%
derived = ["m_ll", "pt_z", "y_z", "delta_r", "px_lm", "pz_lp", "e_z", "py_lm", "pz_lm"]
fig = plots.hist_grid(splits, derived, observables.OBSERVABLE_LABELS,
                      cuts={"e_z": (1900,)}, logy=("pt_z", "e_z"),
                      ranges={"m_ll": (70.0, 110.0), "e_z": (0.0, 2000.0)})
fig.suptitle("Reconstructed from the five features", y=1.02)
plots.save(fig, "01_observables")
plt.show()

# %% [markdown]
# ## Correlations
# The $Z$ decay ties the two leptons together: $p_{T,\ell^+}$ and $p_{T,\ell^-}$ are correlated
# through the Jacobian peak near $M_Z/2$, the rapidities through the $Z$ boost. These are the
# structures a generative model must reproduce; the paper's Fig. 6 compares them between data
# and models (notebook 05).

# %%
test_obs = splits["test"]
pairs = [("pt_lp", "pt_lm"), ("eta_lp", "eta_lm"), ("dphi_ll", "delta_r"), ("px_lm", "py_lm")]
fig, axes = plt.subplots(1, len(pairs), figsize=(3.3 * len(pairs), 3.1))
rng = np.random.default_rng(cfg.seed)
show = rng.choice(len(test_obs["m_ll"]), size=min(20_000, len(test_obs["m_ll"])), replace=False)
for ax, (a, b) in zip(axes, pairs):
    sns.histplot(x=test_obs[a][show], y=test_obs[b][show], bins=60, ax=ax, cmap="viridis", cbar=False)
    ax.set_xlabel(observables.OBSERVABLE_LABELS[a])
    ax.set_ylabel(observables.OBSERVABLE_LABELS[b])
fig.tight_layout()
plots.save(fig, "01_correlations")
plt.show()

# %% [markdown]
# ## The $Z$ peak
# A binned fit of a relativistic Breit–Wigner (fixed width) to $M_{\ell\ell}$ of the whole sample, in a
# window of about ±3Γ around the pole. Pythia was given the PDG values ($M_Z = 91.1876$ GeV,
# $\Gamma_Z = 2.4952$ GeV) and samples the $Z$ line shape with a running width, the scheme in which
# the PDG quotes $M_Z$; the parton luminosity and matrix element add a slow tilt across the window.
# So expect agreement to a few tens of MeV, not to the statistical error of the fit: the
# fixed-width mass sits about $\Gamma^2/2M \approx 34$ MeV below the running-width one, and the tilt
# pulls the other way. The width is not affected at this precision.

# %%
m_all = observables.reconstruct(sample.all())["m_ll"]
fit = fit_breit_wigner(m_all)
print(fit.summary())
print(f"mass pull vs PDG:  {(fit.mass - PDG_MZ) / fit.mass_err:+.1f} σ")
print(f"width pull vs PDG: {(fit.width - PDG_GAMMA_Z) / fit.width_err:+.1f} σ")

# %%
from qinn_lib.events.fits import relativistic_breit_wigner

fig, ax = plt.subplots(figsize=(4.5, 3.2))
edges = np.linspace(*fit.window, 57)
counts, _ = np.histogram(m_all, bins=edges)
centres = 0.5 * (edges[1:] + edges[:-1])
ax.errorbar(centres, counts, yerr=np.sqrt(counts), fmt=".", color="black", label="events")
grid = np.linspace(*fit.window, 400)
ax.plot(grid, fit.norm * (edges[1] - edges[0]) * relativistic_breit_wigner(grid, fit.mass, fit.width),
        color="#d62728", label=f"BW fit: M = {fit.mass:.2f} GeV, Γ = {fit.width:.2f} GeV")
ax.set_xlabel(observables.OBSERVABLE_LABELS["m_ll"])
ax.set_ylabel("events / bin")
ax.legend(loc="upper left")
plots.save(fig, "01_mll_fit")
plt.show()

# %% [markdown]
# ## What the models will see
# Before training, every feature is scaled to $[0, \pi]$ with the minimum and maximum of the
# training split (paper sec. 3), because the QINN encodes each feature as a qubit rotation angle.
# The scaling is affine, so it is exactly invertible and only adds a constant to the log-likelihood.

# %%
from qinn_lib.events.scaling import AngleScaler

scaler = AngleScaler.fit(sample.train)
u = scaler.transform(sample.train)
print("scaled train range per feature:", np.round(u.min(axis=0), 6), np.round(u.max(axis=0), 6))
print("max |inverse(transform(x)) - x| on the test split:",
      float(np.abs(scaler.inverse(scaler.transform(sample.test)) - sample.test).max()))

# %% [markdown]
# ## Recorded results
# The numbers the README's results table shows come from here (`results.json` in the run's output
# folder; the published paper run writes `figures/results.json`).

# %%
from qinn_lib.evaluation import results as results_store

results_store.record("01_data_exploration", {
    "seed": cfg.seed, "n_events": int(sample.n_events), "n_train": len(sample.train), "n_val": len(sample.val),
    "n_test": len(sample.test), "n_generated": int(meta.get("n_generated", sample.n_events)),
    "cut_efficiency": float(meta.get("cut_efficiency", float("nan"))),
    "sigma_pb": float(meta.get("sigma_pb", float("nan"))), "sigma_err_pb": float(meta.get("sigma_err_pb", float("nan"))),
    "sigma_fiducial_pb": float(meta.get("sigma_fiducial_pb", float("nan"))),
    "fit_mass": fit.mass, "fit_mass_err": fit.mass_err, "fit_width": fit.width, "fit_width_err": fit.width_err,
    "pdg_mass": PDG_MZ, "pdg_width": PDG_GAMMA_Z, "generation_seconds": float(meta.get("seconds", float("nan"))),
    "fingerprint": sample.fingerprint, "source": meta.get("generator", "?"), "lhe_file": cfg.lhe_file,
})
