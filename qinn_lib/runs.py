"""One call per model: load the events, scale them, build the model, train (or resume, or reload a
finished run), and sample from it. This is what the notebooks call, so they stay thin.

A run lives in ``paths.runs_dir() / <kind>-<config fingerprint>-<data fingerprint>``: re-running a
notebook with the same parameters reloads the finished checkpoint instead of training again, and
an interrupted run resumes where it stopped. Before any of that, a paper-profile run whose
configuration and data match a model shipped with the package loads that model instead
(:mod:`qinn_lib.shipped`; ``QINN_MODELS=train`` turns this off).
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import paths
from .atomic import check_writable
from .config import (INN_SIZES, ComparisonConfig, DiagnosisConfig, FidelityVsMSEConfig, HardwareRealismConfig,
                     INNRunConfig, QINNRunConfig, RunConfig)
from .data import EventSample, load_sample
from .errors import add_debug_option, run_cli
from .preprocessing import AngleScaler
from .profiles import budget, effective_config  # noqa: F401  (effective_config: the notebooks call runs.effective_config)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class PreparedData:
    sample: EventSample
    scaler: AngleScaler
    train: torch.Tensor  #: scaled to [0, pi]
    val: torch.Tensor
    test: torch.Tensor

    key: tuple = ()  #: (n_events, data_seed, dtype, device) it was prepared with

    @property
    def fingerprint(self) -> str:
        return self.sample.fingerprint


def prepare_data(n_events: int, data_seed: int, dtype: str = "float32", device: str = "cpu",
                 lhe_file: str = "", *, progress: bool = False) -> PreparedData:
    """Events (cached; Pythia, or the user's LHE file, see :func:`qinn_lib.data.load_sample`), the
    [0, pi] scaler fitted on the training split, and scaled tensors."""
    sample = load_sample(n_events, data_seed, lhe_file=lhe_file, progress=progress)
    scaler = AngleScaler.fit(sample.train)
    as_tensor = lambda a: torch.as_tensor(scaler.transform(a), dtype=DTYPES[dtype], device=device)  # noqa: E731
    return PreparedData(sample, scaler, as_tensor(sample.train), as_tensor(sample.val), as_tensor(sample.test),
                        key=(n_events, data_seed, dtype, device, lhe_file))


def run_dir_for(cfg: RunConfig, data_fingerprint: str) -> Path:
    return paths.runs_dir() / f"{cfg.kind}-{cfg.fingerprint()}-{data_fingerprint}"


def data_key(cfg: RunConfig) -> tuple:
    """The arguments of :func:`prepare_data` for ``cfg``: runs with equal keys share their data."""
    return (cfg.n_events, cfg.data_seed, cfg.dtype, cfg.device, cfg.lhe_file)


@dataclass
class TrainedModel:
    cfg: RunConfig
    model: torch.nn.Module
    data: PreparedData
    result: Any  #: qinn_lib.train.TrainResult
    run_dir: Path
    shipped: bool = False  #: loaded from a model shipped with the package (qinn_lib.shipped)

    @property
    def history(self) -> list[dict[str, float]]:
        return self.result.history

    @torch.no_grad()
    def generate(self, n: int, seed: int, *, batch_size: int = 8192) -> np.ndarray:
        """``n`` events in physical units: z ~ N(0, 1) -> model.inverse -> undo the scaling.
        Non-finite outputs (possible far out in the latent tails) are dropped with a warning that
        says how many."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        gen = torch.Generator().manual_seed(int(seed))
        p = next(self.model.parameters())
        out = []
        self.model.eval()
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = torch.randn((m, self.data.train.shape[1]), generator=gen, dtype=p.dtype).to(p.device)
            out.append(self.model.inverse(z).cpu().double().numpy())
        u = np.concatenate(out)
        finite = np.all(np.isfinite(u), axis=1)
        if not finite.all():
            warnings.warn(f"{int((~finite).sum())} of {n} generated events are non-finite and were dropped")
        return self.data.scaler.inverse(u[finite])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x -> z -> x~ (scaled space): how well the learned inverse undoes the forward pass."""
        self.model.eval()
        return self.model.inverse(self.model(x))


def _train(cfg: RunConfig, model: torch.nn.Module, objective: Any, data: PreparedData, *,
           progress: bool, resume: bool) -> TrainedModel:
    from .train import TrainResult, train

    shipped = _shipped_entry(cfg)
    if shipped is not None:
        from . import shipped as shipped_models

        ckpt = shipped_models.load_into(model, shipped, expected_cfg=cfg, expected_fingerprint=data.fingerprint)
        result = TrainResult(history=list(ckpt["history"]), checkpoint=shipped_models.file_path(shipped),
                             seconds=0.0, epochs_run=0, resumed_from=int(ckpt["epoch"]),
                             extra_state=ckpt["extra_state"])
        model.eval()
        return TrainedModel(cfg, model, data, result, result.checkpoint.parent, shipped=True)
    run_dir = run_dir_for(cfg, data.fingerprint)
    result = train(model, objective, data.train, data.val, cfg, run_dir=run_dir,
                   data_fingerprint=data.fingerprint, extra_state={"scaler": data.scaler.to_dict()},
                   progress=progress, resume=resume)
    model.eval()
    return TrainedModel(cfg, model, data, result, run_dir)


def train_qinn(cfg: QINNRunConfig, *, progress: bool = True, resume: bool = True,
               data: PreparedData | None = None) -> TrainedModel:
    """Train the QINN of ``cfg`` (already profile-capped: see :func:`effective_config`)."""
    from .losses import QINNObjective
    from .qinn import QINN

    torch.manual_seed(cfg.seed)
    data = data or prepare_data(*data_key(cfg))
    model = QINN.from_config(cfg).to(device=cfg.device)
    objective = QINNObjective(cfg, data.scaler)
    return _train(cfg, model, objective, data, progress=progress, resume=resume)


def train_inn(cfg: INNRunConfig, *, progress: bool = True, resume: bool = True,
              data: PreparedData | None = None) -> TrainedModel:
    """Train the classical spline INN of ``cfg`` (NLL + lambda_mz Breit–Wigner MMD on M_ll)."""
    from .inn import INN
    from .losses import INNObjective

    torch.manual_seed(cfg.seed)
    data = data or prepare_data(*data_key(cfg))
    model = INN.from_config(cfg).to(device=cfg.device, dtype=DTYPES[cfg.dtype])
    objective = INNObjective(cfg, data.scaler)
    return _train(cfg, model, objective, data, progress=progress, resume=resume)


def train_inn_lockstep(cfgs: list[INNRunConfig], *, progress: bool = True, resume: bool = True,
                       data: PreparedData | None = None) -> list[TrainedModel]:
    """Train INN configs that differ only in their seed together, as one
    :class:`~qinn_lib.inn.INNStack` (:func:`qinn_lib.train.train_lockstep`). Every member is an
    ordinary run with its own run directory, so :func:`train_inn` reloads it afterwards."""
    from .inn import INN, INNStack
    from .losses import INNObjective
    from .train import train_lockstep

    if not cfgs:
        raise ValueError("train_inn_lockstep: no configs")
    data = data or prepare_data(*data_key(cfgs[0]))
    models = [INN.from_config(cfg).to(device=cfg.device, dtype=DTYPES[cfg.dtype]) for cfg in cfgs]
    run_dirs = [run_dir_for(cfg, data.fingerprint) for cfg in cfgs]
    results = train_lockstep(INNStack(models), INNObjective(cfgs[0], data.scaler), data.train, data.val, list(cfgs),
                             run_dirs=run_dirs, data_fingerprint=data.fingerprint,
                             extra_state={"scaler": data.scaler.to_dict()}, progress=progress, resume=resume)
    out = []
    for cfg, model, result, run_dir in zip(cfgs, models, results, run_dirs):
        model.eval()
        out.append(TrainedModel(cfg, model, data, result, run_dir))
    return out


def completed_epochs(cfg: RunConfig, data: PreparedData) -> int:
    """Epochs already in ``cfg``'s checkpoint (0 if there is none); the checkpoint is validated
    against ``cfg`` and the data fingerprint (a mismatch raises CheckpointError)."""
    from .train import CHECKPOINT_NAME, load_checkpoint

    path = run_dir_for(cfg, data.fingerprint) / CHECKPOINT_NAME
    if not path.exists():
        return 0
    return int(load_checkpoint(path, expected_cfg=cfg, expected_fingerprint=data.fingerprint)["epoch"])


def seeds(first: int, n: int) -> list[int]:
    """The training seeds of an ensemble: ``first, first + 1, ...``."""
    if n < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n}")
    return [first + i for i in range(n)]


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
    the base of the search (:func:`qinn_lib.search.notebook_search`)."""
    return effective_config(QINNRunConfig(profile=cfg.profile, seed=cfg.seed, n_events=cfg.n_events,
                                          data_seed=cfg.data_seed, epochs=cfg.epochs if epochs is None else epochs,
                                          lhe_file=cfg.lhe_file))


def diagnosis_configs(cfg: DiagnosisConfig) -> dict[str, list[RunConfig]]:
    """The run configurations of notebook 06, per label, each a list over the seeds, already
    profile-capped: the ablations of :func:`qinn_lib.ablations.ablation_configs` (the baseline
    first: Table 1's QINN, i.e. notebook 04/05's MSE runs, so those are reloaded), then the
    re-uploading flows with 1 .. ``max_uploads`` uploads (labels :func:`qinn_lib.reuploading.upload_label`).
    The search's trials are not planned here: Optuna chooses them as it goes (:mod:`qinn_lib.search`)."""
    from .ablations import ablation_configs
    from .reuploading import reuploading_configs, upload_label

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


#: Offset between a run's training seed and the seed of the events it generates for evaluation,
#: so that evaluation samples never reuse the training run's latent draws.
EVAL_SEED_OFFSET = 10_000


@dataclass
class Ensemble:
    """One model trained with several seeds, evaluated on the test split."""

    label: str
    runs: list[TrainedModel]
    records: list[dict]  #: metrics.make_record per seed
    generated: list[dict]  #: observables.reconstruct of the evaluation sample, per seed


def train_ensemble(label: str, configs: list[RunConfig], *, progress: bool = True,
                   data: PreparedData | None = None, log=print, client: Any = None) -> Ensemble:
    """Train (or reload) one run per config, then evaluate each with :func:`metrics.evaluate_model`.
    The configs must differ only in their seed; QINN or INN is chosen by the config's kind.

    Unfinished runs train on the Dask cluster (:func:`qinn_lib.cluster.train_runs`: one job per
    run, INN seeds in lockstep), finished ones are reloaded from their checkpoints."""
    return train_ensembles({label: configs}, progress=progress, data=data, log=log, client=client)[label]


def train_ensembles(configs_by_label: dict[str, list[RunConfig]], *, progress: bool = True,
                    data: PreparedData | None = None, log=print, client: Any = None) -> dict[str, Ensemble]:
    """:func:`train_ensemble` for several models at once: every unfinished run of every model is
    submitted to the cluster in ONE batch (longest first), so both cores stay busy until the last
    run, instead of idling at the end of each model's ensemble. Returns ``{label: Ensemble}``."""
    from . import cluster, metrics, observables

    for label, configs in configs_by_label.items():
        for cfg in configs:
            if cfg.kind not in ("qinn", "inn"):
                raise ValueError(f"train_ensemble: cannot train a {cfg.kind!r} config ({type(cfg).__name__}) "
                                 f"for {label!r}")
    flat = [cfg for configs in configs_by_label.values() for cfg in configs]
    trained_all = cluster.train_runs(flat, client=client, log=log, data=data)
    out: dict[str, Ensemble] = {}
    it = iter(trained_all)
    for label, configs in configs_by_label.items():
        runs_, records, generated = [], [], []
        for cfg in configs:
            trained = next(it)
            eval_seed = cfg.seed + EVAL_SEED_OFFSET
            sample = trained.generate(len(trained.data.sample.test), seed=eval_seed)  # once: metrics and plots
            values = metrics.evaluate_model(trained, seed=eval_seed, generated=sample)
            records.append(metrics.make_record(label, trained, values, eval_seed=eval_seed))
            generated.append(observables.reconstruct(sample))
            runs_.append(trained)
            log(f"[{label}] seed {cfg.seed}: {values['train_epochs']} epochs, {values['train_seconds'] / 60:.1f} min"
                + (" (shipped model)" if trained.shipped else "")
                + f"; test NLL {values['nll']:.3f}, classifier AUC {values['auc']:.3f}")
        out[label] = Ensemble(label, runs_, records, generated)
    return out


def train_runs(configs: list[RunConfig], *, label: str = "", progress: bool = True,
               data: PreparedData | None = None, log=print, client: Any = None) -> list[TrainedModel]:
    """Train (or reload, or load shipped) one run per config and return them in order, without
    evaluating them: :func:`qinn_lib.cluster.train_runs` (Dask jobs, INN seeds in lockstep)."""
    from . import cluster

    prefix = f"[{label}] " if label else ""
    return cluster.train_runs(list(configs), client=client, data=data,
                              log=(lambda msg: log(prefix + msg)) if progress else None)


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
    from .search import finished_trials, notebook_search

    _, name, n_trials = notebook_search(cfg)
    done = finished_trials(name, models)
    return [] if done >= n_trials else [f"search ({done} of {n_trials} trials finished)"]


def _shipped_entry(cfg: RunConfig) -> dict | None:
    """The shipped model for ``cfg``, unless ``QINN_MODELS=train``."""
    from . import profiles, shipped

    return shipped.find(cfg) if profiles.context().models == "shipped" else None


def finished_run(cfg: RunConfig) -> Path | None:
    """A finished checkpoint of ``cfg`` under :func:`paths.runs_dir` (any data fingerprint; the
    data are checked when it is loaded), or None."""
    from .train import CHECKPOINT_NAME, CheckpointError, load_checkpoint

    for path in sorted(paths.runs_dir().glob(f"{cfg.kind}-{cfg.fingerprint()}-*/{CHECKPOINT_NAME}")):
        try:
            if int(load_checkpoint(path, expected_cfg=cfg)["epoch"]) >= cfg.epochs:
                return path
        except CheckpointError:
            continue
    return None


def availability(cfg: RunConfig, models: str = "shipped") -> str | None:
    """How run ``cfg`` can be had without training: "shipped" (a model shipped with the package;
    only with ``models == "shipped"``), "trained" (a finished run under build/runs) or None."""
    from . import shipped

    if models == "shipped" and shipped.find(cfg) is not None:
        return "shipped"
    return "trained" if finished_run(cfg) is not None else None


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
                    "reloads the finished runs. A model shipped with the package (qinn_lib.shipped) is not "
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


if __name__ == "__main__":
    raise SystemExit(main())
