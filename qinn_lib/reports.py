"""Run the notebooks as reports: ``python -m qinn_lib.reports [--profile quick|paper]``.

Every notebook ``notebooks/NN_name.ipynb`` (paired with ``NN_name.py`` by jupytext) has one cell
tagged ``parameters`` whose names are exactly the fields of its run-configuration dataclass
(:data:`NOTEBOOK_CONFIGS`). This runner

1. validates every requested parameter *before running anything*: papermill only warns about an
   unknown name, so a typo (``-p epocs 5``) would otherwise run the paper defaults for hours;
2. runs the notebooks in order through papermill into executed reports (quick profile:
   ``build/reports/quick/``; paper profile: the committed ``notebooks/`` themselves). The profile
   is not a notebook parameter: the runner gives its kernels ``QINN_PROFILE`` and points
   ``QINN_OUTPUT_DIR`` at ``figures/`` (paper) or ``figures/quick/`` (see
   :func:`qinn_lib.profiles.runner_environment`); this is the only path that writes there;
3. strips saved widget state from the executed notebooks and fails loudly, naming the notebook and
   the cell, if any cell raises.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from . import paths
from .atomic import atomic_write_text, check_writable, create_sibling_temp
from .config import ConfigError, DataConfig, QINNRunConfig, RunConfig
from .errors import QinnError, add_debug_option, run_cli
from .profiles import INJECTED_PROFILE, RUNNER_OWNED, check_profile, effective_config, environment, runner_environment
from .results import (  # noqa: F401  (record, results_path: the notebooks' entry points)
    RESULTS_FILE,
    ResultsError,
    check_recordable,
    data_fingerprints,
    load_results,
    locked,
    record,
    results_lock,
    results_path,
)

#: Notebook stem -> the dataclass whose fields are its papermill parameters.
NOTEBOOK_CONFIGS: dict[str, type[RunConfig]] = {
    "01_data_exploration": DataConfig,
}

KERNEL_NAME = "python3"
# A quick-profile cell that runs longer than this is stuck, not slow (the slowest quick cell takes
# about a minute): fail with the notebook's name instead of letting CI run into its 90-minute
# limit. The paper profile has no limit, since one cell may train for hours.
QUICK_CELL_TIMEOUT = 1200


class ReportError(QinnError, RuntimeError):
    """A notebook failed or was asked for something it cannot do; the message names it."""


def _register_optional_configs() -> None:
    # Notebooks added by later work register their config here; importing lazily keeps this
    # module usable while a config class does not exist yet.
    from . import config as cfgmod
    for stem, name in (("02_circuit_and_inverse", "CircuitDemoConfig"),
                       ("03_isp_training", "QINNRunConfig"),
                       ("04_fidelity_vs_mse", "FidelityVsMSEConfig"),
                       ("05_qinn_vs_inn", "ComparisonConfig"),
                       ("06_why_the_gap", "DiagnosisConfig"),
                       ("07_hardware_realism", "HardwareRealismConfig")):
        cls = getattr(cfgmod, name, None)
        if cls is not None:
            NOTEBOOK_CONFIGS.setdefault(stem, cls)


_register_optional_configs()


def discover_notebooks() -> list[Path]:
    """The ordered source notebooks ``notebooks/NN_*.ipynb`` (not a kept ``NN_*.failed.ipynb``)."""
    found = sorted(p for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb") if "." not in p.stem)
    return found


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """Names and default values of the notebook's ``parameters`` cell (via papermill)."""
    import papermill

    info = papermill.inspect_notebook(str(notebook))
    if not info:
        raise ReportError(f"{notebook}: no cell tagged 'parameters'")
    return {name: spec["default"] for name, spec in info.items()}


def config_class(notebook: Path) -> type[RunConfig]:
    try:
        return NOTEBOOK_CONFIGS[notebook.stem]
    except KeyError:
        raise ReportError(
            f"{notebook}: no run configuration registered for this notebook in "
            f"qinn_lib.reports.NOTEBOOK_CONFIGS"
        ) from None


