"""Which runs each notebook needs, whether they exist yet, and ``python -m qinn_lib.runs``.

- the plans, registered by configuration class in :data:`RUN_PLANS`: notebook 04
  (:func:`fidelity_vs_mse_configs`), 05 (:func:`comparison_configs`), 06 (:func:`diagnosis_configs`:
  the ablations of :func:`diagnosis_base`, Table 1's QINN, and the re-uploading flows of
  :func:`reuploading_configs`) and 07 (:func:`hardware_realism_configs`), every config
  profile-capped. Runs that notebooks share have equal configs (notebook 04's MSE runs are 05's
  QINN runs and 06's baseline), so they are trained once and reloaded;
- :func:`planned_runs` / :func:`notebook_runs` / :func:`missing_work`: so that
  ``python -m qinn_lib.reports`` can train every notebook's runs in one Dask batch before
  executing any, and a notebook run by hand can tell whether Run All would have to train
  (notebook 06's search included, :func:`notebook_search`);
- :func:`main`: ``python -m qinn_lib.runs MODEL [...]`` trains notebook 05's ensembles ahead of the
  report, or shows how far they have got (``--status``).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from qinn_lib import paths
from qinn_lib.atomic import check_writable
from qinn_lib.errors import add_debug_option, run_cli
from qinn_lib.experiments.ablations import ablation_configs
from qinn_lib.experiments.ensembles import seeds, train_ensembles
from qinn_lib.experiments.one_model import PreparedData, completed_epochs, data_key, prepare_data
from qinn_lib.experiments.search import default_name, finished_trials
from qinn_lib.models.inn.sizes import INN_SIZES
from qinn_lib.settings import check_environment
from qinn_lib.training.budget import budget, effective_config
from qinn_lib.training.config import (
    ComparisonConfig,
    DiagnosisConfig,
    FidelityVsMSEConfig,
    HardwareRealismConfig,
    INNRunConfig,
    QINNRunConfig,
    ReuploadingRunConfig,
    RunConfig,
)


def comparison_configs(cfg: ComparisonConfig) -> dict[str, list[RunConfig]]:
    """The run configurations of notebook 05, per model label ("QINN", "INN 2k", "INN 6k",
    "INN 16k"), each a list over the ensemble's seeds, already profile-capped. The QINN configs are
    notebook 04's MSE runs (same fields), so those are reloaded, not retrained."""
    train_seeds = seeds(cfg.seed, budget(cfg.profile, "n_seeds", cfg.n_seeds))
    common = dict(profile=cfg.profile, n_events=cfg.n_events, data_seed=cfg.data_seed, epochs=cfg.epochs,
                  lhe_file=cfg.lhe_file)
    out: dict[str, list[RunConfig]] = {"QINN": [effective_config(QINNRunConfig(seed=s, **common)) for s in train_seeds]}
    for size in INN_SIZES:
        out[f"INN {size}"] = [effective_config(INNRunConfig(size=size, seed=s, **common)) for s in train_seeds]
    return out


def fidelity_vs_mse_configs(cfg: FidelityVsMSEConfig) -> dict[str, list[RunConfig]]:
    """The run configurations of notebook 04, per label ("QINN (MSE)", "QINN (fidelity)"), each a
    list over the seeds, already profile-capped. The MSE runs are notebook 05's QINN runs."""
    train_seeds = seeds(cfg.seed, budget(cfg.profile, "n_seeds", cfg.n_seeds))
    common = dict(profile=cfg.profile, n_events=cfg.n_events, data_seed=cfg.data_seed, epochs=cfg.epochs,
                  lambda_mz=cfg.lambda_mz, lhe_file=cfg.lhe_file)
    return {f"QINN ({name})": [effective_config(QINNRunConfig(seed=s, invertibility=loss, **common)) for s in train_seeds]
            for name, loss in (("MSE", "mse"), ("fidelity", "fidelity"))}


