"""The one helper that decides quick vs paper iteration counts (GPflow's ``ci_niter`` idea).

Notebooks keep the paper's values in their ``parameters`` cell and pass every count through
:func:`budget`; the quick profile (CI, a first look) caps them, the paper profile leaves them alone.
"""

from __future__ import annotations

from typing import Any

from .paths import PROFILES

#: Upper bounds applied in the quick profile. Chosen so that all notebooks together run in a few
#: minutes on a 2-core CPU while every code path (training, checkpoints, plots) still executes.
QUICK_CAPS: dict[str, int] = {
    "n_events": 8_000,
    "epochs": 2,
    "n_seeds": 1,
    "fit_steps": 30,
    "n_generate": 4_000,
    "search_trials": 2,
}


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return profile


def budget(profile: str, name: str, paper_value: int) -> int:
    """The count to use for ``name`` under ``profile``: ``paper_value`` in the paper profile,
    ``min(paper_value, QUICK_CAPS[name])`` in the quick one."""
    check_profile(profile)
    if name not in QUICK_CAPS:
        raise KeyError(f"no quick-profile cap for {name!r}; known: {sorted(QUICK_CAPS)}")
    if paper_value < 1:
        raise ValueError(f"{name} must be >= 1, got {paper_value}")
    return paper_value if profile == "paper" else min(paper_value, QUICK_CAPS[name])


def effective_config(cfg: Any) -> Any:
    """Apply the profile's caps to the counts of the run config ``cfg``: the quick profile trains
    on fewer events for fewer epochs, the paper profile keeps Table 1. (The capped config validates
    itself again, e.g. a batch larger than the capped training split is refused.)"""
    changes = {}
    for name in ("n_events", "epochs"):
        if hasattr(cfg, name):
            changes[name] = budget(cfg.profile, name, getattr(cfg, name))
    return cfg.replace(**changes)