def check_parameters(notebook: Path, overrides: dict[str, Any], profile: str) -> dict[str, Any]:
    """Validate ``overrides`` against the notebook's parameters and its config dataclass.

    Returns the full parameter set papermill will inject. Raises :class:`ConfigError` naming the
    notebook and the parameter for unknown names or out-of-range values."""
    cls = config_class(notebook)
    declared = declared_parameters(notebook)
    fields = set(cls.field_names()) - set(RUNNER_OWNED)
    if set(declared) != fields:
        missing = sorted(fields - set(declared))
        extra = sorted(set(declared) - fields)
        raise ConfigError(
            f"{notebook.name}: the parameters cell does not match {cls.__name__}"
            f" (missing: {missing}, not in the dataclass: {extra})"
        )
    if "profile" in overrides:
        raise ConfigError(
            f"{notebook.name}: 'profile' is not a notebook parameter here; the runner's profile "
            f"({profile!r}) decides it: use --profile quick|paper (run(profile=...))"
        )
    owned = [name for name in overrides if name in RUNNER_OWNED]
    if owned:
        raise ConfigError(f"{notebook.name}: {owned} is chosen by the runner (--profile), not a notebook parameter")
    cls.check_names(overrides, where=notebook.name)
    params = dict(overrides)
    values = {"profile": profile}
    for name, default in declared.items():
        values[name] = params[name] if name in params else _literal(default)
    try:
        effective_config(cls(**values))  # as the notebook will run it: profile caps applied
    except ConfigError as err:
        raise ConfigError(f"{notebook.name}: {err}") from None
    return params


