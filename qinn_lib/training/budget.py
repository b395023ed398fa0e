"""Which counts a run uses (quick vs paper), decided in one place.

:func:`budget` is the one helper that caps iteration counts in the quick profile (GPflow's
``ci_niter`` idea): notebooks keep the paper's values in their ``parameters`` cell and pass every
count through it; the paper profile leaves them alone. The caps (:data:`QUICK_CAPS`) let all
notebooks together run in a few minutes on a 2-core CPU while every code path still executes.
:func:`effective_config` applies them to a run configuration (fewer events and epochs in the
quick profile, Table 1 in the paper profile); :func:`grid` thins a swept grid the same way
(:data:`QUICK_GRID_POINTS`, both ends kept).

Which profile a notebook runs in is decided by :func:`qinn_lib.notebook.profiles.notebook_config`
from the environment (:mod:`qinn_lib.settings`).
"""

from __future__ import annotations

from typing import Any

from qinn_lib.settings import check_profile

#: Upper bounds applied in the quick profile. Chosen so that all notebooks together run in a few
#: minutes on a 2-core CPU while every code path (training, checkpoints, plots) still executes.
QUICK_CAPS: dict[str, int] = {
    "n_events": 8_000,
    "epochs": 2,
    "n_seeds": 1,
    "fit_steps": 30,
    "n_generate": 4_000,
    "search_trials": 2,
    "device_events": 24,  # notebook 07 on calibrated IBM device models: ~0.05-0.1 s per event and circuit
    "device_shots": 2_000,
    # notebook 07's evaluation seeds: 2 is the fewest with a spread (HardwareRealismConfig's lower
    # bound); each seed is a whole pass of notebook 07's sweep, the quick profile's longest cell
    "eval_seeds": 2,
    # notebook 06's quasi-Monte Carlo density integrals (NLL + ln Z): 16 replicates of 1 024 Sobol'
    # points instead of 16 of 8 192, ~10 s of the quick profile's notebook time
    "normalisation_samples": 16_384,
    # the boosted-tree AUC's cross-validation folds (qinn_lib.evaluation.evaluate.bdt_folds_for): each
    # fold is a fit of ~1 s whatever the sample size, ~45 % of the quick profile's evaluation time at 5
    "bdt_folds": 2,
}
#: Grids the quick profile thins to this many points, spread over the grid and keeping both ends
#: (:func:`grid`): notebook 07's sweep evaluates every grid point for every seed, so a point costs
#: seconds there (~2 s each, most of it the two boosted-tree AUCs of the field's measures).
QUICK_GRID_POINTS: dict[str, int] = {"shots": 3, "noise_levels": 4}
#: The device models notebook 07's quick profile runs on instead of the configured ones: a 5-qubit
#: device builds its noise model in 0.1 s, a 133-qubit one in 4-6 s (qinn_lib.hardware.ibm).
QUICK_DEVICE_BACKENDS = ("FakeManilaV2",)


#: Notebook parameters capped by another name's cap: notebook 07's ``n_test`` by ``n_generate``,
#: notebook 06's ``search_epochs`` by ``epochs`` (its search runs are run configs, capped by
#: :func:`effective_config`), notebook 07's device events (generated and reconstructed) by ``device_events``. tests/test_reports.py checks this against the notebooks' budget calls.
CAPPED_AS: dict[str, str] = {"n_test": "n_generate", "search_epochs": "epochs", "device_generate": "device_events",
                             "device_test": "device_events", "n_eval_seeds": "eval_seeds"}


def quick_value(name: str, paper_value: Any) -> Any:
    """The value the quick profile uses for the notebook parameter ``name`` set to ``paper_value``
    (``python -m qinn_lib.reports --list`` shows it): a count's cap, a grid's thinned points
    (:func:`grid`); None for a parameter the quick profile leaves alone."""
    if name in QUICK_GRID_POINTS and isinstance(paper_value, (list, tuple)):
        return grid("quick", name, paper_value)
    if isinstance(paper_value, bool) or not isinstance(paper_value, int):
        return None
    cap = CAPPED_AS.get(name, name)
    return min(paper_value, QUICK_CAPS[cap]) if cap in QUICK_CAPS else None


def budget(profile: str, name: str, paper_value: int) -> int:
    """The count to use for ``name`` under ``profile``: ``paper_value`` in the paper profile,
    ``min(paper_value, QUICK_CAPS[name])`` in the quick one."""
    check_profile(profile)
    if name not in QUICK_CAPS:
        raise KeyError(f"no quick-profile cap for {name!r}; known: {sorted(QUICK_CAPS)}")
    if paper_value < 1:
        raise ValueError(f"{name} must be >= 1, got {paper_value}")
    return paper_value if profile == "paper" else min(paper_value, QUICK_CAPS[name])


def grid(profile: str, name: str, values: Any) -> list:
    """The points of the grid ``name`` to evaluate under ``profile``: all of ``values`` in the
    paper profile; in the quick one :data:`QUICK_GRID_POINTS[name] <QUICK_GRID_POINTS>` of them,
    evenly spread over the grid's order and always with its first and last point (the sweep's
    extremes are what its figures are about), so every code path still runs on fewer points."""
    check_profile(profile)
    if name not in QUICK_GRID_POINTS:
        raise KeyError(f"no quick-profile grid for {name!r}; known: {sorted(QUICK_GRID_POINTS)}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must have at least one point, got an empty grid")
    keep = max(2, QUICK_GRID_POINTS[name])  # both ends, whatever the table says
    if profile == "paper" or len(values) <= keep:
        return values
    last = len(values) - 1
    # round(i * last / (keep - 1)) for i = 0 .. keep-1: distinct, increasing, 0 and last included
    return [values[(i * last + (keep - 1) // 2) // (keep - 1)] for i in range(keep)]


def effective_config(cfg: Any) -> Any:
    """Apply the profile's caps to the counts of the run config ``cfg``: the quick profile trains
    on fewer events for fewer epochs, the paper profile keeps Table 1. (The capped config validates
    itself again, e.g. a batch larger than the capped training split is refused.)"""
    changes = {}
    for name in ("n_events", "epochs"):
        if hasattr(cfg, name):
            changes[name] = budget(cfg.profile, name, getattr(cfg, name))
    return cfg.replace(**changes)


def device_models(profile: str, names: str) -> list[str]:
    """The device models to run: the comma-separated ``names`` in the paper profile,
    :data:`QUICK_DEVICE_BACKENDS` in the quick one."""
    check_profile(profile)
    chosen = [n.strip() for n in str(names).split(",") if n.strip()]
    if not chosen:
        raise ValueError(f"device backends must name at least one backend, got {names!r}")
    return chosen if profile == "paper" else list(QUICK_DEVICE_BACKENDS)
