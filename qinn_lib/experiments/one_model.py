"""One call per model: load the events, scale them, build the model, train (or resume, or reload a
finished run), and sample from it. This is what the notebooks call, so they stay thin.

:func:`prepare_data` gives the scaled events, :func:`train_qinn`, :func:`train_inn` (and
:func:`train_inn_lockstep` for INN seeds together) and :func:`train_reuploading` (notebook 06's
re-uploading flow, trained with the NLL alone) give a :class:`TrainedModel`, and :func:`trainers`
maps every kind of run config to its trainer. Which runs a notebook needs is
:mod:`qinn_lib.experiments.plans`; seed ensembles are :mod:`qinn_lib.experiments.ensembles`.

A run lives in ``paths.runs_dir() / <kind>-<config fingerprint>-<data fingerprint>``: re-running a
notebook with the same parameters reloads the finished checkpoint instead of training again, and
an interrupted run resumes where it stopped. Before any of that, a paper-profile run whose
configuration and data match a model shipped with the package loads that model instead
(:mod:`qinn_lib.experiments.store`; ``QINN_MODELS=train`` turns this off).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from qinn_lib import paths, settings
from qinn_lib.events.cache import load_sample
from qinn_lib.events.sample import EventSample
from qinn_lib.events.scaling import AngleScaler
from qinn_lib.experiments import store
from qinn_lib.models.inn.model import INN, INNStack
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.reuploading import ReuploadingFlow
from qinn_lib.models.qinn.stack import QINNStack
from qinn_lib.training.checkpoints import CHECKPOINT_NAME, CheckpointError, load_checkpoint
from qinn_lib.training.config import INNRunConfig, QINNRunConfig, ReuploadingRunConfig, RunConfig
from qinn_lib.training.loop import TrainResult, train, train_lockstep
from qinn_lib.training.objectives import INNObjective, NLLObjective, QINNObjective

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
    """Events (cached; Pythia, or the user's LHE file, see :func:`qinn_lib.events.cache.load_sample`), the
    [0, pi] scaler fitted on the training split, and scaled tensors."""
    sample = load_sample(n_events, data_seed, lhe_file=lhe_file, progress=progress)
    scaler = AngleScaler.fit(sample.train)
    as_tensor = lambda a: torch.as_tensor(scaler.transform(a), dtype=DTYPES[dtype], device=device)  # noqa: E731
    return PreparedData(sample, scaler, as_tensor(sample.train), as_tensor(sample.val), as_tensor(sample.test),
                        key=(n_events, data_seed, dtype, device, lhe_file))


def run_key(cfg: RunConfig) -> str:
    """``kind-fingerprint``: a run's name without its data (the start of its run folder's name)."""
    return f"{cfg.kind}-{cfg.fingerprint()}"


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
    result: Any  #: qinn_lib.training.loop.TrainResult
    run_dir: Path
    shipped: bool = False  #: loaded from a model shipped with the package (qinn_lib.experiments.store)

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

    entry = _shipped_entry(cfg)
    if entry is not None:

        ckpt = store.load_into(model, entry, expected_cfg=cfg, expected_fingerprint=data.fingerprint)
        result = TrainResult(history=list(ckpt["history"]), checkpoint=store.file_path(entry),
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
    """Train the QINN of ``cfg`` (already profile-capped: see :func:`qinn_lib.training.budget.effective_config`)."""
    torch.manual_seed(cfg.seed)
    data = data or prepare_data(*data_key(cfg))
    model = QINN.from_config(cfg).to(device=cfg.device)
    objective = QINNObjective(cfg, data.scaler)
    return _train(cfg, model, objective, data, progress=progress, resume=resume)


def train_inn(cfg: INNRunConfig, *, progress: bool = True, resume: bool = True,
              data: PreparedData | None = None) -> TrainedModel:
    """Train the classical spline INN of ``cfg`` (NLL + lambda_mz Breit–Wigner MMD on M_ll)."""
    torch.manual_seed(cfg.seed)
    data = data or prepare_data(*data_key(cfg))
    model = INN.from_config(cfg).to(device=cfg.device, dtype=DTYPES[cfg.dtype])
    objective = INNObjective(cfg, data.scaler)
    return _train(cfg, model, objective, data, progress=progress, resume=resume)


def train_inn_lockstep(cfgs: list[INNRunConfig], *, progress: bool = True, resume: bool = True,
                       data: PreparedData | None = None) -> list[TrainedModel]:
    """Train INN configs that differ only in their seed together, as one
    :class:`~qinn_lib.models.inn.model.INNStack` (:func:`qinn_lib.training.loop.train_lockstep`). Every member is an
    ordinary run with its own run directory, so :func:`train_inn` reloads it afterwards."""
    if not cfgs:
        raise ValueError("train_inn_lockstep: no configs")
    data = data or prepare_data(*data_key(cfgs[0]))
    models = [INN.from_config(cfg).to(device=cfg.device, dtype=DTYPES[cfg.dtype]) for cfg in cfgs]
    return _train_stack(cfgs, INNStack(models), INNObjective(cfgs[0], data.scaler), models, data,
                        progress=progress, resume=resume)


def train_qinn_lockstep(cfgs: list[QINNRunConfig], *, progress: bool = True, resume: bool = True,
                        data: PreparedData | None = None) -> list[TrainedModel]:
    """Train QINN configs that differ only in their seed together, as one
    :class:`~qinn_lib.models.qinn.stack.QINNStack` (every circuit evaluation of a step is one batched
    call for all seeds; :func:`qinn_lib.training.loop.train_lockstep`). Every member is an ordinary
    run with its own run directory, so :func:`train_qinn` reloads it afterwards."""
    if not cfgs:
        raise ValueError("train_qinn_lockstep: no configs")
    data = data or prepare_data(*data_key(cfgs[0]))
    models = [QINN.from_config(cfg).to(device=cfg.device) for cfg in cfgs]
    return _train_stack(cfgs, QINNStack(models), QINNObjective(cfgs[0], data.scaler), models, data,
                        progress=progress, resume=resume)


#: The lockstep trainer of each kind whose seeds can train as one stack (see jobs.group_jobs).
LOCKSTEP_TRAINERS = {"inn": train_inn_lockstep, "qinn": train_qinn_lockstep}


def _train_stack(cfgs: list[Any], stack: Any, objective: Any, models: list[Any], data: PreparedData, *,
                 progress: bool, resume: bool) -> list[TrainedModel]:
    run_dirs = [run_dir_for(cfg, data.fingerprint) for cfg in cfgs]
    results = train_lockstep(stack, objective, data.train, data.val, list(cfgs),
                             run_dirs=run_dirs, data_fingerprint=data.fingerprint,
                             extra_state={"scaler": data.scaler.to_dict()}, progress=progress, resume=resume)
    out = []
    for cfg, model, result, run_dir in zip(cfgs, models, results, run_dirs):
        model.eval()
        out.append(TrainedModel(cfg, model, data, result, run_dir))
    return out


# -- the re-uploading flow of notebook 06: trained with the NLL alone (no inverse) ---------------------
def train_reuploading(cfg: Any, *, progress: bool = True, resume: bool = True, data: Any = None) -> Any:
    """Train (or reload) the flow of ``cfg`` (a ReuploadingRunConfig, already profile-capped) with
    the NLL alone; returns a :class:`~qinn_lib.experiments.one_model.TrainedModel` (its ``generate``/``reconstruct``
    do not apply: there is no inverse). Several runs at once, as Dask jobs:
    :func:`qinn_lib.experiments.ensembles.train_runs` (which trains these like the QINN and INN runs)."""
    data = data or prepare_data(*data_key(cfg))
    model = ReuploadingFlow.from_config(cfg, n_features=int(data.train.shape[1]))
    return _train(cfg, model, NLLObjective(), data, progress=progress, resume=resume)


def completed_epochs(cfg: RunConfig, data: PreparedData) -> int:
    """Epochs already in ``cfg``'s checkpoint (0 if there is none); the checkpoint is validated
    against ``cfg`` and the data fingerprint (a mismatch raises CheckpointError)."""
    path = run_dir_for(cfg, data.fingerprint) / CHECKPOINT_NAME
    if not path.exists():
        return 0
    return int(load_checkpoint(path, expected_cfg=cfg, expected_fingerprint=data.fingerprint)["epoch"])


def _shipped_entry(cfg: RunConfig) -> dict | None:
    """The shipped model for ``cfg``, unless ``QINN_MODELS=train``."""
    return store.find(cfg) if settings.context().models == "shipped" else None


def finished_run(cfg: RunConfig) -> Path | None:
    """A finished checkpoint of ``cfg`` under :func:`paths.runs_dir` (any data fingerprint; the
    data are checked when it is loaded), or None."""
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
    if models == "shipped" and store.find(cfg) is not None:
        return "shipped"
    return "trained" if finished_run(cfg) is not None else None


def trainers() -> dict[str, tuple[type, Callable[..., Any]]]:
    """Config kind -> (its config class, the function that trains or reloads one run of it): the
    kinds of run :func:`train_runs` takes."""
    return {"qinn": (QINNRunConfig, train_qinn), "inn": (INNRunConfig, train_inn),
            "reuploading": (ReuploadingRunConfig, train_reuploading)}