def _literal(text: str) -> Any:
    """papermill reports defaults as source text; evaluate plain literals only."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ReportError(f"parameter default {text!r} is not a plain literal") from None


def strip_widget_state(path: Path) -> None:
    """Drop saved ipywidgets state (large, machine-specific and useless without a kernel) and the
    empty ``tags`` lists papermill adds to every cell (jupytext drops them, so a committed report
    holding them would be rewritten by the first ``jupytext --sync`` in a fresh clone)."""
    nb = json.loads(path.read_text())
    changed = nb.get("metadata", {}).pop("widgets", None) is not None
    for cell in nb.get("cells", []):
        if cell.get("metadata", {}).get("tags", None) == []:
            del cell["metadata"]["tags"]
            changed = True
    if changed:
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _drop_redundant_injection(path: Path, source: Path) -> None:
    """In the committed paper reports, drop papermill's injected-parameters cell when it only
    repeats the parameters cell's own defaults, so the notebook and its .py twin stay identical.
    A run with other parameters keeps the cell: the report must say what it was run with."""
    nb = json.loads(path.read_text())
    declared = {k: _literal(v) for k, v in declared_parameters(source).items()}
    keep = []
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            import ast

            values = {}
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    values[node.targets[0].id] = ast.literal_eval(node.value)
            if all(declared.get(k) == v for k, v in values.items()):
                continue
        keep.append(cell)
    if len(keep) != len(nb["cells"]):
        nb["cells"] = keep
        atomic_write_text(path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _planned_config(notebook: Path, params: dict[str, Any], profile: str) -> RunConfig:
    """The run configuration a notebook will build from ``params`` (its declared defaults with
    ``params`` on top), as checked by :func:`check_parameters`."""
    values = {name: params[name] if name in params else _literal(default)
              for name, default in declared_parameters(notebook).items()}
    values["profile"] = profile
    return config_class(notebook)(**values)


def pretrain_runs(plan: list[tuple[Path, dict[str, Any]]], profile: str, *, models: str = "shipped",
                  log=print) -> None:
    """Train every run that the planned notebooks will ask for, in ONE Dask batch (longest first,
    both cores busy until the last run; :mod:`qinn_lib.cluster`), before any notebook executes.
    The notebooks then reload the finished checkpoints. Without this, each notebook would train
    its own runs and leave a core idle at the end of every ensemble."""
    from . import cluster, runs

    configs = []
    for nb, params in plan:
        for run_cfgs in runs.planned_runs(_planned_config(nb, params, profile)).values():
            configs.extend(run_cfgs)
    if not configs:
        return
    start = time.perf_counter()
    try:
        with environment({"QINN_MODELS": models}):  # shipped models count as trained, as in the kernels
            cluster.train_runs(configs, log=lambda msg: log(f"[qinn] {msg}"))
    finally:
        # The notebooks run in kernels of their own: the runner's idle workers would only hold
        # memory (and log heartbeat errors at exit) until the last notebook finishes.
        cluster.close_default_client()
    log(f"[qinn] every run of the planned notebooks is trained ({time.perf_counter() - start:.1f} s)")


class _quiet_about:
    """Drop papermill's "Passed unknown parameter: NAME" warning for the runner's own variable."""

    def __init__(self, name: str):
        import logging

        self.logger, self.message = logging.getLogger("papermill"), f"Passed unknown parameter: {name}"

    def filter(self, record) -> bool:
        return record.getMessage() != self.message

    def __enter__(self):
        self.logger.addFilter(self)

    def __exit__(self, *exc):
        self.logger.removeFilter(self)


def _matches(key: str, stem: str) -> bool:
    return key == ALL_NOTEBOOKS or stem.startswith(key)


#: ``-p all NAME VALUE`` sets a parameter in every selected notebook (e.g. ``lhe_file``).
ALL_NOTEBOOKS = "all"


def run(profile: str = "quick", only: list[str] | None = None,
        parameters: dict[str, dict[str, Any]] | None = None, *, progress: bool = True,
        log=print, models: str = "shipped", pretrain: bool = True) -> list[Path]:
    """Execute the notebooks in order. ``only`` selects notebooks by number or stem prefix
    (``["01", "03"]``); ``parameters`` maps a notebook stem or number (or "all") to overrides;
    ``models="train"`` makes the kernels ignore shipped models (``QINN_MODELS``).
    ``pretrain``: first train every run the notebooks need, in one Dask batch (:func:`pretrain_runs`).
    Returns the executed report paths."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    check_profile(profile)
    notebooks = discover_notebooks()
    if not notebooks:
        raise ReportError(f"no notebooks found in {paths.notebooks_dir()}")
    if only:
        chosen = [nb for nb in notebooks if any(nb.stem.startswith(sel) for sel in only)]
        unknown = [sel for sel in only if not any(nb.stem.startswith(sel) for nb in notebooks)]
        if unknown:
            raise ReportError(f"no notebook matches {unknown}; have {[nb.stem for nb in notebooks]}")
        notebooks = chosen
    parameters = parameters or {}
    for key in parameters:
        if not any(_matches(key, nb.stem) for nb in notebooks):
            raise ReportError(f"parameters given for {key!r}, which is not among {[nb.stem for nb in notebooks]}")
    # Validate everything up front: a typo in the last notebook must not cost an hour of the first.
    plan = []
    for nb in notebooks:
        overrides: dict[str, Any] = {}
        for key, values in parameters.items():
            if _matches(key, nb.stem):
                overrides.update(values)
        plan.append((nb, check_parameters(nb, overrides, profile)))

    # Everything the notebooks write must be writable before the first one computes anything.
    out_dir = paths.reports_dir(profile)
    check_writable(out_dir, "reports folder")
    check_recordable(profile)  # the figures folder is writable and its results file readable
    check_writable(paths.runs_dir(), "runs folder", "set QINN_RUNS_DIR to a writable folder")
    check_writable(paths.data_dir(), "event cache folder", "set QINN_DATA_DIR to a writable folder")
    if pretrain:
        pretrain_runs(plan, profile, models=models, log=log)
    written = []
    for nb, params in plan:
        out = out_dir / nb.name
        log(f"[qinn] {profile}: running {nb.name} with {params}")
        start = time.perf_counter()
        # Execute into a temporary file and move it into place: in the paper profile the output
        # is the source notebook itself, which must never be left half-written. (The temporary
        # has the mode of the notebook it replaces: see qinn_lib.atomic.)
        fd, tmp = create_sibling_temp(out, suffix=".ipynb")
        os.close(fd)
        failed = out_dir / f"{nb.stem}.failed.ipynb"
        # A quick report records its profile (not a parameter: papermill's warning about it is
        # dropped), so that nbval re-executes it as it was made; the published paper reports do not.
        injected = params if profile == "paper" else {**params, INJECTED_PROFILE: profile}
        try:
            with environment(runner_environment(profile, models=models)), _quiet_about(INJECTED_PROFILE):
                papermill.execute_notebook(
                    str(nb), str(tmp), parameters=injected, kernel_name=KERNEL_NAME,
                    cwd=str(paths.notebooks_dir()), progress_bar=progress, log_output=False,
                    execution_timeout=QUICK_CELL_TIMEOUT if profile == "quick" else None,
                )
        except BaseException as err:
            # Whatever stopped it (a failing cell, a stuck cell, a dead kernel, Ctrl-C), papermill
            # has saved the cells executed so far: keep them, never over the report itself.
            kept = _keep_partial(tmp, failed)
            where = f"the partly executed notebook is {failed}" if kept else "no cell had run"
            if isinstance(err, CellTimeoutError):
                what = f": a cell ran longer than {QUICK_CELL_TIMEOUT} s in the {profile} profile and was stopped"
            elif isinstance(err, papermill.PapermillExecutionError):
                what = f" failed in cell {err.exec_count} ({err.ename}: {err.evalue})"
            elif isinstance(err, DeadKernelError):
                what = f": execution stopped ({type(err).__name__}: {err}; was the kernel killed, e.g. out of memory?)"
            elif isinstance(err, Exception):
                what = f": execution stopped ({type(err).__name__}: {err})"
            else:  # KeyboardInterrupt, SystemExit: say what was kept, then let it through
                log(f"[qinn] {nb.name} interrupted; {where}")
                raise
            raise ReportError(f"{nb.name}{what}; {where}") from None
        strip_widget_state(Path(tmp))
        if profile == "paper":
            _drop_redundant_injection(Path(tmp), nb)
        os.replace(tmp, out)
        twin = nb.with_suffix(".py")
        if out.parent == nb.parent and twin.is_file():
            # Keep the jupytext pair consistent: the .py (the source of truth for inputs) must not
            # look older than the executed notebook written next to it.
            os.utime(twin)
        (out_dir / f"{nb.stem}.failed.ipynb").unlink(missing_ok=True)
        log(f"[qinn] {nb.name} done in {time.perf_counter() - start:.1f} s -> {out}")
        written.append(out)
    return written


