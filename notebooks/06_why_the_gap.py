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
# # 06 — Why our QINN misses the paper
#
# Notebooks 03–05 measure our QINN against the paper: its reconstruction deviation against the
# paper's "< 2.1 %" (notebook 03) and its distance to the data against classical INNs (notebook 05,
# whose verdicts say, metric by metric, which model is decided better, if either).
# Is a gap our code or the paper? A line-by-line audit of sections 2–4 and Table 1 against the code
# found no bug; it found four hypotheses, each tested here with seeds:
#
# 1. **a function-class ceiling**: with single angle encoding every output is a degree-1
#    trigonometric polynomial along each input, however deep the circuit (an identity, checked
#    numerically below). Does the forward flow, trained on the NLL alone, stay above the 2k INN's
#    density, and does uploading the input more than once lower that ceiling — also once each
#    model's density is normalised?
# 2. **the forward map folds**: where $\det J$ takes both signs the change of variables over-counts
#    and the NLL is not that of a density. Does the map fold more without its invertibility loss, and
#    do the folded events reconstruct worse?
# 3. **eq. 20's normalisation is ambiguous**: does averaging or summing the MSE over the features
#    decide the trade-off between a good inverse and a good $M_Z$ peak?
# 4. **the paper's "‖(x̂−x)/x‖ < 2.1 %" has many readings**: which of them come below 2.1 %, and by
#    which statistic over the test events (median or mean; the paper says "average")?
#
# Then a budgeted search asks whether *any* QINN of the paper's size matches a 6k INN.
# Every statement below is a test over the training seeds (`qinn_lib.evaluation.statistics`: Welch's
# t-test on the metric's declared scale, or the paired t-test for two quantities of the same runs,
# each with an exact permutation / signed-rank test as the check; Holm's correction over the
# notebook's statements), and the closing paragraph is built from those verdicts: what is decided,
# what is contradicted, and for what is still open how many seeds it would need.

# %% tags=["parameters"]
# Parameters (papermill) = the fields of qinn_lib.training.config.DiagnosisConfig.
# These defaults are the committed paper-profile report: Table 1's settings and 200 epochs for every
# run, 6 seeds per ablation and per upload count (1 and 2 uploads), an 8-trial search of 200
# epochs per trial. Why 6 seeds: the first report ran 3, with which the smallest two-sided exact
# permutation p is 0.1, and Holm over this notebook's 9 statements decided 2 of them. The power
# estimate on those 3-seed runs (observed effect and spread taken as true, alpha / 9, power 0.8)
# asks, per ensemble: ~5 for "2 uploads lower the NLL" and ~6 for its normalised twin (1 and 2
# uploads), ~5 / ~7 / ~5 for eq. 20's inverse, folds and JS(pT) statements (MSE sum and the
# baseline), ~11 for "NLL only folds more" (NLL only and the baseline) and ~18 seed pairs for
# "folded events reconstruct worse" (the baseline). 6 seeds cover most of these; the last two would
# need 2-3 times the run budget, so the closing paragraph prints, for whatever is still open, the
# estimate of the run it closes. The baseline's seeds are notebook 04's MSE runs. Cuts, and why: the
# ISP-64 ablation (priority 3; it leaves the paper's 2k-parameter budget, and the search varies the
# ISP within it) -- ablation_priority = 3 adds it (6 runs); the 3-upload flows -- max_uploads = 3
# adds them (6 runs of ~4 core-min each on the compiled re-uploading path); and the search's
# length: 8 trials are fewer than the TPE sampler's 10 random start-up trials, so this search is a
# seeded random screen around Table 1; search_trials = 40 would let TPE steer (32 more 200-epoch runs). The quick profile
# (chosen by the reports runner, not here) trains 1 seed for 2 epochs on 8k events and runs 2
# search trials.
seed = 1234
n_seeds = 6
n_events = 100_000
data_seed = 1234
lhe_file = ""
epochs = 200
ablation_priority = 2
max_uploads = 2
search_trials = 8
search_epochs = 200

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from qinn_lib import paths
from qinn_lib.evaluation import diagnostics, ensemble_tables, evaluate, normalisation
from qinn_lib.evaluation import records as records_lib
from qinn_lib.evaluation import results as results_store
from qinn_lib.experiments import ablations, plans, search
from qinn_lib.experiments import ensembles as ensembles_lib
from qinn_lib.notebook import gap, plots, profiles
from qinn_lib.training.budget import budget
from qinn_lib.training.config import DiagnosisConfig

