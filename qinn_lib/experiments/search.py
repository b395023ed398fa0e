"""Is there any QINN of the paper's size that matches a 6k INN? A budgeted two-objective search
(Optuna) for the best QINN at <= 2.1k trainable parameters (notebook 06).

What is searched (:func:`suggest_config`): the choices Table 1 states without justification or
the paper leaves open, at the paper's model circuit (``n_layers``) and batch size:

* the loss weights lambda_inv, lambda_MMD input / latent, lambda_MZ (log-uniform) and eq. 20's
  normalisation (``mse_reduction``: mean or sum over the features);
* the ISP: layers of g_Q (``isp_layers``), linear layers of g_C (``isp_nn_layers``) and its width,
  sampled as a fraction of the widest g_C that keeps the whole model within ``max_params``
  (so every trial obeys the parameter budget; Table 1's width 32 is fraction 1 at its depths);
* the one-cycle schedule's peak LR (``max_lr``) and warm-up share (``warmup_fraction``; the
  start / final factors stay Table 1's).

Two objectives, both minimised: the headline reconstruction deviation (``recon_mean``,
:data:`qinn_lib.evaluation.diagnostics.HEADLINE_READING`) and JS(M_ll) (``js/m_ll``) on the test split. The
first trial is Table 1 itself. Trials are Dask jobs (:func:`qinn_lib.experiments.cluster.map_jobs`), each a
full training of one seed; the study lives in an Optuna journal file, so an interrupted search
resumes: finished trials are kept, trials that were running are re-run with the same parameters
(their training resumes from its checkpoint), and the trial budget counts finished trials only.
The sampler is Optuna's multi-objective TPE, seeded; after a restart its proposals depend on the
stored trials, not on the interrupted session's random state. TPE draws its first
``n_startup_trials`` (Optuna's default: 10) at random before it models anything, so a search of
at most that many trials (notebook 06's paper profile: 8) is a seeded random screen around the
first trial, Table 1.

Here: the search space, one trial, the study (:func:`run_search`) and its Pareto front
(:func:`pareto_front`, :func:`front_trials`). Notebook 06's search (its base run, study name and
number of trials) is :func:`qinn_lib.experiments.plans.notebook_search`; the figure of the front
is :func:`qinn_lib.notebook.plots.plot_front`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from qinn_lib import paths
from qinn_lib.evaluation import diagnostics, distances, evaluate
from qinn_lib.events import observables
from qinn_lib.experiments import cluster, one_model, store
from qinn_lib.experiments.cluster import job_env
from qinn_lib.models.qinn.model import QINN
from qinn_lib.settings import context
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.loop import TrainingDiverged

__all__ = ['MAX_PARAMS', 'OBJECTIVES', 'qinn_parameter_count', 'max_isp_hidden', 'suggest_config', 'table1_params', 'evaluate_trial', 'study_path', 'finished_trials', 'run_search', 'pareto_front', 'trial_records', 'front_trials', 'default_name']


#: Parameter budget: the paper's QINN has "2k" parameters (Table 1; ours: 2063).
MAX_PARAMS = 2100
#: The two objectives, both minimised: the headline reconstruction deviation and JS(M_ll).
OBJECTIVES = ("recon_mean", "js/m_ll")
#: Narrowest g_C hidden width searched.
MIN_HIDDEN = 4


def qinn_parameter_count(n_features: int = 5, n_layers: int = 12, isp_layers: int = 8, isp_nn_layers: int = 3,
                         isp_hidden: int = 32) -> int:
    """Trainable parameters of a :class:`~qinn_lib.models.qinn.model.QINN`: 3n angles per layer of U and g_Q,
    a, b, c, d (4n), and g_C with widths n -> hidden x (isp_nn_layers - 1) -> 3n (weights and biases).
    Equal to ``QINN(...).parameter_counts()["total"]`` (tested)."""
    n = n_features
    widths = [n] + [isp_hidden] * (isp_nn_layers - 1) + [3 * n]
    net = sum(w_in * w_out + w_out for w_in, w_out in zip(widths[:-1], widths[1:]))
    return 3 * n * (n_layers + isp_layers) + 4 * n + net


def max_isp_hidden(n_layers: int, isp_layers: int, isp_nn_layers: int, max_params: int = MAX_PARAMS,
                   n_features: int = 5) -> int:
    """The widest g_C (hidden width) with which the QINN keeps ``<= max_params`` parameters; 0 if
    not even width 1 fits. With one linear layer there is no hidden width: any value fits."""
    if qinn_parameter_count(n_features, n_layers, isp_layers, isp_nn_layers, 1) > max_params:
        return 0
    if isp_nn_layers == 1:
        return 10**6
    lo, hi = 1, 1
    while qinn_parameter_count(n_features, n_layers, isp_layers, isp_nn_layers, hi * 2) <= max_params:
        hi *= 2
    hi *= 2
    while hi - lo > 1:  # the count grows with the width: bisect for the last width that fits
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if qinn_parameter_count(n_features, n_layers, isp_layers, isp_nn_layers, mid) <= max_params else (lo, mid)
    return lo


def _hidden_from_fraction(fraction: float, h_max: int) -> int:
    return int(round(MIN_HIDDEN + fraction * (h_max - MIN_HIDDEN)))


def suggest_config(trial: Any, base_cfg: Any, *, max_params: int = MAX_PARAMS) -> Any:
    """The QINNRunConfig of one Optuna trial (module docstring: what is searched), with every other
    field from ``base_cfg`` (profile-capped; its seed is kept: one seed per trial)."""
    isp_nn_layers = trial.suggest_int("isp_nn_layers", 2, 4)
    isp_layers = trial.suggest_int("isp_layers", 2, 12)
    h_max = max_isp_hidden(base_cfg.n_layers, isp_layers, isp_nn_layers, max_params)
    if h_max < MIN_HIDDEN:
        raise ValueError(f"suggest_config: no ISP of width >= {MIN_HIDDEN} fits {max_params} parameters "
                         f"with {base_cfg.n_layers} model layers and {isp_layers} ISP layers")
    fraction = trial.suggest_float("isp_width_fraction", 0.0, 1.0)
    changes = {
        "lambda_inv": trial.suggest_float("lambda_inv", 1.0, 100.0, log=True),
        "mse_reduction": trial.suggest_categorical("mse_reduction", ["mean", "sum"]),
        "lambda_mmd_input": trial.suggest_float("lambda_mmd_input", 0.05, 10.0, log=True),
        "lambda_mmd_latent": trial.suggest_float("lambda_mmd_latent", 0.05, 10.0, log=True),
        "lambda_mz": trial.suggest_float("lambda_mz", 0.03, 10.0, log=True),
        "max_lr": trial.suggest_float("max_lr", 3e-4, 3e-3, log=True),
        "warmup_fraction": trial.suggest_float("warmup_fraction", 0.1, 0.5),
        "isp_nn_layers": isp_nn_layers, "isp_layers": isp_layers,
        "isp_hidden": _hidden_from_fraction(fraction, h_max),
    }
    return base_cfg.replace(**changes)


def table1_params(base_cfg: Any, *, max_params: int = MAX_PARAMS) -> dict[str, Any]:
    """The trial parameters of ``base_cfg`` itself (Table 1 for the default config), to enqueue
    as the first trial. Raises if its ISP width is not reachable within the budget."""
    h_max = max_isp_hidden(base_cfg.n_layers, base_cfg.isp_layers, base_cfg.isp_nn_layers, max_params)
    if not MIN_HIDDEN <= base_cfg.isp_hidden <= h_max:
        raise ValueError(f"table1_params: ISP width {base_cfg.isp_hidden} is outside [{MIN_HIDDEN}, {h_max}] "
                         f"for {max_params} parameters")
    fraction = 1.0 if h_max == MIN_HIDDEN else (base_cfg.isp_hidden - MIN_HIDDEN) / (h_max - MIN_HIDDEN)
    return {"isp_nn_layers": base_cfg.isp_nn_layers, "isp_layers": base_cfg.isp_layers, "isp_width_fraction": fraction,
            "lambda_inv": base_cfg.lambda_inv, "mse_reduction": base_cfg.mse_reduction,
            "lambda_mmd_input": base_cfg.lambda_mmd_input, "lambda_mmd_latent": base_cfg.lambda_mmd_latent,
            "lambda_mz": base_cfg.lambda_mz, "max_lr": base_cfg.max_lr, "warmup_fraction": base_cfg.warmup_fraction}


# -- one trial -------------------------------------------------------------------------------------
def evaluate_trial(trained: Any, *, seed: int, n_generate: int | None = None, batch_size: int = 8192) -> dict[str, float]:
    """The objectives and a few diagnostics of one trained QINN on its test split: ``recon_mean``
    (headline reading), ``js/m_ll``, ``peak_share_error/m_ll``, ``fold_fraction``, ``nll``,
    ``params_total``, ``train_seconds``. Cheaper than :func:`qinn_lib.evaluation.evaluate.evaluate_model`
    (no classifier): a search evaluates every trial."""
    import torch


    x = trained.data.test
    x_rec = torch.cat([trained.reconstruct(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])
    dev = evaluate.reconstruction_deviation(x, x_rec)
    truth = np.asarray(trained.data.sample.test, dtype=np.float64)
    sample = trained.generate(n_generate or len(truth), seed=seed)
    js = distances.observable_distances(truth, sample, observables=("m_ll",))["m_ll"]["js"]
    peak = distances.peak_and_tails(observables.reconstruct(truth)["m_ll"], observables.reconstruct(sample)["m_ll"])
    folds = diagnostics.fold_statistics(trained.model, x, x_rec=x_rec)
    history = trained.result.history
    return {"recon_mean": dev["mean"], "js/m_ll": js,
            "peak_share_error/m_ll": abs(peak["peak_fraction_generated"] - peak["peak_fraction_truth"]),
            "fold_fraction": folds["fold_fraction"], "nll": evaluate.test_nll(trained.model, trained.data)["nll"],
            "params_total": int(trained.model.parameter_counts()["total"]),
            "train_seconds": float(sum(h.get("seconds", 0.0) for h in history))}


def _trial_job(cfg_dict: dict[str, Any], env: dict[str, str] | None, seed: int, n_generate: int | None) -> dict[str, Any]:
    """Executed in a Dask worker: train (or resume) one trial's run and evaluate it. A diverged run
    is a failed trial (``{"error": message}``), not a failed search."""
    import torch


    with job_env(env):
        torch.set_num_threads(1)
        try:
            trained = one_model.train_qinn(QINNRunConfig(**cfg_dict), progress=False)
        except TrainingDiverged as exc:
            return {"error": str(exc)}
        return evaluate_trial(trained, seed=seed, n_generate=n_generate)


# -- the study ---------------------------------------------------------------------------------------
def study_path(name: str) -> Path:
    """Journal file of the study ``name`` under ``build/search/`` (next to the runs: git-ignored)."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"study name must be a plain file stem, got {name!r}")
    folder = paths.runs_dir().parent / "search"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.journal"