def diagnosis_base(cfg: DiagnosisConfig, epochs: int | None = None) -> QINNRunConfig:
    """Table 1's QINN on notebook 06's events and first seed, profile-capped, trained for
    ``epochs`` (default ``cfg.epochs``): the baseline of the ablations, and at ``search_epochs``
    the base of the search (:func:`qinn_lib.experiments.plans.notebook_search`)."""
    return effective_config(QINNRunConfig(profile=cfg.profile, seed=cfg.seed, n_events=cfg.n_events,
                                          data_seed=cfg.data_seed, epochs=cfg.epochs if epochs is None else epochs,
                                          lhe_file=cfg.lhe_file))


def reuploading_configs(base: Any, uploads: Sequence[int], seeds: Sequence[int]) -> dict[int, list[Any]]:
    """``{uploads: [ReuploadingRunConfig per seed]}`` sharing ``base``'s data and optimiser fields
    (``base``: a QINNRunConfig or ReuploadingRunConfig, already profile-capped)."""
    shared = {k: getattr(base, k) for k in ReuploadingRunConfig.field_names()
              if k not in ("seed", "uploads") and hasattr(base, k)}
    return {u: [ReuploadingRunConfig(**shared, uploads=int(u), seed=int(s)) for s in seeds] for u in uploads}


def upload_label(uploads: int) -> str:
    """The ensemble label of the re-uploading flows with ``uploads`` uploads: "1 upload", "2 uploads"."""
    return f"{int(uploads)} upload{'s' if int(uploads) != 1 else ''}"


def diagnosis_configs(cfg: DiagnosisConfig) -> dict[str, list[RunConfig]]:
    """The run configurations of notebook 06, per label, each a list over the seeds, already
    profile-capped: the ablations of :func:`qinn_lib.experiments.ablations.ablation_configs` (the baseline
    first: Table 1's QINN, i.e. notebook 04/05's MSE runs, so those are reloaded), then the
    re-uploading flows with 1 .. ``max_uploads`` uploads (labels :func:`qinn_lib.experiments.plans.upload_label`).
    The search's trials are not planned here: Optuna chooses them as it goes (:mod:`qinn_lib.experiments.search`)."""
    train_seeds = seeds(cfg.seed, budget(cfg.profile, "n_seeds", cfg.n_seeds))
    base = diagnosis_base(cfg)
    out = ablation_configs(base, train_seeds, keep=cfg.ablation_priority)
    for uploads, configs in reuploading_configs(base, range(1, cfg.max_uploads + 1), train_seeds).items():
        out[upload_label(uploads)] = configs
    return out


def hardware_realism_configs(cfg: HardwareRealismConfig) -> dict[str, list[RunConfig]]:
    """The run of notebook 07, already profile-capped: notebook 03's QINN (Table 1 with ``cfg``'s
    seed, events and epochs), so the run trained or shipped for notebook 03 is reloaded."""
    return {"QINN": [effective_config(QINNRunConfig(profile=cfg.profile, seed=cfg.seed, n_events=cfg.n_events,
                                                    data_seed=cfg.data_seed, epochs=cfg.epochs,
                                                    lhe_file=cfg.lhe_file))]}


#: What each notebook configuration trains, ``{label: [run configs]}`` (see :func:`planned_runs`).
#: Notebooks that train models register their configuration class here.
RUN_PLANS: dict[type, Any] = {
    QINNRunConfig: lambda cfg: {"QINN": [effective_config(cfg)]},
    INNRunConfig: lambda cfg: {f"INN {cfg.size}": [effective_config(cfg)]},
    FidelityVsMSEConfig: fidelity_vs_mse_configs,
    ComparisonConfig: comparison_configs,
    DiagnosisConfig: diagnosis_configs,
    HardwareRealismConfig: hardware_realism_configs,
}


def planned_runs(cfg: RunConfig) -> dict[str, list[RunConfig]]:
    """The training runs a notebook with configuration ``cfg`` will ask for (``{}`` if none), so
    that ``python -m qinn_lib.reports`` can train the runs of every notebook in one Dask batch
    before executing any of them."""
    plan = RUN_PLANS.get(type(cfg))
    return plan(cfg) if plan is not None else {}