def _keep_partial(tmp: Path, failed: Path) -> bool:
    """Move papermill's partly written output ``tmp`` to ``failed``; drop it if nothing was written."""
    try:
        if tmp.stat().st_size == 0:
            tmp.unlink()
            return False
        os.replace(tmp, failed)
        return True
    except FileNotFoundError:
        return False


# -- the README's results section (the results file itself: qinn_lib.results) -----------------------
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_results(results: dict[str, Any]) -> str:
    """Markdown for the README from a results file: every number comes from the code."""
    lines = []
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
            "",
        ]
    fid = results.get("04_fidelity_vs_mse")
    if fid:
        lines += [f"**Fidelity vs MSE invertibility loss** (notebook 04, seeds {fid['seeds']}; mean ± std over seeds):",
                  "", fid["table"], "", f"Sec. 4.1's statements (Fig. 5) tested against the seed spread: {fid['verdict']}.", ""]
    cmp_ = results.get("05_qinn_vs_inn")
    if cmp_:
        lines += [f"**QINN vs classical spline INNs** (notebook 05, seeds {cmp_['seeds']}; mean ± std over seeds; "
                  "NLL in nats/event in physical units, AUC of a classifier two-sample test, JS base 2):",
                  "", cmp_["table"], "", "```", cmp_["conclusion"], "```", ""]
        if cmp_.get("claims"):  # records written before the claims cell existed have none
            lines += ["Sec. 4.2's statements (Fig. 7) tested against the seed spread:", "", "```", cmp_["claims"], "```", ""]
    why = results.get("06_why_the_gap")
    if why:
        lines += [f"**Why our QINN misses the paper** (notebook 06, seeds {why['seeds']}, {why['epochs']} epochs; "
                  "each statement is one comparison of seed means against the seed spread):",
                  "", "```", why["claims"], "```", "", why["search_answer"], "", why["closing"], ""]
    hw = results.get("07_hardware_realism")
    if hw:
        lines += [f"**The QINN on an emulated quantum computer** (notebook 07, evaluation seeds {hw['seeds']}; "
                  "mean ± std over seeds; NLL with the Jacobian measured by parameter shift):", "",
                  hw["statement"], "", hw["shots_table"], "", hw["noise_table"], "",
                  "Circuits and what the paper's tasks would cost on a device:", "", hw["resources_table"], "",
                  hw["cost_table"], ""]
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
    proj = results.get("bench_projection")
    if proj:
        lines += [
            f"**Projected paper profile** (same command): the {proj['runs']} training runs of notebooks 03–05 as "
            f"{proj['jobs']} Dask jobs on {proj['n_workers']} single-threaded workers, from the compiled ms/step above "
            f"(training steps only): {proj['core_hours']:.2f} core-hours, **{proj['wall_minutes']:.0f} min** of wall time.",
            "",
        ]
    if not lines:
        return "No results recorded yet: run `python -m qinn_lib.reports --profile paper`."
    return "\n".join(lines).rstrip()