cfg = profiles.notebook_config(DiagnosisConfig, globals())
plots.style()
# {label: [config per seed]}: the ablations (the baseline, Table 1, first: the runs of notebooks
# 04/05), then the re-uploading flows; already profile-capped
run_cfgs = plans.diagnosis_configs(cfg)
ablation_cfgs = {label: cs for label, cs in run_cfgs.items() if cs[0].kind == "qinn"}
upload_cfgs = {cs[0].uploads: cs for cs in run_cfgs.values() if cs[0].kind == "reuploading"}
base = ablation_cfgs[ablations.BASELINE][0]
train_seeds = [c.seed for c in ablation_cfgs[ablations.BASELINE]]
print(f"seeds {train_seeds}, {base.epochs} epochs on {base.n_events} events; "
      f"{len(ablation_cfgs)} QINN ensembles, {len(upload_cfgs)} re-uploading ensembles")
for ab in ablations.ABLATIONS:
    print(f"  {ab.label(base):>20} (priority {ab.priority}): {ab.why}")

# %% [markdown]
# ## Train (or reload) every run
# All runs go to the Dask cluster in one batch (`qinn_lib.experiments.jobs`; the reports runner trains them
# before the notebook starts, with every other notebook's runs); the baseline runs are those of
# notebooks 04/05 (same configuration, so they are reloaded). Each run's record
# gets the diagnostics of `qinn_lib.evaluation.diagnostics`: the fold fraction, the reconstruction error
# split by the sign of $\det J$, every reading of the 2.1 % metric and the Monte Carlo integral of
# the model's density over the scaling box.

# %%
norm_samples = budget(cfg.profile, "normalisation_samples", 100_000)  # quasi-MC points of each ln Z (quick: fewer)
ensembles = ablations.train_ablations(ablation_cfgs, normalisation_samples=norm_samples)
flat_uploads = ensembles_lib.train_runs([c for cs in upload_cfgs.values() for c in cs], label="re-uploading")
upload_runs = {u: flat_uploads[i * len(train_seeds):(i + 1) * len(train_seeds)] for i, u in enumerate(upload_cfgs)}
data = ensembles[ablations.BASELINE].runs[0].data
records = [r for e in ensembles.values() for r in e.records]
upload_records = []
for u, trained_list in upload_runs.items():
    for trained in trained_list:
        flagged = diagnostics.flagged_nll(trained.model, trained.data, normalisation_samples=norm_samples,
                                          seed=int(trained.cfg.seed))
        metrics = {"nll": flagged["nll"], "nll_sem": flagged["nll_sem"], "fold_fraction": flagged["fold_fraction"],
                   "density_normalisation": flagged["normalisation"], "params_total": trained.model.parameter_counts()["total"]}
        # A map that folds has a "density" integrating to Z != 1 over the scaling box, and its NLL is
        # then optimistic by ln Z; divided by Z it is a proper density again: NLL + ln Z, with Z from
        # the same quasi-Monte Carlo integral as every other model's (qinn_lib.evaluation.normalisation)
        metrics.update(evaluate.likelihood_normalisation(trained.model, trained.data, seed=int(trained.cfg.seed)))
        metrics["nll_normalised"], metrics["nll_normalised_err"] = normalisation.normalised_nll(
            metrics["nll"], metrics["nll_sem"], metrics["log_z"], metrics["log_z_err"])
        upload_records.append(records_lib.make_record(plans.upload_label(u), trained, metrics))
rows = ensemble_tables.summarise(records)
upload_rows = ensemble_tables.summarise(upload_records)
by_label = {r["label"]: r["metrics"] for r in rows + upload_rows}
references, ref_note = gap.reference_metrics(gap.reference_path(cfg.profile), data.fingerprint)
by_label.update({k: v for k, v in references.items() if k.startswith("INN")})
print(ref_note)

# %% [markdown]
# ## The statements
# The hypotheses above as tested statements, one comparison each (a missing ensemble leaves its
# statement untested). They are decided together — Holm's correction runs over all of them — and
# each section below prints its own.


# %%
def m(label, metric):
    """The summarise entry of one ensemble's metric, or None when that ensemble was not run."""
    return by_label.get(label, {}).get(metric)


mse_label = next((lab for lab in ensembles if lab.startswith("MSE ")), None)
claims = gap.decide_claims(gap.statements(by_label, baseline=ablations.BASELINE, uploads=list(upload_cfgs),
                                          mse_label=mse_label))
print(f"{len(claims)} statements, {claims[0]['family_size']} hypotheses in the Holm family:")
for c in claims:
    print(f"  {c['key']:>22}: {c['words']} ({c['b_label']} vs {c['a_label']}, {c['metric']}"
          f"{', paired' if c['paired'] else ''})")