# -- which runs a notebook needs, and whether they exist -----------------------------------------------
def notebook_runs(cfg: RunConfig) -> list[RunConfig]:
    """Every model run a notebook with configuration ``cfg`` trains (profile-capped); [] for the
    notebooks that train none (01, 02): :func:`planned_runs` without the labels."""
    return [c for group in planned_runs(cfg).values() for c in group]


def missing_work(cfg: RunConfig, models: str = "shipped") -> list[str]:
    """What a notebook with configuration ``cfg`` would have to train beyond its model runs
    (:func:`notebook_runs`), described for a person; [] when nothing. Today: notebook 06's search,
    when fewer of its trials are finished (under build/search, or shipped) than it asks for."""
    if cfg.kind != "diagnosis":
        return []

    _, name, n_trials = notebook_search(cfg)
    done = finished_trials(name, models)
    return [] if done >= n_trials else [f"search ({done} of {n_trials} trials finished)"]


def notebook_search(cfg: Any) -> tuple[Any, str, int]:
    """Notebook 06's search for its :class:`~qinn_lib.training.config.DiagnosisConfig`: ``(base_cfg, name,
    n_trials)`` -- Table 1's QINN at ``search_epochs`` (profile-capped), the study name and the
    number of finished trials the profile asks for. One definition for the notebook and for the
    check whether Run All would have to train (:func:`qinn_lib.experiments.plans.missing_work`)."""
    base = diagnosis_base(cfg, cfg.search_epochs)
    return base, default_name(base, cfg.seed), int(budget(cfg.profile, "search_trials", cfg.search_trials))


def main(argv: list[str] | None = None) -> int:
    """``python -m qinn_lib.runs MODEL [...]``: train (or resume) notebook 05's ensembles ahead of
    the report, as Dask jobs on every core (or on the cluster named by QINN_DASK_SCHEDULER); the
    notebook then reloads the finished runs."""
    labels = ["QINN"] + [f"INN {size}" for size in INN_SIZES]
    names = {label.replace("INN ", "").lower(): label for label in labels}
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.runs",
        description="Train (or resume) notebook 05's ensembles ahead of the report, one model per process, so "
                    "that a machine with several cores trains several ensembles at once; the notebook then "
                    "reloads the finished runs. A model shipped with the package (qinn_lib.experiments.store) is not "
                    "trained again unless QINN_MODELS=train.")
    parser.add_argument("models", nargs="+", metavar="MODEL", help=f"any of {sorted(names)} (trained in this order)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a field of ComparisonConfig (notebook 05's parameters), e.g. -p n_seeds 3")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--status", action="store_true",
                        help="train nothing; print how many epochs each seed's checkpoint holds")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m.lower() not in names]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(names)}")

    def body() -> int:
        check_environment()  # every QINN_* variable, before any work
        # -p values are parsed by their field's type (no YAML), unknown names get "did you mean".
        cfg = ComparisonConfig.from_dict(ComparisonConfig.from_text(dict(args.parameter), where="-p"))
        configs = comparison_configs(cfg)
        if args.status:
            # Long trainings run for hours in the background; this reads their checkpoints (validated
            # against the configs and the data, like a resume would) without touching them.
            prepared: dict[tuple, PreparedData] = {}
            for model in args.models:
                label = names[model.lower()]
                for run_cfg in configs[label]:
                    key = data_key(run_cfg)
                    if key not in prepared:
                        prepared[key] = prepare_data(*key)
                    print(f"[{label}] seed {run_cfg.seed}: {completed_epochs(run_cfg, prepared[key])}/{run_cfg.epochs} epochs")
            return 0
        check_writable(paths.runs_dir(), "runs folder", "set QINN_RUNS_DIR to a writable folder")
        check_writable(paths.data_dir(), "event cache folder", "set QINN_DATA_DIR to a writable folder")
        # All requested models in one Dask batch: both cores stay busy until the last run.
        wanted = {names[m.lower()]: configs[names[m.lower()]] for m in args.models}
        for label, ens in train_ensembles(wanted, progress=not args.no_progress).items():
            print(f"[{label}] {len(ens.runs)} run(s) ready: " + ", ".join(str(r.run_dir) for r in ens.runs))
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug,
                   interrupted="every finished epoch is in its run's checkpoint: run the same command again to resume")