def finished_trials(name: str, models: str = "shipped") -> int:
    """Finished trials of the study ``name`` available without training: in its journal under
    ``build/search``, else (``models == "shipped"``) in the journal shipped with the package."""
    path = study_path(name)
    if path.is_file():
        return finished_count(open_study(path, name, 0))
    entry = store.find_search(name) if models == "shipped" else None
    return int(entry["finished"]) if entry else 0


def _seed_from_shipped(path: Path, name: str) -> None:
    """Start the study ``name`` from the journal shipped with the package (checked against its
    sha256), when there is no journal of it under ``build/search`` yet and shipped models are in
    use: its finished trials then count, and only the missing ones are trained."""
    if path.exists() or context().models != "shipped":
        return
    entry = store.find_search(name)
    if entry is not None:
        store.copy_search(entry, path)


def open_study(path: Path, name: str, sampler_seed: int) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    sampler = optuna.samplers.TPESampler(seed=int(sampler_seed))
    return optuna.create_study(study_name=name, storage=storage, directions=["minimize", "minimize"],
                               sampler=sampler, load_if_exists=True)


def finished_count(study: Any) -> int:
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs))


def run_search(base_cfg: Any, *, n_trials: int, name: str, sampler_seed: int = 0, client: Any = None,
               n_parallel: int | None = None, max_params: int = MAX_PARAMS, n_generate: int | None = None,
               job: Callable[..., dict[str, Any]] = _trial_job, log: Callable[[str], None] | None = print) -> Any:
    """Run (or resume) the study ``name`` until ``n_trials`` trials have finished; returns the
    ``optuna.Study``.

    Each round asks ``n_parallel`` trials (default: the cluster's worker count), trains them as
    Dask jobs ``job(cfg_dict, env, eval_seed, n_generate)`` and tells each result as it arrives
    (so an interruption loses only running trials). ``job`` returns the :data:`OBJECTIVES` (and
    any other scalars, stored as user attributes) or ``{"error": message}`` for a failed trial.
    Every trial's config is stored (``user_attrs["config"]``) and must fit ``max_params``.
    """
    from optuna.trial import TrialState


    if n_trials < 1:
        raise ValueError(f"run_search: n_trials must be >= 1, got {n_trials}")
    path = study_path(name)
    _seed_from_shipped(path, name)
    study = open_study(path, name, sampler_seed)
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:  # interrupted in an earlier session: run again with the same parameters
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, skip_if_exists=False)
    if stale and log:
        log(f"search {name}: {len(stale)} trial(s) interrupted earlier, re-queued with their parameters")
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(table1_params(base_cfg, max_params=max_params))
    c = cluster.get_client(client)
    width = n_parallel or max(1, len(c.scheduler_info().get("workers", {})))
    env = cluster.submitter_env()
    while (done := finished_count(study)) < n_trials:
        trials, jobs = [], []
        for _ in range(min(width, n_trials - done)):
            trial = study.ask()
            cfg = suggest_config(trial, base_cfg, max_params=max_params)
            n_params = QINN.from_config(cfg).parameter_counts()["total"]
            if n_params > max_params:  # suggest_config keeps every trial within budget; this guards it
                raise RuntimeError(f"trial {trial.number}: {n_params} parameters exceed {max_params}")
            trial.set_user_attr("config", cfg.to_dict())
            trial.set_user_attr("params_total", int(n_params))
            trials.append(trial)
            jobs.append((cfg.to_dict(), env, int(base_cfg.seed) + 10_000, n_generate))
        t0 = time.perf_counter()

        def tell(i: int, result: dict[str, Any]) -> None:
            trial = trials[i]
            if "error" in result:
                trial.set_user_attr("error", str(result["error"])[:2000])
                study.tell(trial, state=TrialState.FAIL)
                msg = f"failed ({str(result['error'])[:120]})"
            else:
                for k, v in result.items():
                    if k not in OBJECTIVES:
                        trial.set_user_attr(k, v)
                study.tell(trial, [float(result[k]) for k in OBJECTIVES])
                msg = ", ".join(f"{k} {result[k]:.4g}" for k in OBJECTIVES)
            if log:
                log(f"  trial {trial.number}: {msg} ({(time.perf_counter() - t0) / 60:.1f} min)")

        if log:
            log(f"search {name}: {done}/{n_trials} finished; running trials "
                f"{[t.number for t in trials]} as Dask jobs")
        cluster.map_jobs(job, jobs, client=c, keys=[f"{name}-trial-{t.number}" for t in trials], on_done=tell)
    return study