def section(*prefixes):
    """The decided statements whose key starts with one of ``prefixes``, one sentence each."""
    return gap.format_claims([c for c in claims if c["key"].startswith(prefixes)])


# %% [markdown]
# ## 1. A function-class ceiling
# With angle encoding $R_y(x'_i)|0\rangle$ every amplitude is linear in $(\cos\frac{x'_i}{2}, \sin\frac{x'_i}{2})$, so
# every measured probability, hence every output $z_k$, is $A + B\cos x'_i + C\sin x'_i$ along each
# input with the others fixed — for any depth of the model circuit. The check fits that form to
# each output along each coordinate of a few points (`diagnostics.fourier_check`, in float64)
# and reports the worst residual. The re-uploading flows (`qinn_lib.models.qinn.reuploading`: the same
# circuit with the input encoded more than once; `max_uploads` in the parameters cell sets up to how
# many times, and the cell below prints which were run) are not degree 1; they are forward-only
# density models (no exact inverse, no ISP), so they are compared on the NLL alone.

# %%
rng = torch.Generator().manual_seed(cfg.seed)
points = torch.rand(8, 5, generator=rng, dtype=torch.float64) * np.pi
fourier = {}
for label in (ablations.BASELINE, "NLL only", f"{2 * base.n_layers} layers"):
    if label in ensembles:
        fourier[label] = max(diagnostics.fourier_check(diagnostics.angle_map(t.model), points)["max_residual"]
                             for t in ensembles[label].runs)
for u, trained_list in upload_runs.items():
    fourier[plans.upload_label(u)] = max(
        diagnostics.fourier_check(diagnostics.angle_map(t.model), points)["max_residual"] for t in trained_list)
fourier_text = "\n".join(f"{label:>22}: largest residual of the degree-1 fit {value:.1e}" for label, value in fourier.items())
print(fourier_text)
print(f"re-uploading flows run: {', '.join(plans.upload_label(u) for u in upload_cfgs)}")

# %% [markdown]
# The density each model reaches when trained for it alone: the NLL-only QINN and the
# re-uploading flows against the INNs of notebook 05 (test NLL in nats per event in physical
# units; lower is better). The forward map has the same 200 parameters in every QINN and flow
# here (180 circuit angles, a, b, c, d); the QINN's other parameters are its ISP, which the NLL
# does not use. `fold_fraction` and `density_normalisation` Z (the model's density
# integrated over the scaling box by Monte Carlo; above 1 it over-counts) say whether each NLL
# is that of a density; `nll_normalised` = NLL + ln Z is the NLL of the density divided by Z,
# which is a proper density, so it is the fair comparison with the INNs (whose Z is 1).

# %%
nll_labels = ["NLL only", *[plans.upload_label(u) for u in upload_cfgs], "INN 2k", "INN 6k", "INN 16k"]
nll_rows = [{"label": lab, "n_seeds": by_label[lab]["nll"]["n"], "metrics": by_label[lab]}
            for lab in nll_labels if lab in by_label]
nll_table = ensemble_tables.format_table(nll_rows, ["nll", "density_normalisation", "nll_normalised", "fold_fraction",
                                                    "params_total"])
print(nll_table)
print(section("nll_only_vs", "uploads"))

# %% [markdown]
# ## 2. Does the forward map fold?
# The sign of $\det J$ over the test events: the *fold fraction* is the share with the minority
# sign. Where the sign changes the map is not injective, so $p(x) = \mathcal N(f(x))\,|\det J|$
# over-counts and the NLL is optimistic. Whether the folded events also come back worse through
# the learned inverse is a paired statement: both medians are measured on the same runs. Left: the
# per-event reconstruction error of the first baseline seed, split by sign; right: the fold
# fraction of every ensemble, each seed a point, with the seed mean and its 95 % bootstrap interval.

# %%
first = ensembles[ablations.BASELINE].runs[0]
x_test = first.data.test
signs = diagnostics.jacobian_signs(first.model, x_test)
x_rec = torch.cat([first.reconstruct(x_test[s:s + 8192]) for s in range(0, len(x_test), 8192)]).double().numpy()
err = np.linalg.norm(x_rec - x_test.double().numpy(), axis=1) / np.linalg.norm(x_test.double().numpy(), axis=1)
majority = 1 if (signs > 0).sum() >= (signs < 0).sum() else -1
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.6))
bins = np.logspace(np.log10(max(err[err > 0].min(), 1e-5)), np.log10(err.max()), 50)
for mask, name, color in ((signs == majority, "majority sign", plots.COLORS["train"]),
                          (signs == -majority, "minority sign (folded)", plots.COLORS["QINN"])):
    ax0.hist(err[mask], bins=bins, histtype="step", color=color, label=f"{name}: {mask.sum()} events")
