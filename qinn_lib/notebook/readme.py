"""The README's results section, regenerated from the results store: every number comes from the code.

:func:`render_results` turns the sections of ``figures/results.json``
(:mod:`qinn_lib.evaluation.results`: the notebooks' and the benchmark's measurements) into
markdown. :func:`update_readme` replaces the block between the README's ``results:start`` /
``results:end`` markers with it (``python -m qinn_lib.reports --update-readme``), and refuses,
leaving the README untouched, when the results are missing, invalid or mix results of different
event samples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qinn_lib import paths
from qinn_lib.atomic import atomic_write_text
from qinn_lib.evaluation.results import data_fingerprints, load_results, locked, results_lock, results_path
from qinn_lib.evaluation.statistics import format_verdict_table, verdict_tally
from qinn_lib.notebook import durations
from qinn_lib.notebook.parameters import ReportError

# -- the README's results section (the results file itself: qinn_lib.evaluation.results) -----------------------
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
#: A NaN or infinity as Python formats it, as a word of its own (issue 24: never in the README).
_NON_FINITE = re.compile(r"(?<![\w/.])[-+]?(nan|inf|infinity)(?![\w/])", re.IGNORECASE)


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _tested(section: dict[str, Any]) -> str:
    """How a section's statements were tested: by the tests of its recorded verdicts (family,
    hypotheses, level), or, for a section recorded before verdicts existed, the old spread rule."""
    verdicts = section.get("verdicts")
    if not verdicts:
        return "tested against the seed spread (recorded before the statistical tests; re-run the notebook)"
    v = verdicts[0]
    return (f"tested over the seeds (Welch's t on each metric's declared scale, or the paired t for two quantities "
            f"of the same runs, an exact permutation / signed-rank test as the check, Holm over the notebook's {v['family_size']} hypotheses at family-wise α = {v.get('alpha', 0.05):g}; "
            "'similar' only by two one-sided tests against a stated margin)")


def _verdict_table(section: dict[str, Any]) -> list[str]:
    verdicts = section.get("verdicts") or []
    return ["", format_verdict_table(verdicts), ""] if verdicts else []


def _claim_words(verdicts: list[dict[str, Any]]) -> str:
    return "; ".join(f"{v.get('words') or v['metric']}: {v['word']}" for v in verdicts if v.get("verdict") is not None)


def in_brief(results: dict[str, Any], *, paper_deviation: float = 0.021) -> list[str]:
    """The README's summary of the findings, rendered from the recorded numbers and verdicts (so
    the prose above the tables cannot say more than the tests decided): notebook 03's deviation
    against the paper's < 2.1 %, and for notebooks 04-06 the tally of their claims' verdicts with
    each claim's word. Sections recorded before the verdicts existed are left out."""
    items = []
    qinn = results.get("03_isp_training")
    if qinn:
        side = "above" if qinn["recon_mean"] > paper_deviation else "below"
        items.append(f"notebook 03's QINN (seed {qinn['seed']}) reconstructs with a mean deviation of "
                     f"{100 * qinn['recon_mean']:.2f} %, {side} the paper's < {100 * paper_deviation:.1f} %")
    for section, what in (("04_fidelity_vs_mse", "Sec. 4.1's statements on the fidelity loss (notebook 04)"),
                          ("05_qinn_vs_inn", "Sec. 4.2's statements on the QINN against classical INNs (notebook 05)"),
                          ("06_why_the_gap", "notebook 06's diagnosis of the gap")):
        verdicts = (results.get(section) or {}).get("verdicts")
        if verdicts:
            items.append(f"{what}: {verdict_tally(verdicts)} ({_claim_words(verdicts)})")
    if not items:
        return []
    return ["**In brief** (rendered from the results below; a statement is *reproduced* when its test decides in "
            "its direction after Holm's correction, *contradicted* when it decides the other way, otherwise "
            "*undecided*):", "", *[f"- {item}" for item in items], ""]


