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
# # 05 — QINN against classical INNs
#
# Sec. 4.2: the QINN (about 2k parameters, 300 of them quantum) against cubic-spline coupling
# INNs of about 2k, 6k and 16k parameters (Table 1). The paper concludes from histograms that the
# QINN performs like a classical INN with 3–8 times its parameters. Here the same comparison comes
# with measured distances and their seed spread.

# %% tags=["parameters"]
# Parameters (papermill) = the fields of qinn_lib.training.config.ComparisonConfig.
# These defaults reproduce the paper (Table 1, 200 epochs) with 3 seeds per model; the quick
# profile (chosen by the reports runner, not here) trains 1 seed for 2 epochs on 8k events.
seed = 1234
n_seeds = 3
n_events = 100_000
data_seed = 1234
lhe_file = ""
epochs = 200

# %%
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from IPython.display import Markdown, display

from qinn_lib import paths
from qinn_lib.evaluation import ensemble_tables
from qinn_lib.evaluation import records as records_lib
from qinn_lib.evaluation import results as results_store
from qinn_lib.events import observables
from qinn_lib.experiments import ensembles as ensembles_lib
from qinn_lib.experiments import plans
from qinn_lib.models.inn.sizes import INN_SIZES
from qinn_lib.notebook import plots, profiles
from qinn_lib.training.config import ComparisonConfig

cfg = profiles.notebook_config(ComparisonConfig, globals())
plots.style()
model_configs = plans.comparison_configs(cfg)  # {"QINN": [...], "INN 2k": [...], ...}, one config per seed
train_seeds = [c.seed for c in model_configs["QINN"]]
print(f"seeds {train_seeds}, {model_configs['QINN'][0].epochs} epochs")

# %% [markdown]
# ## Train (or reload) every model
# With the paper's parameters every run is a model shipped with the package (`qinn_lib.experiments.store`).
# The QINN runs are the MSE runs of notebook 04 (same configuration, so they are reloaded).
# The seeds of each INN size are trained together, in lockstep (`qinn_lib.models.inn.model.INNStack`): each seed
# is still its own run (own shuffling, latent draws, Adam state, checkpoint), but the spline of all
# seeds is evaluated in one call per block, which makes a seed 2–2.5× cheaper (`python -m qinn_lib.bench`).
# Every unfinished run of every model goes to the Dask cluster in one batch, longest first
# (`qinn_lib.experiments.jobs`: one single-threaded worker per core by default, or your cluster if
# `QINN_DASK_SCHEDULER` names one); an interrupted run resumes from its checkpoint.

# %%
ensembles = ensembles_lib.train_ensembles(model_configs)
truth = observables.reconstruct(ensembles["QINN"].runs[0].data.sample.test)

# %% [markdown]
# ## Table 1: parameters

# %%
# NBVAL_CHECK_OUTPUT
for label, e in ensembles.items():
    counts = e.runs[0].model.parameter_counts()
    print(f"{label:>8}: {counts['total']:>6} parameters ({counts['quantum']} quantum, {counts['classical']} classical)")

# %% [markdown]
# ## Fig. 6: correlations of lepton observables
# Data, QINN and the 16k INN side by side (first seed of each).

# %%
pairs = [("pt_lp", "pt_lm"), ("eta_lp", "eta_lm"), ("px_lm", "py_lm")]
panels = {"data": truth, "QINN": ensembles["QINN"].generated[0], "INN 16k": ensembles["INN 16k"].generated[0]}
fig, axes = plt.subplots(len(pairs), 3, figsize=(10, 3.1 * len(pairs)))
rng = np.random.default_rng(cfg.seed)
for row, (a, b) in enumerate(pairs):
    lims = [np.percentile(truth[k], [0.5, 99.5]) for k in (a, b)]
    for col, (name, obs) in enumerate(panels.items()):
        n = len(obs[a])
        idx = rng.choice(n, size=min(n, 20_000), replace=False)
        sns.histplot(x=obs[a][idx], y=obs[b][idx], bins=60, ax=axes[row, col], cmap="viridis", cbar=False,
                     binrange=(tuple(lims[0]), tuple(lims[1])))
        axes[row, col].set_xlabel(observables.OBSERVABLE_LABELS[a])
        axes[row, col].set_ylabel(observables.OBSERVABLE_LABELS[b] if col == 0 else "")
        if row == 0:
            axes[row, col].set_title(name)
fig.tight_layout()
plots.save(fig, "05_fig6_correlations")
plt.show()

# %% [markdown]
# ## Fig. 7: $M_{\ell\ell}$ and $\Delta R_{\ell\ell}$ for every model
# Mean over seeds with ±1 std bands.

# %%
fig = plots.ratio_grid(truth, {label: e.generated for label, e in ensembles.items()}, ["m_ll", "delta_r"],
                       observables.OBSERVABLE_LABELS, ncols=2, ranges={"m_ll": (75.0, 105.0), "delta_r": (0.0, 6.0)})
plots.save(fig, "05_fig7_mll_delta_r")
plt.show()