ax0.set_xscale("log")
plots.log_axis(ax0.xaxis, percent=True)
ax0.set_xlabel("‖x̃ − x‖/‖x‖ per test event")
ax0.set_ylabel("events")
ax0.set_title(f"baseline, seed {first.cfg.seed}")
ax0.set_ylim(0, 1.3 * ax0.get_ylim()[1])
ax0.legend(loc="upper right")
labels_ff = [r["label"] for r in rows]
plots.seed_strip(ax1, {lab: by_label[lab]["fold_fraction"] for lab in labels_ff},
                 xlabel="fold fraction of test events (seeds; mean, 95 % bootstrap interval)")
ax1.set_xlim(left=0)
fig.tight_layout()
plots.save(fig, "06_folds")
plt.show()

# %%
folds_text = "\n".join(
    f"{lab:>20}: fold fraction {100 * by_label[lab]['fold_fraction']['mean']:.2f} % of test events; density integral "
    f"over the scaling box {by_label[lab]['density_normalisation']['mean']:.3f}"
    for lab in (ablations.BASELINE, "NLL only") if lab in by_label) + "\n" + section("folded", "nll_only_folds")
print(folds_text)

# %% [markdown]
# ## 3. Does eq. 20's normalisation decide the trade-off?
# The paper writes $\mathcal L_{MSE} = \lambda_{MSE}(x - \tilde x)^2$. Averaged over the five features
# (our reading so far) or summed ($\lVert x - \tilde x\rVert^2$, five times more weight on the inverse),
# the same Table 1 $\lambda$ gives different models. Below every ensemble in the plane of the two
# quantities the paper claims at once — a faithful inverse and a sharp $M_Z$ peak: each seed a small
# point, the seed means a marker with the 95 % bootstrap intervals of the two means.

# %%
fig, ax = plt.subplots(figsize=(6.4, 4.4))
colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
for k, lab in enumerate(labels_ff):
    style = dict(marker="*", ms=12, color="k") if lab == ablations.BASELINE else dict(marker="os^Dv<>"[k % 7], ms=5,
                                                                                      color=colors[(2 * k) % 20])
    plots.seed_scatter(ax, by_label[lab]["recon_mean"], by_label[lab]["js/m_ll"], label=lab, **style)
ax.axvline(0.021, color="k", lw=0.8, ls=":", label="paper: < 2.1 %")
ax.set_xscale("log")
ax.set_yscale("log")
plots.log_axis(ax.xaxis, percent=True)
plots.log_axis(ax.yaxis)
ax.set_xlabel("reconstruction deviation ‖x̃ − x‖/‖x‖ (mean)")
ax.set_ylabel(r"JS($M_{\ell\ell}$)")
ax.legend(fontsize=6, ncol=2)
fig.tight_layout()
plots.save(fig, "06_tradeoff")
plt.show()

# %%
verdicts = ablations.ablation_verdicts(rows)
both_better = [lab for lab, v in verdicts.items()
               if v.get("recon_mean", {}).get("table_word") == "better" and v.get("js/m_ll", {}).get("table_word") == "better"]
tradeoff = ("ablations decided better than the baseline on both the reconstruction deviation and JS(M_ll) (Holm over "
            f"the ablation table below): {', '.join(both_better) if both_better else 'none'}")
print(section("mse_"))
print(tradeoff)

# %% [markdown]
# Every ablation against the baseline, metric by metric: the ablation's seed mean, then *better* /
# *worse* (decided by Welch's test on the metric's scale; lower is better everywhere) or
# *undecided*, the effect against the baseline (× a ratio on a log scale, Δ a difference on the raw
# NLL) and Holm's p. The table is a screen of many comparisons, so it is its own Holm family (every
# cell), apart from the statements above: a cell decided here is one the seeds show clearly.

# %%
verdict_table = ablations.format_verdicts(verdicts, rows)
print(verdict_table)
screen = [v for per_metric in verdicts.values() for v in per_metric.values()]

# %% [markdown]
# ## 4. The readings of "‖(x̂−x)/x‖ < 2.1 %"
# The same round trips, measured every way the paper's formula can be read
# (`diagnostics.READINGS`). The headline — the one notebooks 03–05 report — is the literal
# relative error of the scaled feature vector; why it is the headline is in the docstring of
# `qinn_lib.evaluation.diagnostics`. The range-normalised readings divide by the range, not by $x$.

