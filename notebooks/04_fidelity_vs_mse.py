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
# # 04 — Fidelity or MSE for invertibility?
#
# Sec. 3.1 offers two ways to teach the ISP to undo the measurement: maximise the **fidelity**
# $F = |\langle\tilde y|y\rangle|^2$ between the state the forward circuit made and the one the ISP
# prepares (eq. 17–18, measured by a SWAP test), or minimise the **MSE** between $x$ and its round
# trip $\tilde x$ (eq. 20), which leaves the ISP free to prepare any state that maps back to $x$.
# Sec. 4.1 reports that the fidelity loss creates artefacts in $\Delta R_{\ell\ell}$ when the $M_Z$ MMD
# is on, and picks MSE. Here both are trained with identical hyperparameters and seeds.

# %% tags=["parameters"]
# Parameters (papermill) = the fields of qinn_lib.training.config.FidelityVsMSEConfig.
# These defaults reproduce the paper's comparison (Table 1 settings, 200 epochs) with 6 seeds per
# loss. Why 6: with 3 seeds the smallest two-sided exact permutation p is 0.1, and Holm over this
# notebook's three hypotheses left both statements undecided; the power estimate on the 3 shipped
# seeds per loss (observed effect and spread taken as true, alpha / 3, power 0.8) asks ~4 seeds for
# Delta R, and shows M_Z's "similar" out of reach at the observed ratio (0.44, outside the factor-2
# margin below), where a difference would be decided with ~11. The quick profile (chosen by the
# reports runner, not here) trains 1 seed for 2 epochs on 8k events.
seed = 1234
n_seeds = 6
n_events = 100_000
data_seed = 1234
lhe_file = ""
epochs = 200
lambda_mz = 0.375

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from qinn_lib import paths
from qinn_lib.evaluation import ensemble_tables, statistics
from qinn_lib.evaluation import records as records_lib
from qinn_lib.evaluation import results as results_store
from qinn_lib.events import observables
from qinn_lib.experiments import ensembles as ensembles_lib
from qinn_lib.experiments import plans
from qinn_lib.notebook import plots, profiles
from qinn_lib.training.config import FidelityVsMSEConfig

cfg = profiles.notebook_config(FidelityVsMSEConfig, globals())
plots.style()
model_configs = plans.fidelity_vs_mse_configs(cfg)  # {"QINN (MSE)": [...], "QINN (fidelity)": [...]}, one config per seed
train_seeds = [c.seed for c in model_configs["QINN (MSE)"]]
print(f"seeds {train_seeds}, {model_configs['QINN (MSE)'][0].epochs} epochs, {model_configs['QINN (MSE)'][0].n_events} events")

# %% [markdown]
# ## Train both
# With the paper's parameters every run is a model shipped with the package (`qinn_lib.experiments.store`).
# Otherwise each run is checkpointed; runs that already exist (for instance the MSE runs of
# notebook 05, or notebook 03's seed) are reloaded, not retrained. The others are trained as Dask
# jobs in one batch (`qinn_lib.experiments.jobs`): one single-threaded worker per core by default, or your
# cluster if `QINN_DASK_SCHEDULER` names one.

# %%
ensembles = ensembles_lib.train_ensembles(model_configs)
truth = observables.reconstruct(ensembles["QINN (MSE)"].runs[0].data.sample.test)

# %% [markdown]
# ## The paper's Fig. 5
# $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$ reconstructed from the generated leptons against the whole test
# split; with several seeds the line is the bin-wise mean over seeds and the band spans the seeds
# (bin-wise min–max).

# %%
fig = plots.ratio_grid(truth, {label: e.generated for label, e in ensembles.items()}, ["m_ll", "delta_r"],
                       observables.OBSERVABLE_LABELS, ncols=2, ranges={"m_ll": (75.0, 105.0), "delta_r": (0.0, 6.0)})
plots.save(fig, "04_fig5_mll_delta_r")
plt.show()

# %% [markdown]
# ## Measured distances
# Per observable the 1D Wasserstein distance (W1, in the observable's units) and Jensen–Shannon
# divergence (JS, base 2) to the test split, the test NLL in physical units, the classifier
# two-sample AUC (0.5 = indistinguishable) and the round-trip deviation; mean ± std over seeds.
# Where the evaluation records them, also the Fréchet and kernel physics distances (FPD, KPD) and
# the boosted-tree classifier's AUC (raw features; with $M_{\ell\ell}$, $\Delta R$ added), and the
# NLL of the QINN's density normalised over the scaling box (NLL + ln Z).

# %%
records = [r for e in ensembles.values() for r in e.records]
rows = ensemble_tables.summarise(records)
columns = ensemble_tables.present_metrics(rows, ["nll", "nll_normalised", "auc", "auc_bdt", "auc_bdt_derived", "fpd",
                                                 "kpd", "recon_mean", "w1/m_ll", "js/m_ll", "w1/delta_r", "js/delta_r",
                                                 "train_seconds"])
table = ensemble_tables.format_table(rows, columns)
display(Markdown(table))

# %% [markdown]
# ## Is the paper's observation reproduced?
# Sec. 4.1 makes two statements: with the $M_Z$ MMD on, (1) both losses perform similarly on
# $M_Z$, and (2) the fidelity loss creates significant artefacts in $\Delta R_{\ell\ell}$. The cell
# below tests both on the JS divergence to the test split, on its log (`qinn_lib.evaluation.statistics`:
# JS is positive and skewed over seeds, so the effect is a ratio). (2) is Welch's two-sided t-test,
# with the exact permutation test as a check. (1) is a claim of *equivalence*: a difference that a
# test fails to find is not shown to be small, so it is tested by two one-sided tests (TOST) against
# a margin stated here before looking — JS within a factor 2 either way. Holm's correction runs over
# the notebook's three hypotheses (the TOST and the difference test of (1), the test of (2)); a
# statement that is not decided says how many seeds its power estimate asks for.

# %%
MZ_MARGIN = 2.0  # "similar": fidelity / MSE within [1/2, 2] in JS(M_ll)
by_label = {row["label"]: row["metrics"] for row in rows}
mse, fid = by_label["QINN (MSE)"], by_label["QINN (fidelity)"]
verdicts = statistics.decide([
    statistics.compare(mse["js/m_ll"], fid["js/m_ll"], metric="js/m_ll", a_label="MSE", b_label="fidelity",
                       expected="equivalent", margin=MZ_MARGIN, key="m_ll",
                       words="M_Z: the two losses perform similarly (JS(M_ll) within a factor 2)"),
    statistics.compare(mse["js/delta_r"], fid["js/delta_r"], metric="js/delta_r", a_label="MSE", b_label="fidelity",
                       expected="b>a", key="delta_r", words="Delta R: the fidelity loss is worse (higher JS(Delta R))"),
], family="04_fidelity_vs_mse")
for v in verdicts:
    print(v["text"])
verdict = "; ".join(f"{v['words']}: {v['word']}" for v in verdicts)
display(Markdown(statistics.format_verdict_table(verdicts)))

# %%
records_lib.write_results(paths.output_dir() / "models_04.json", records)
results_store.record("04_fidelity_vs_mse", {"seeds": train_seeds, "table": table, "verdict": verdict, "rows": rows,
                                            "verdicts": verdicts})
