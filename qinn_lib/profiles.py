"""Which counts a notebook run uses (quick vs paper), decided in one place.

Two things live here:

* :func:`budget`, the one helper that caps iteration counts in the quick profile (GPflow's
  ``ci_niter`` idea): notebooks keep the paper's values in their ``parameters`` cell and pass every
  count through it; the paper profile leaves them alone.
* :func:`context` and :func:`notebook_config`: how a running notebook learns its profile, where it
  writes and whether it may load shipped models. ``profile`` is *not* a notebook parameter: the
  reports runner (``python -m qinn_lib.reports --profile ...``) sets it for its kernels through
  the environment (:func:`runner_environment`), and a notebook run by hand in JupyterLab gets the
  interactive default, which reproduces the committed report from the shipped models.

The environment variables (a user may set them before starting JupyterLab, too):

``QINN_PROFILE``     ``quick`` or ``paper``. Unset: the interactive default (see :func:`notebook_config`).
``QINN_OUTPUT_DIR``  where figures and results go (:func:`qinn_lib.paths.output_dir`); unset:
                     ``build/interactive/``. Only the runner points it at ``figures/``.
``QINN_MODELS``      ``shipped`` (default: load a shipped model whose configuration and data match,
                     see :mod:`qinn_lib.shipped`, else reload or train a run under ``build/runs``)
                     or ``train`` (ignore shipped models: reload or train under ``build/runs``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import paths
from .paths import OUTPUT_DIR_ENV, PROFILES

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

PROFILE_ENV = "QINN_PROFILE"
MODELS_ENV = "QINN_MODELS"
#: Set by the reports runner only, so that a notebook can say who chose its profile.
RUNNER_ENV = "QINN_RUNNER"
MODEL_POLICIES = ("shipped", "train")
#: Config fields that a notebook's parameters cell does not declare: the runner owns them.
RUNNER_OWNED = ("profile",)
#: The variable the runner injects into the reports it does not publish (the quick ones), so that
#: re-executing such a report (nbval, or a user opening it) runs it in the profile it was made in.
#: The published paper reports carry none: opened by hand they get the interactive default.
INJECTED_PROFILE = "qinn_profile"


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


# -- the run context ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunContext:
    """What the environment says about the running notebook."""

    profile: str | None  #: ``$QINN_PROFILE``; None when unset (a notebook run by hand)
    output_dir: Path  #: :func:`qinn_lib.paths.output_dir`
    models: str  #: ``$QINN_MODELS``: "shipped" or "train"
    runner: bool  #: started by ``python -m qinn_lib.reports``

    @property
    def interactive(self) -> bool:
        return self.profile is None


def _env_choice(name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if value not in choices:
        raise ValueError(f"environment variable {name}={value!r}: must be one of {list(choices)}")
    return value


def context() -> RunContext:
    """The run context from the environment (see the module docstring)."""
    return RunContext(profile=_env_choice(PROFILE_ENV, PROFILES, None), output_dir=paths.output_dir(),
                      models=_env_choice(MODELS_ENV, MODEL_POLICIES, "shipped"),
                      runner=os.environ.get(RUNNER_ENV) == "reports")


def runner_environment(profile: str, *, models: str = "shipped") -> dict[str, str]:
    """The environment the reports runner gives its kernels: the profile, the publish folder
    (:func:`qinn_lib.paths.figures_dir`) as output folder, and the model policy."""
    check_profile(profile)
    if models not in MODEL_POLICIES:
        raise ValueError(f"models must be one of {MODEL_POLICIES}, got {models!r}")
    return {PROFILE_ENV: profile, OUTPUT_DIR_ENV: str(paths.figures_dir(profile)), MODELS_ENV: models,
            RUNNER_ENV: "reports"}


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables inside the block (kernels and threads started there see them),
    restoring the previous values afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(paths.repo_root()))
    except ValueError:
        return str(path)


def _describe(run_cfg: Any) -> str:
    """A run's kind and what tells it from its siblings, e.g. "qinn (mse)", "inn (16k)", "reuploading (2 uploads)"."""
    from .reuploading import upload_label

    detail = (getattr(run_cfg, "invertibility", "") or getattr(run_cfg, "size", "")
              or (upload_label(run_cfg.uploads) if hasattr(run_cfg, "uploads") else ""))
    return f"{run_cfg.kind} ({detail})" if detail else run_cfg.kind