def update_readme(profile: str = "paper") -> Path:
    """Replace the README's results block with :func:`render_results` of the profile's results.

    Refuses (the README left untouched) if the results file is missing, a folder, empty, invalid
    (:class:`~qinn_lib.results.ResultsError` names the section and key), or mixes results of
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
        note = (f"<!-- generated by `.venv/bin/python -m qinn_lib.reports --update-readme` from "
                f"{source.relative_to(paths.repo_root())}; do not edit by hand -->")
        atomic_write_text(readme, f"{head}{README_START}\n{note}\n\n{body}\n{README_END}{tail}")
    return readme


def parse_parameters(items: list[list[str]], notebooks: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """``-p NOTEBOOK NAME VALUE`` triples -> typed overrides per notebook stem. Each VALUE is parsed
    by the type of NAME in that notebook's config dataclass (:meth:`RunConfig.parse_text`: no
    YAML, so ``1e-3`` is a float, ``010`` is 10 and ``1:30`` an error)."""
    notebooks = discover_notebooks() if notebooks is None else notebooks
    out: dict[str, dict[str, Any]] = {}
    for target, name, value in items:
        matched = [nb for nb in notebooks if _matches(target, nb.stem)]
        if not matched:
            raise ReportError(f"-p {target} {name} {value}: no notebook matches {target!r}; have "
                              f"{[nb.stem for nb in notebooks]}")
        for nb in matched:
            if name == "profile":
                raise ConfigError(f"-p {target} profile {value}: the profile is not a notebook parameter; "
                                  f"choose it with --profile {value}")
            out.setdefault(nb.stem, {})[name] = config_class(nb).parse_text(name, value, where=nb.name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.reports",
        description="Run the qinn notebooks in order through papermill as executed reports.")
    parser.add_argument("--profile", default="quick", choices=paths.PROFILES,
                        help="quick: capped counts, reports in build/reports/quick (default); "
                             "paper: Table 1 settings, executed notebooks written to notebooks/")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. 01 03)")
    parser.add_argument("-p", "--parameter", nargs=3, action="append", default=[],
                        metavar=("NOTEBOOK", "NAME", "VALUE"),
                        help="override a parameter, e.g. -p 03 epochs 50 (VALUE is parsed by the "
                             "parameter's type: integer, number, text, or comma-separated numbers); "
                             "NOTEBOOK 'all' sets it in every notebook, e.g. -p all lhe_file events.lhe.gz")
    parser.add_argument("--retrain", action="store_true",
                        help="ignore the shipped trained models (qinn_lib.shipped): reload or train runs under build/runs")
    parser.add_argument("--list", action="store_true", help="list notebooks and their parameters")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="train on this Dask scheduler (e.g. tcp://host:8786) instead of one local "
                             "worker per core; the notebooks inherit it (QINN_DASK_SCHEDULER)")
    parser.add_argument("--update-readme", action="store_true",
                        help="only regenerate the README's results section from figures/results.json (paper profile)")
    add_debug_option(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        if args.update_readme:  # the README shows the paper profile's results, whatever --profile says
            print(f"[qinn] updated {update_readme('paper')} from {results_path('paper')}")
            return 0
        if args.list:
            for nb in discover_notebooks():
                print(f"{nb.stem}  [{config_class(nb).__name__}]")
                for name, default in declared_parameters(nb).items():
                    print(f"    {name} = {default}")
            return 0
        if args.scheduler:
            from . import cluster

            cluster.get_client(args.scheduler)  # fails within seconds, naming the address, before any work
            os.environ[cluster.SCHEDULER_ENV] = args.scheduler  # inherited by the notebook kernels
        start = time.perf_counter()
        written = run(args.profile, args.only, parse_parameters(args.parameter),
                      progress=not args.no_progress, models="train" if args.retrain else "shipped")
        if args.profile == "paper":
            update_readme("paper")
        print(f"[qinn] {len(written)} notebook(s) executed in {time.perf_counter() - start:.1f} s "
              f"(profile {args.profile}); figures in {paths.figures_dir(args.profile)}")
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug,
                   interrupted="the notebooks finished before are kept and the one running was kept as "
                               "NN_name.failed.ipynb (see above); no finished report was overwritten")


if __name__ == "__main__":
    raise SystemExit(main())
