"""How long the paper profile's training takes, projected from measured step times.

:func:`project_paper_profile` plans every run of notebooks 03-07 as the reports runner would
(:mod:`qinn_lib.experiments.plans`), groups them into Dask jobs exactly as
:mod:`qinn_lib.experiments.jobs` does (QINN and INN seeds in lockstep), and packs the jobs onto the
workers in queue order (:func:`qinn_lib.experiments.jobs.pack_jobs`). The step times come from
``python -m qinn_lib.bench`` (measured side by side in one run).
"""

from __future__ import annotations

from qinn_lib.experiments import jobs as jobs_lib
from qinn_lib.experiments import plans
from qinn_lib.training.config import (
    ComparisonConfig,
    DiagnosisConfig,
    FidelityVsMSEConfig,
    HardwareRealismConfig,
    QINNRunConfig,
)

__all__ = ["project_paper_profile"]


def project_paper_profile(step_ms: dict[str, float], *, n_workers: int = 2, compile_seconds: float = 0.0,
                          qinn_lockstep_ms: dict[int, float] | None = None, n_seeds: int | None = None,
                          full_diagnosis: bool = False) -> dict[str, float]:
    """Projected wall time of training every run of the paper profile from measured per-seed
    ms/step: ``step_ms`` maps ``"qinn"``, ``"reuploading"`` and ``"inn 2k"`` / ``"inn 6k"`` /
    ``"inn 16k"`` (per seed, in lockstep) to milliseconds; ``qinn_lockstep_ms`` maps a stack size k
    to the QINN's per-model ms in lockstep (a job of m seeds uses the largest measured k <= m).
    The runs of notebooks 03-07 (default parameters; ``n_seeds`` overrides every ensemble's seed
    count; ``full_diagnosis``: notebook 06 with every ablation, 3 uploads and 40 search trials)
    are grouped into Dask jobs exactly as :mod:`qinn_lib.experiments.jobs` groups them and packed
    onto ``n_workers`` single-threaded workers in the same queue order; each job adds
    ``compile_seconds``. Training steps only: validation, data and evaluation come on top."""
    seeds = {} if n_seeds is None else {"n_seeds": int(n_seeds)}
    diagnosis = DiagnosisConfig(**seeds, **(dict(ablation_priority=3, max_uploads=3, search_trials=40)
                                            if full_diagnosis else {}))
    configs = []
    for nb_cfg in (QINNRunConfig(), FidelityVsMSEConfig(**seeds), ComparisonConfig(**seeds), diagnosis,
                   HardwareRealismConfig()):
        for cfgs in plans.planned_runs(nb_cfg).values():
            configs.extend(cfgs)
    jobs = jobs_lib.group_jobs(configs)
    base, _, n_trials = plans.notebook_search(diagnosis)
    trials = [jobs_lib.TrainJob((base.replace(seed=base.seed + i),)) for i in range(n_trials)]
    costs = []
    for job in jobs + trials:
        c = job.configs[0]
        key = c.kind + (f" {c.size}" if c.kind == "inn" else "")
        per_seed = step_ms[key]
        if c.kind == "qinn":
            if qinn_lockstep_ms and len(job.configs) > 1:
                per_seed = qinn_lockstep_ms[max(k for k in qinn_lockstep_ms if k <= len(job.configs))]
            per_seed *= (int(c.n_layers) + int(c.isp_layers)) / jobs_lib.TABLE1_CIRCUIT_LAYERS
        costs.append(jobs_lib.training_steps(c) * per_seed * len(job.configs) / 1e3 + compile_seconds)
    wall = jobs_lib.pack_jobs(sorted(costs, reverse=True), n_workers)
    return {"jobs": len(jobs) + len(trials), "runs": sum(len(j.configs) for j in jobs) + len(trials),
            "core_hours": sum(costs) / 3600, "wall_minutes": wall / 60, "n_workers": n_workers,
            "n_seeds": n_seeds if n_seeds is not None else ComparisonConfig().n_seeds,
            "full_diagnosis": full_diagnosis}