# -- the Pareto front --------------------------------------------------------------------------------
def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated rows of ``points`` (every objective minimised; a row is
    dominated if another is <= in every objective and < in one), sorted by the first objective.
    Rows with a NaN are never on the front."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"pareto_front: points must be 2-D (points, objectives), got shape {p.shape}")
    ok = np.all(np.isfinite(p), axis=1)
    front = []
    for i in np.flatnonzero(ok):
        others = p[ok]
        dominated = np.any(np.all(others <= p[i], axis=1) & np.any(others < p[i], axis=1))
        if not dominated:
            front.append(int(i))
    return sorted(front, key=lambda i: tuple(p[i]))


def trial_records(study: Any) -> list[dict[str, Any]]:
    """Every finished trial: ``number``, ``state``, ``values`` (dict by objective, None if failed),
    ``params``, ``config`` and the other scalars the job returned."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.FAIL) or (t.state == TrialState.FAIL and "error" not in t.user_attrs):
            continue
        values = dict(zip(OBJECTIVES, t.values)) if t.state == TrialState.COMPLETE else None
        out.append({"number": t.number, "state": t.state.name, "values": values, "params": dict(t.params),
                    **{k: v for k, v in t.user_attrs.items()}})
    return out


def front_trials(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Pareto-optimal completed trials of :func:`trial_records`, by increasing first objective."""
    done = [r for r in records if r["values"] is not None]
    idx = pareto_front([[r["values"][k] for k in OBJECTIVES] for r in done]) if done else []
    return [done[i] for i in idx]


def default_name(base_cfg: Any, sampler_seed: int) -> str:
    """A study name tied to the base config (data, epochs, profile) and the sampler seed, so studies
    of different settings never share a journal."""
    return f"qinn2k-{base_cfg.profile}-{base_cfg.fingerprint()}-s{int(sampler_seed)}"