def render_results(results: dict[str, Any]) -> str:
    """Markdown for the README from a results file: every number comes from the code."""
    lines = in_brief(results)
    data = results.get("01_data_exploration")
    if data:
        lines += [
            "**Events** (notebook 01, Pythia 8 LO, seed {seed}):".format(**data),
            "",
            "| quantity | value |",
            "| --- | --- |",
            f"| events after cuts (train / val / test) | {_fmt(data['n_events'])} ({_fmt(data['n_train'])} / {_fmt(data['n_val'])} / {_fmt(data['n_test'])}) |",
            f"| generated, cut efficiency | {_fmt(data['n_generated'])}, {data['cut_efficiency']:.4f} |",
            f"| σ(pp → Zj → ℓℓj), LO, before / after cuts | {data['sigma_pb']:.1f} ± {data['sigma_err_pb']:.1f} pb / {data['sigma_fiducial_pb']:.1f} pb |",
            f"| Breit–Wigner fit of M_ℓℓ: mass | {data['fit_mass']:.3f} ± {data['fit_mass_err']:.3f} GeV (PDG {data['pdg_mass']:.4f}) |",
            f"| Breit–Wigner fit of M_ℓℓ: width | {data['fit_width']:.3f} ± {data['fit_width_err']:.3f} GeV (PDG {data['pdg_width']:.4f}) |",
            f"| generation time | {data['generation_seconds']:.1f} s |",
            "",
        ]
    qinn = results.get("03_isp_training")
    if qinn:
        lines += [
            "**QINN training** (notebook 03, Table 1 settings, MSE invertibility loss, seed {seed}):".format(**qinn),
            "",
            "| quantity | value |",
            "| --- | --- |",
            f"| parameters (quantum + classical) | {qinn['params_quantum']} + {qinn['params_classical']} = {qinn['params_total']} (Table 1: ~300 + ~1.7k) |",
            f"| epochs × steps per epoch, training time | {qinn['epochs']} × {qinn['steps_per_epoch']}, {qinn['train_seconds'] / 60:.1f} min ({qinn['device']}, {qinn['threads']} thread) |",
            f"| final validation loss / NLL | {qinn['val_loss']:.3f} / {qinn['val_nll']:.3f} |",
            f"| test NLL in physical units (GeV, rad) | {qinn['test_nll']:.3f} ± {qinn['test_nll_sem']:.3f} nats/event |",
            f"| reconstruction deviation ‖x̃ − x‖/‖x‖ on {_fmt(qinn['n_test'])} test events | mean {100 * qinn['recon_mean']:.2f} %, median {100 * qinn['recon_median']:.2f} % (paper: < 2.1 %) |",
        ]
        if "test_nll_normalised" in qinn:
            lines.append(f"| normalised test NLL (NLL + ln Z over the box; ln Z = {qinn['log_z']:.3f} ± {qinn['log_z_err']:.3f}) | "
                         f"{qinn['test_nll_normalised']:.3f} ± {qinn['test_nll_normalised_err']:.3f} nats/event |")
        if "fpd" in qinn:
            lines += [f"| FPD ×10³ / KPD ×10³ of the five features | {1e3 * qinn['fpd']:.2f} ± {1e3 * qinn['fpd_err']:.2f} / "
                      f"{1e3 * qinn['kpd']:.3f} ± {1e3 * qinn['kpd_err']:.3f} |",
                      f"| boosted-tree classifier AUC (raw features / with M_ll, ΔR) | {qinn['auc_bdt']:.3f} ± {qinn['auc_bdt_err']:.3f} / "
                      f"{qinn['auc_bdt_derived']:.3f} ± {qinn['auc_bdt_derived_err']:.3f} |"]
        lines.append("")
    fid = results.get("04_fidelity_vs_mse")
    if fid:
        lines += [f"**Fidelity vs MSE invertibility loss** (notebook 04, seeds {fid['seeds']}; mean ± std over seeds):",
                  "", fid["table"], "", f"Sec. 4.1's statements (Fig. 5) {_tested(fid)}: {fid['verdict']}.",
                  *_verdict_table(fid), ""]
    cmp_ = results.get("05_qinn_vs_inn")
    if cmp_:
        lines += [f"**QINN vs classical spline INNs** (notebook 05, seeds {cmp_['seeds']}; mean ± std over seeds; "
                  "NLL in nats/event in physical units, AUC of a classifier two-sample test, JS base 2):",
                  "", cmp_["table"], "", "```", cmp_["conclusion"], "```", ""]
        if cmp_.get("verdicts"):
            lines += [f"Every comparison and Sec. 4.2's statements (Fig. 7), {_tested(cmp_)}:", *_verdict_table(cmp_)]
        elif cmp_.get("claims"):  # records written before the claims cell existed have none
            lines += [f"Sec. 4.2's statements (Fig. 7) {_tested(cmp_)}:", "", "```", cmp_["claims"], "```", ""]
    why = results.get("06_why_the_gap")
    if why:
        lines += [f"**Why our QINN misses the paper** (notebook 06, seeds {why['seeds']}, {why['epochs']} epochs; "
                  f"each statement {_tested(why)}):", ""]
        lines += _verdict_table(why)[1:] if why.get("verdicts") else ["```", why["claims"], "```", ""]
        lines += [why["search_answer"], "", why["closing"], ""]
    hw = results.get("07_hardware_realism")
    if hw:
        lines += [f"**The QINN on an emulated quantum computer** (notebook 07, evaluation seeds {hw['seeds']}; "
                  "mean ± std over seeds; NLL with the Jacobian measured by parameter shift):", "",
                  hw["statement"], "", hw["shots_table"], "", hw["noise_table"], ""]
        if hw.get("field_statement"):  # records written before the field's measures were added have none
            lines += ["The same devices by the field's measures (FPD and KPD of the five features, boosted-tree "
                      "classifier AUC on the raw features and with M_ll, ΔR added; seed mean ± std, in brackets the "
                      "mean of each number's own error):", "", hw["field_statement"], "", hw["field_shots_table"], "",
                      hw["field_noise_table"], ""]
        lines += ["Circuits and what the paper's tasks would cost on a device:", "", hw["resources_table"], "",
                  hw["cost_table"], ""]
    dev = results.get("07_hardware_device")
    if dev:
        lines += [f"**On a real device's noise** (notebook 07; calibrated IBM device models {', '.join(map(str, dev['backends']))}, "
                  f"routed circuits, Qiskit Aer density matrices; {dev['n_generate']:,} generated and {dev['n_test']:,} "
                  f"reconstructed events per device, {dev['shots']:,} shots; ± one standard error over events):", "",
                  dev["statement"], "", dev["results_table"], ""]
        if dev.get("field_table"):
            lines += ["By the field's measures (± their own errors; one sample per device):", "", dev["field_statement"],
                      "", dev["field_table"], ""]
        lines += [dev["resources_table"], ""]
    bench = results.get("bench")
    if bench:
        lines += [
            "**Speed** (`.venv/bin/python -m qinn_lib.bench --record`; one full QINN training step, batch {batch_size}, "
            "{threads} thread, {machine}; median of the timed steps, min in brackets):".format(**bench),
            "",
            "| path | ms / step | paper profile (58k steps) |",
            "| --- | --- | --- |",
            f"| fast torch simulation, eager | {bench['fast_ms']:.1f} (min {bench['fast_ms_min']:.1f}) | {bench['paper_fast_minutes']:.1f} min |",
        ]
        if "compiled_ms" in bench:
            lines.append(f"| fast torch simulation, compiled (`torch.compile`, {bench['compile_seconds']:.0f} s to compile) | "
                         f"{bench['compiled_ms']:.1f} (min {bench['compiled_ms_min']:.1f}) | {bench['paper_compiled_minutes']:.1f} min |")
        lines += [
            f"| PennyLane default.qubit (backprop) | {bench['reference_ms']:.0f} | {bench['paper_reference_hours']:.1f} h |",
            f"| speed-up over PennyLane | {bench['speedup']:.0f}× eager"
            + (f", {bench['compiled_reference_ratio']:.0f}× compiled" if "compiled_reference_ratio" in bench else "")
            + " | |",
            "",
        ]
    floor = results.get("bench_floor")
    if floor:
        lines += [
            f"**The QINN step against its floor** (same command; batch {floor['batch_size']}; min of the timed steps): "
            f"compiled step {floor['step_ms']:.2f} ms, floor {floor['floor_ms']:.2f} ms — the same arithmetic as one fused "
            f"function of one flat parameter tensor (`qinn_lib.experiments.bench_floor`); step / floor "
            f"**{floor['step_vs_floor']:.2f}** (target ≤ 2).",
            "",
        ]
    bench_inn = results.get("bench_inn")
    if bench_inn:
        lines += [
            f"**Classical INN training step** (same command; batch {bench_inn['batch_size']}; min of the timed steps; one seed alone vs "
            f"{bench_inn['members']} seeds in lockstep through `INNStack`, as seed ensembles are trained; "
            "hours for training steps only):",
            "",
            "| INN | parameters | path | alone, ms / step | lockstep, ms / step per seed | lockstep, nflows eager | 3 seeds × 200 epochs |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for size, row in sorted(bench_inn["sizes"].items(), key=lambda item: item[1]["params"]):
            ref = row.get("paths", {}).get("nflows", {}).get("lockstep_ms_per_seed")
            lines.append(f"| {size} | {row['params']:,} | {row.get('path', 'eager')} | {row['single_ms']:.1f} | "
                         f"{row['lockstep_ms_per_seed']:.1f} | " + (f"{ref:.1f}" if ref is not None else "–") + " | "
                         f"{row['paper_hours_3_seeds_single']:.2f} h alone, {row['paper_hours_3_seeds_lockstep']:.2f} h lockstep |")
        lines.append("")
    lock = results.get("bench_lockstep")
    if lock:
        lines += [
            f"**QINN seeds in lockstep** (same command; batch {lock['batch_size']} per seed; `QINNStack`, as seed "
            "ensembles are trained; min wall time and median CPU time per step, divided by the number of models):",
            "",
            "| path | k models | ms / step per model | CPU ms / step per model | per model vs k = 1 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in lock["rows"].values():
            lines.append(f"| {row['mode']} | {row['k']} | {row['per_model_ms_min']:.2f} | {row['per_model_cpu_ms']:.2f} | "
                         f"{row['per_model_vs_k1']:.2f}× |")
        lines.append("")
    scaling = results.get("bench_scaling")
    if scaling:
        lines += [
            f"**QINN step against qubit count** (`.venv/bin/python -m qinn_lib.bench --scaling`; {scaling['n_layers']} layers, batch "
            f"{scaling['batch_size']}, {scaling['threads']} thread; min CPU ms; step = forward, log det and backward of the "
            "NLL; lightning = `lightning.qubit` adjoint, forward and Jacobian only; the last column is the path "
            "`qinn_lib.models.qinn.path_by_width` picks for the forward map, Jacobian and NLL; training, which also "
            "needs the inverse, runs the dense unitary at every width):",
            "",
            "| qubits | dense step | gate-by-gate step | dense fwd+J | gate-by-gate fwd+J | lightning fwd+J | picked by width |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in sorted(scaling["rows"].values(), key=lambda r: int(r["n_qubits"])):  # JSON keys sort as text
            cells = [row.get(f"{path} {piece} cpu_ms") for path, piece in
                     (("dense", "step"), ("gate", "step"), ("dense", "fwd+J"), ("gate", "fwd+J"), ("lightning", "fwd+J"))]
            lines.append(f"| {row['n_qubits']} | " + " | ".join("–" if c is None else f"{c:.1f}" for c in cells)
                         + f" | {row['preferred']} |")
        lines.append("")
    lines += _render_peers(results.get("bench_peers"))
    scen = (results.get("bench_projection_scenarios") or {}).get("scenarios")
    if scen:
        lines += [
            "**Projected paper profile** (same command; training steps of notebooks 03–07 as Dask jobs on "
            "single-threaded workers, QINN and INN seeds in lockstep, from the step times above):",
            "",
            "| plan | runs | jobs | core-hours | wall time |",
            "| --- | --- | --- | --- | --- |",
        ]
        for label, p in scen.items():
            lines.append(f"| {label} | {p['runs']} | {p['jobs']} | {p['core_hours']:.2f} | {p['wall_minutes']:.0f} min on "
                         f"{p['n_workers']} workers |")
        lines.append("")
    proj = results.get("bench_projection")
    if proj and not scen:
        lines += [
            f"**Projected paper profile** (same command): the {proj['runs']} training runs of notebooks 03–05 as "
            f"{proj['jobs']} Dask jobs on {proj['n_workers']} single-threaded workers, from the compiled ms/step above "
            f"(training steps only): {proj['core_hours']:.2f} core-hours, **{proj['wall_minutes']:.0f} min** of wall time "
            "— a lower bound from the step times, not the measured duration of a paper-profile run (see Status).",
            "",
        ]
    lines += durations.render(results.get(durations.SECTION))
    if not lines:
        return "No results recorded yet: run `python -m qinn_lib.reports --profile paper`."
    return "\n".join(lines).rstrip()


_PEER_LABELS = {"compiled": "ours, compiled (`torch.compile`)", "eager": "ours, eager torch",
                "default.qubit": "PennyLane `default.qubit` (torch, backprop)",
                "jax": "PennyLane + JAX (`jit(vmap(jacfwd))`)"}


def _render_peers(peers: dict | None) -> list[str]:
    """The ``bench_peers`` section (``python -m qinn_lib.bench --peers``): one row a path, the ratios to the targets."""
    if not peers:
        return []
    lines = [
        f"**QINN NLL piece against its peers** (`.venv/bin/python -m qinn_lib.bench --peers`; {peers['n_qubits']} qubits, "
        f"{peers['n_layers']} layers, batch {peers['batch_size']}, {peers['threads']} thread, measured side by side "
        f"in one run at load average {peers['load_average']:.1f}; min wall ms, min CPU ms in brackets; fwd+logdet = "
        "z, dz/dx and log det; step = that and the NLL's gradient with respect to every parameter):",
        "",
        "| path | fwd+logdet, ms | step, ms | compile |",
        "| --- | --- | --- | --- |",
    ]
    by_path: dict[str, dict] = {}
    for row in peers["rows"].values():
        by_path.setdefault(row["path"], {})[row["piece"]] = row
    for path, cells in by_path.items():
        shown = [f"{c['ms_min']:.2f} ({c['cpu_ms_min']:.2f})" if c else "–"
                 for c in (cells.get("fwd+logdet"), cells.get("step"))]
        comp = [peers["compile_seconds"].get(f"{path} {piece}") for piece in ("fwd+logdet", "step")]
        comp_text = " / ".join(f"{c:.0f} s" for c in comp if isinstance(c, (int, float))) or "–"
        lines.append(f"| {_PEER_LABELS.get(path, path)} | {shown[0]} | {shown[1]} | {comp_text} |")
    lines.append("")
    for r in peers["ratios"].values():
        met = "met" if r["ratio"] >= r["target"] else "**not met**"
        lines.append(f"- {_PEER_LABELS.get(r['peer'], r['peer'])} / ours {r['ours']}, {r['piece']}: "
                     f"{r['ratio']:.1f}× ({r['ratio_cpu']:.1f}× in CPU time); target ≥ {r['target']:.0f}×: {met}")
    lines.append("")
    return lines


def update_readme(profile: str = "paper") -> Path:
    """Replace the README's results block with :func:`render_results` of the profile's results.

    Refuses (the README left untouched) if the results file is missing, a folder, empty, invalid
    (:class:`~qinn_lib.evaluation.results.ResultsError` names the section and key), or mixes results of
    different event samples."""
    readme = paths.repo_root() / "README.md"
    source = results_path(profile)
    if not source.is_file():
        what = "is a folder" if source.is_dir() else "does not exist"
        raise ReportError(f"{source} {what}, so there are no results to show; {readme.name} was left unchanged. "
                          f"Record them with `python -m qinn_lib.reports --profile {profile}`")
    with locked(results_lock(profile), f"updating {readme} from {source}"):
        results = load_results(profile)
        if not results:
            raise ReportError(f"{source} holds no results; {readme.name} was left unchanged. Record them with "
                              f"`python -m qinn_lib.reports --profile {profile}`")
        found = data_fingerprints(results, source.parent)
        if len(set(found.values())) > 1:
            listed = ", ".join(f"{where}: {fp}" for where, fp in found.items())
            raise ReportError(f"{source}: the README would mix results of different event samples ({listed}); "
                              f"{readme.name} was left unchanged. Re-run the odd ones with the same n_events and "
                              "data_seed as the others")
        try:
            text = readme.read_text(encoding="utf-8")
        except OSError as err:
            raise ReportError(f"cannot read {readme}: {err.strerror or err}") from None
        if README_START not in text or README_END not in text:
            raise ReportError(f"{readme}: missing the {README_START} / {README_END} markers")
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        body = render_results(results)
        bad = [line for line in body.splitlines() if _NON_FINITE.search(line)]
        if bad:
            raise ReportError(f"{source}: the README would show a value that is not a finite number in {bad[0][:160]!r}; "
                              f"{readme.name} was left unchanged. Re-run the notebook that recorded it")
        note = (f"<!-- generated by `.venv/bin/python -m qinn_lib.reports --update-readme` from "
                f"{source.relative_to(paths.repo_root())}; do not edit by hand -->")
        atomic_write_text(readme, f"{head}{README_START}\n{note}\n\n{body}\n{README_END}{tail}")
    return readme
