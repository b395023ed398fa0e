"""Seed ensembles: one model trained with several seeds, every run evaluated on the test split.

A single training says little: the spread over seeds is what notebooks 04-06 compare models
against (:mod:`qinn_lib.evaluation.ensemble_tables`).

- :func:`seeds`: the training seeds of an ensemble, ``first, first + 1, ...``;
- :func:`train_ensemble` / :func:`train_ensembles`: train (or reload, or load shipped) every seed
  of one or several models in one batch of Dask jobs (:func:`qinn_lib.experiments.jobs.train_runs`),
  then evaluate each run (:func:`qinn_lib.evaluation.evaluate.evaluate_model`) into a results
  record (:func:`qinn_lib.evaluation.records.make_record`);
- :func:`train_runs`: the same runs without the evaluation.

Each run is evaluated on events generated with the seed ``cfg.seed + EVAL_SEED_OFFSET``, so an
evaluation sample never reuses the training run's latent draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qinn_lib.evaluation import evaluate
from qinn_lib.evaluation import records as records_lib
from qinn_lib.events import observables
from qinn_lib.experiments import jobs
from qinn_lib.experiments.one_model import PreparedData, TrainedModel
from qinn_lib.training.config import RunConfig


def seeds(first: int, n: int) -> list[int]:
    """The training seeds of an ensemble: ``first, first + 1, ...``."""
    if n < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n}")
    return [first + i for i in range(n)]


#: Offset between a run's training seed and the seed of the events it generates for evaluation,
#: so that evaluation samples never reuse the training run's latent draws.
EVAL_SEED_OFFSET = 10_000


@dataclass
class Ensemble:
    """One model trained with several seeds, evaluated on the test split."""

    label: str
    runs: list[TrainedModel]
    records: list[dict]  #: qinn_lib.evaluation.records.make_record per seed
    generated: list[dict]  #: observables.reconstruct of the evaluation sample, per seed


def train_ensemble(label: str, configs: list[RunConfig], *, progress: bool = True,
                   data: PreparedData | None = None, log=print, client: Any = None) -> Ensemble:
    """Train (or reload) one run per config, then evaluate each with :func:`qinn_lib.evaluation.evaluate.evaluate_model`.
    The configs must differ only in their seed; QINN or INN is chosen by the config's kind.

    Unfinished runs train on the Dask cluster (:func:`qinn_lib.experiments.jobs.train_runs`: one job per
    run, INN seeds in lockstep), finished ones are reloaded from their checkpoints."""
    return train_ensembles({label: configs}, progress=progress, data=data, log=log, client=client)[label]


def train_ensembles(configs_by_label: dict[str, list[RunConfig]], *, progress: bool = True,
                    data: PreparedData | None = None, log=print, client: Any = None) -> dict[str, Ensemble]:
    """:func:`train_ensemble` for several models at once: every unfinished run of every model is
    submitted to the cluster in ONE batch (longest first), so both cores stay busy until the last
    run, instead of idling at the end of each model's ensemble. Returns ``{label: Ensemble}``."""
    for label, configs in configs_by_label.items():
        for cfg in configs:
            if cfg.kind not in ("qinn", "inn"):
                raise ValueError(f"train_ensemble: cannot train a {cfg.kind!r} config ({type(cfg).__name__}) "
                                 f"for {label!r}")
    flat = [cfg for configs in configs_by_label.values() for cfg in configs]
    trained_all = jobs.train_runs(flat, client=client, log=log, data=data)
    out: dict[str, Ensemble] = {}
    it = iter(trained_all)
    for label, configs in configs_by_label.items():
        runs_, records, generated = [], [], []
        for cfg in configs:
            trained = next(it)
            eval_seed = cfg.seed + EVAL_SEED_OFFSET
            sample = trained.generate(len(trained.data.sample.test), seed=eval_seed)  # once: metrics and plots
            values = evaluate.evaluate_model(trained, seed=eval_seed, generated=sample)
            records.append(records_lib.make_record(label, trained, values, eval_seed=eval_seed))
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
    evaluating them: :func:`qinn_lib.experiments.jobs.train_runs` (Dask jobs, INN seeds in lockstep)."""
    prefix = f"[{label}] " if label else ""
    return jobs.train_runs(list(configs), client=client, data=data,
                           log=(lambda msg: log(prefix + msg)) if progress else None)
