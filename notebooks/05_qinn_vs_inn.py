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
# with measured distances, and every statement is a test over the training seeds.

# %% tags=["parameters"]
# Parameters (papermill) = the fields of qinn_lib.training.config.ComparisonConfig.
# These defaults reproduce the paper (Table 1, 200 epochs) with 6 seeds per model. Why 6: with 3
# seeds the smallest two-sided exact permutation p is 0.1 (6 vs 6: 0.002), and Holm over this
# notebook's 15 hypotheses left 6 of them undecided; the power estimate on the 3 shipped seeds
# (observed effect and spread taken as true, alpha / 15, power 0.8) asks 4-6 seeds for most of them,
# ~16 for JS(Delta R) against the 2k INN and for the M_Z peak's shape against the 16k INN: those
# two may stay open at 6 and then say how many they need. The quick profile (chosen by the reports
# runner, not here) trains 1 seed for 2 epochs on 8k events.
seed = 1234
n_seeds = 6
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
from qinn_lib.evaluation import ensemble_tables, statistics
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
# seeds is evaluated in one call per block, which saves the per-call overhead of a seed (how much, per size:
# `python -m qinn_lib.bench`, the README's INN table).
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
# The bin-wise mean over seeds; the band spans the seeds (bin-wise min–max).

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
# events inside it, `peak_share_error/m_ll` its size (`qinn_lib.evaluation.distances.peak_and_tails`).
# Where the evaluation records them, also the Fréchet and kernel physics distances (FPD, KPD), the
# boosted-tree classifier's AUC (raw features; with $M_{\ell\ell}$, $\Delta R$ added: `auc_bdt_derived`)
# and the QINN's normalised NLL (NLL + ln Z, its density divided by its integral Z over the box).

# %%
records = [r for e in ensembles.values() for r in e.records]
rows = ensemble_tables.summarise(records)
columns = ensemble_tables.present_metrics(rows, [
    "params_total", "nll", "nll_normalised", "auc", "auc_bdt", "auc_bdt_derived", "fpd", "kpd", "w1/m_ll", "js/m_ll",
    "js/m_ll_peak", "js/m_ll_tails", "peak_excess/m_ll", "peak_share_error/m_ll", "js/delta_r", "js/pt_lp", "js/eta_lp",
    "train_seconds"])
table = ensemble_tables.format_table(rows, columns)
display(Markdown(table))

# %% [markdown]
# ## Where does the QINN sit?
# For each headline metric, the INN sizes that are lower than the QINN (lower is better for every
# metric here; an AUC is better the closer it is to 0.5) and those the QINN is lower than, each
# decided by Welch's two-sided t-test over the seeds on the metric's declared scale (log for the
# distances and for AUC − ½, raw for the NLL: `qinn_lib.evaluation.statistics.transforms`), with
# Holm's correction over every hypothesis of this notebook (this cell's and the next's); an exact
# permutation test is the robustness check. An INN size that is not decided either way is
# "undecided", with the seeds its power estimate asks for. With a single seed (quick profile)
# nothing is decided.
#
# The QINN's NLL is a density's only where its map does not fold (notebook 06): when the records
# carry its normalised NLL (NLL + ln Z), the NLL line compares that with the INNs' NLL (their
# density integrates to 1) and is labelled `nll_normalised`; otherwise the raw NLL.

# %%
by_label = {row["label"]: row["metrics"] for row in rows}
nll_metric = "nll_normalised" if "nll_normalised" in by_label["QINN"] else "nll"
where_metrics = [nll_metric] + [m for m in ("auc", "auc_bdt", "auc_bdt_derived", "fpd", "kpd", "js/m_ll", "js/delta_r")
                                if m in by_label["QINN"]]


def entry(label, metric):
    """A model's seed values of ``metric``; an INN without a normalised NLL has an exact density, so its NLL is."""
    m = by_label[label]
    return m.get(metric, m["nll"] if metric == "nll_normalised" and label.startswith("INN") else None)


normalised_words = "NLL of the normalised densities (QINN: NLL + ln Z; INN: its NLL, an exact density)"
where = [statistics.compare(entry("QINN", metric), entry(f"INN {size}", metric), metric=metric, a_label="QINN",
                            b_label=f"INN {size}", key=f"{metric} {size}",
                            words=normalised_words if metric == "nll_normalised" else "")
         for metric in where_metrics for size in INN_SIZES]

# %% [markdown]
# ## The paper's statements, checked
# Sec. 4.2 reads Fig. 7 as: the 2k INN is "nowhere as expressive as the QINN"; the QINN "arguably
# even outperforms" the 6k INN; it "outperforms the 16k parameter INN at reconstructing the sharp
# peak of the $M_Z$ distribution, though it does not match the tails ... as well". Each is a
# statement about $M_{\ell\ell}$, tested like the lines above and in the same Holm family: a
# statement is *reproduced* when the test decides in its direction, *contradicted* when it decides
# in the other, and otherwise *undecided* (with the seeds it would need). A histogram's peak can be
# wrong in shape or in height, so the peak statement is tested on both.

# %%
statements = [  # (paper's words, metric, INN size, expected order of INN vs QINN)
    ("the 2k INN is nowhere near as expressive as the QINN (M_ll)", "js/m_ll", "2k", "b>a"),
    ("the QINN arguably outperforms the 6k INN (M_ll)", "js/m_ll", "6k", "b>a"),
    ("the QINN outperforms the 16k INN at the M_Z peak (its shape)", "js/m_ll_peak", "16k", "b>a"),
    ("the QINN outperforms the 16k INN at the M_Z peak (its height: share of events)", "peak_share_error/m_ll", "16k", "b>a"),
    ("the 16k INN matches the M_ll tails better than the QINN", "js/m_ll_tails", "16k", "b<a"),
]
paper_claims = [statistics.compare(by_label["QINN"][metric], by_label[f"INN {size}"][metric], metric=metric,
                                   a_label="QINN", b_label=f"INN {size}", expected=expected, words=words, key=words)
                for words, metric, size, expected in statements]
verdicts = statistics.decide(where + paper_claims, family="05_qinn_vs_inn")
decided_where, decided_claims = verdicts[:len(where)], verdicts[len(where):]

lines = [f"{metric:>15}: " + statistics.order_line([v for v in decided_where if v["metric"] == metric], a_label="QINN",
                                                     b_prefix="INN ")
         for metric in where_metrics]
conclusion = "\n".join(lines)
print(conclusion)
print()
claims = "\n".join(v["text"] for v in decided_claims)
print(claims)
display(Markdown(statistics.format_verdict_table(verdicts)))

# %%
records_lib.write_results(paths.output_dir() / "models_05.json", records)
results_store.record("05_qinn_vs_inn", {"seeds": train_seeds, "table": table, "conclusion": conclusion,
                                        "claims": claims, "rows": rows, "verdicts": verdicts})

# %% [markdown]
# ## Why the gap?
# Notebook 06 (`06_why_the_gap`) asks whether the gap between these numbers and the paper's is
# our code or the paper: the function class of single angle encoding, where the forward map folds,
# the ambiguous normalisation of eq. 20 and the readings of the 2.1 % metric, each tested with seeds,
# and a search for any QINN of the paper's size that matches the 6k INN.