# %%
reading_labels = [lab for lab in (ablations.BASELINE, mse_label) if lab in by_label]
readings = gap.reading_table(rows, reading_labels)
print(readings)
readings_note = gap.readings_note(by_label[ablations.BASELINE], label="baseline")
print(readings_note)

# %% [markdown]
# ## 5. Is there any QINN of the paper's size that matches a 6k INN?
# A two-objective search (reconstruction deviation, JS($M_{\ell\ell}$)) over what the paper leaves
# open — the loss weights, eq. 20's normalisation, the ISP's width and depth, the learning-rate
# schedule — with every trial at ≤ 2.1k parameters (`qinn_lib.experiments.search`; Optuna's TPE
# sampler, seeded, whose first 10 trials are random start-up draws: a search of at most 10 trials,
# as `search_trials` in the parameters cell gives the committed report, is a seeded random screen
# around Table 1; trials as Dask jobs, one seed each; the study resumes after an interruption). The
# first trial is Table 1 itself. The dashed lines are the INN ensembles of notebook 05 (their
# inverse is exact; the band spans their seeds); the star is the Table 1 QINN ensemble, seed by seed.

# %%
search_base, search_name, n_trials = plans.notebook_search(cfg)  # Table 1 at search_epochs, profile-capped
study = search.run_search(search_base, n_trials=n_trials, name=search_name, sampler_seed=cfg.seed)
trials = search.trial_records(study)
front = search.front_trials(trials)
fig = plots.plot_front(trials, references={k: v for k, v in references.items() if k.startswith("INN")},
                       baseline=by_label[ablations.BASELINE])
plots.save(fig, "06_pareto")
plt.show()
front_text = "\n".join(f"trial {t['number']:>3}: recon {100 * t['values']['recon_mean']:.2f} %, JS(M_ll) "
                       f"{t['values']['js/m_ll']:.4f}, {t['params_total']} parameters, mse {t['params']['mse_reduction']}, "
                       f"λ_inv {t['params']['lambda_inv']:.3g}, λ_MZ {t['params']['lambda_mz']:.3g}" for t in front)
print(f"{len(trials)} finished trials, {len(front)} on the Pareto front:\n{front_text}")

# %%
inn6k = m("INN 6k", "js/m_ll")
if inn6k is None:
    search_answer = f"The search ran {len(trials)} trials; without notebook 05's INN results it cannot be placed against the 6k INN."
else:
    matching = [t for t in trials if t["values"] is not None and t["values"]["js/m_ll"] <= inn6k["mean"]]
    if matching:
        best = min(matching, key=lambda t: t["values"]["recon_mean"])
        search_answer = (f"{len(matching)} of {len(trials)} search trials (one seed each) reach the 6k INN's JS(M_ll) "
                         f"{inn6k['mean']:.4f}; the best of them reconstructs with {100 * best['values']['recon_mean']:.2f} % "
                         f"(trial {best['number']}), a candidate to re-train with several seeds before calling it a match.")
    else:
        best = min((t for t in trials if t["values"] is not None), key=lambda t: t["values"]["js/m_ll"], default=None)
        search_answer = (f"None of {len(trials)} search trials at <= {search.MAX_PARAMS} parameters reaches the 6k INN's "
                         f"JS(M_ll) {inn6k['mean']:.4f}" + (f" (best {best['values']['js/m_ll']:.4f}, trial {best['number']})."
                                                            if best else "."))
print(search_answer)

# %% [markdown]
# ## What this means
# Built from the verdicts above: a statement holds when its test decides in the stated direction
# after Holm's correction over the notebook's statements, is contradicted when it decides the other
# way, and is otherwise still open, with the seeds per ensemble its power estimate asks for.

# %%
closing = gap.closing_paragraph(claims, [search_answer])
print(closing)

# %%
results_store.record("06_why_the_gap", {
    "seeds": train_seeds, "epochs": base.epochs, "fourier": fourier_text, "nll_table": nll_table, "folds": folds_text,
    "claims": gap.format_claims(claims), "tradeoff": tradeoff, "verdict_table": verdict_table, "readings": readings,
    "readings_note": readings_note, "search_trials": len(trials), "search_front": front_text,
    "search_answer": search_answer, "closing": closing, "reference_note": ref_note,
    "verdicts": claims, "screen_verdicts": screen,
})
records_lib.write_results(paths.output_dir() / "models_06.json", records + upload_records)