def notebook_config(cls: type, namespace: Mapping[str, Any], *, log=print):
    """The notebook's run configuration: its parameters (taken from ``namespace``, i.e. the
    notebook's ``globals()``) plus the profile, which the notebook does not choose.

    * A quick report made by ``python -m qinn_lib.reports`` (it holds ``qinn_profile``, see
      :data:`INJECTED_PROFILE`): that profile, also when re-executed later.
    * Run by the reports runner (or with ``$QINN_PROFILE`` set): that profile.
    * Run by hand in JupyterLab: the **paper** profile when every model the notebook needs is
      available without training (a shipped model, or a finished run under ``build/runs``), so
      Run All reproduces the committed report in about a minute. If some are not, and the
      parameters are the committed ones, the **quick** profile instead, so that Run All never
      starts hours of training unasked; the printed note says which models are missing and how
      to train them. With parameters of your own the paper profile trains what it must.

    Prints one line saying which profile was chosen, by whom, and where outputs go.
    """
    from . import runs

    import dataclasses

    # Fields added after runs were recorded (``omit_default``) may be absent: they take their default.
    optional = {f.name for f in dataclasses.fields(cls) if f.metadata.get("omit_default")}
    names = [n for n in cls.field_names() if n not in RUNNER_OWNED and (n in namespace or n not in optional)]
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ValueError(f"the notebook's parameters cell lacks {missing} (fields of {cls.__name__})")
    values = {n: namespace[n] for n in names}
    ctx = context()
    note = ""
    injected = namespace.get(INJECTED_PROFILE)
    if injected is not None:
        profile, who = check_profile(injected), "recorded in this report by python -m qinn_lib.reports"
    elif not ctx.interactive:
        profile = ctx.profile
        who = "set by python -m qinn_lib.reports" if ctx.runner else f"set by ${PROFILE_ENV}"
    else:
        profile, who = "paper", "interactive default"
        paper_cfg, defaults = cls(profile="paper", **values), cls(profile="paper")
        needed = runs.notebook_runs(paper_cfg)
        absent = [c for c in needed if runs.availability(c, ctx.models) is None]
        other = runs.missing_work(paper_cfg, ctx.models)  # e.g. notebook 06's search trials
        own = any(getattr(defaults, n) != getattr(paper_cfg, n) for n in names)
        # What is missing, e.g. "39 of the 39 paper-profile models (qinn (mse), ...); search (0 of 8 trials finished)"
        missing = "; ".join(([f"{len(absent)} of the {len(needed)} paper-profile models ("
                              f"{', '.join(sorted({_describe(c) for c in absent}))})"] if absent else []) + other)
        if missing and not own:
            profile = "quick"
            note = (f"this notebook needs work that is neither shipped with the package nor done under build/: "
                    f"{missing}; training it takes from minutes to hours. So this run uses the quick profile (capped "
                    f"counts: {', '.join(f'{k} <= {v}' for k, v in QUICK_CAPS.items())}) and its numbers differ from "
                    f"the committed report. To train the paper models here, start JupyterLab with "
                    f"{PROFILE_ENV}=paper (or run python -m qinn_lib.runs / python -m qinn_lib.shipped refresh).")
        elif missing:
            note = (f"not trained yet for these parameters: {missing}. "
                    "This run trains them in the paper profile (checkpointed under build/, resumable). "
                    f"For a capped trial run, start JupyterLab with {PROFILE_ENV}=quick.")
    cfg = cls(profile=profile, **values)
    from .threads import set_notebook_threads

    set_notebook_threads()  # one torch thread per kernel unless $QINN_THREADS says otherwise (qinn_lib.threads)
    log(f"[qinn] profile {profile} ({who}); models: {ctx.models}; figures and results -> "
        f"{_relative(ctx.output_dir)}/")
    if note:
        log(f"[qinn] note: {note}")
    from .lab import unprotected_session_warning

    warning = unprotected_session_warning()
    if warning:
        log(f"[qinn] warning: {warning}")
    return cfg