# %% [markdown]
# ## Measured distances
# W1 and JS per observable against the test split, test NLL in physical units (nats/event; lower
# is better), classifier two-sample AUC (0.5 = indistinguishable), mean ± std over seeds.
# `js/m_ll_peak` and `js/m_ll_tails` split $M_{\ell\ell}$ at $M_Z \pm 5$ GeV and compare the shapes
# inside and outside that window; `peak_excess/m_ll` is the generated minus the true share of
# events inside it, `peak_share_error/m_ll` its size (`metrics.peak_and_tails`).

# %%
records = [r for e in ensembles.values() for r in e.records]
rows = ensemble_tables.summarise(records)
columns = ["params_total", "nll", "auc", "w1/m_ll", "js/m_ll", "js/m_ll_peak", "js/m_ll_tails", "peak_excess/m_ll",
           "js/delta_r", "js/pt_lp", "js/eta_lp", "train_seconds"]
table = ensemble_tables.format_table(rows, columns)
display(Markdown(table))

# %% [markdown]
# ## Where does the QINN sit?
# For each headline metric, the INN sizes the QINN beats and the ones that beat it: a difference
# counts when it exceeds two combined seed spreads (`metrics.compare_means`); with a single seed
# (quick profile) nothing can be decided. One side's spread can be large enough to make two sets
# of seeds that never overlap "tied", so each line also counts the seed pairs (QINN seed, INN
# seed) in which the INN is lower: 9/9 means every INN seed beats every QINN seed.

# %%
by_label = {row["label"]: row["metrics"] for row in rows}
lines = []
for metric in ("nll", "auc", "js/m_ll", "js/delta_r"):
    # lower is better for every metric here (AUC: closer to 0.5, i.e. lower as long as > 0.5)
    groups = {"better than": [], "worse than": [], "tied with": [], "undecided against": []}
    pair_counts = []
    for size in INN_SIZES:
        c = ensemble_tables.compare_means(by_label["QINN"][metric], by_label[f"INN {size}"][metric])
        groups[{"b>a": "better than", "b<a": "worse than", "tied": "tied with",
                "undecided": "undecided against"}[c["order"]]].append(size)
        pair_counts.append(f"{size} {c['pairs_b_lower']}/{c['pairs']}")
    lines.append(f"{metric:>11}: QINN " + "; ".join(f"{k} INN {v}" for k, v in groups.items() if v)
                 + f" (INN lower in seed pairs: {', '.join(pair_counts)})")
conclusion = "\n".join(lines)
print(conclusion)

# %% [markdown]
# ## The paper's statements, checked
# Sec. 4.2 reads Fig. 7 as: the 2k INN is "nowhere as expressive as the QINN"; the QINN "arguably
# even outperforms" the 6k INN; it "outperforms the 16k parameter INN at reconstructing the sharp
# peak of the $M_Z$ distribution, though it does not match the tails ... as well". Each is a
# statement about $M_{\ell\ell}$; here each is one comparison of seed means (lower is better; a
# difference counts above two combined seed spreads), followed by the seed-pair count as above.
# A histogram's peak can be wrong in shape or in height, so the peak statement is tested on both.

# %%
statements = [  # (paper's words, metric, INN size, expected order of INN vs QINN)
    ("the 2k INN is nowhere near as expressive as the QINN (M_ll)", "js/m_ll", "2k", "b>a"),
    ("the QINN arguably outperforms the 6k INN (M_ll)", "js/m_ll", "6k", "b>a"),
    ("the QINN outperforms the 16k INN at the M_Z peak (its shape)", "js/m_ll_peak", "16k", "b>a"),
    ("the QINN outperforms the 16k INN at the M_Z peak (its height: share of events)", "peak_share_error/m_ll", "16k", "b>a"),
    ("the 16k INN matches the M_ll tails better than the QINN", "js/m_ll_tails", "16k", "b<a"),
]
claim_lines = []
for words, metric, size, expected in statements:
    v = ensemble_tables.claim_verdict(by_label["QINN"][metric], by_label[f"INN {size}"][metric], expected)
    claim_lines.append(f"{words}: {metric} QINN {by_label['QINN'][metric]['mean']:.4f}, "
                       f"INN {size} {by_label[f'INN {size}'][metric]['mean']:.4f}; INN - QINN = {v['text']}; "
                       f"INN lower in {v['pairs_b_lower']}/{v['pairs']} seed pairs")
claims = "\n".join(claim_lines)
print(claims)

# %%
records_lib.write_results(paths.output_dir() / "models_05.json", records)
results_store.record("05_qinn_vs_inn", {"seeds": train_seeds, "table": table, "conclusion": conclusion,
                                        "claims": claims, "rows": rows})

# %% [markdown]
# ## Why the gap?
# Notebook 06 (`06_why_the_gap`) asks whether the gap between these numbers and the paper's is
# our code or the paper: the function class of single angle encoding, where the forward map folds,
# the ambiguous normalisation of eq. 20 and the readings of the 2.1 % metric, each tested with seeds,
# and a search for any QINN of the paper's size that matches the 6k INN.
