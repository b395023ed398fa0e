"""How a running notebook gets its configuration: :func:`notebook_config`.

A notebook's ``parameters`` cell holds the fields of its run-configuration class except
``profile`` (:data:`RUNNER_OWNED`), which is *not* a notebook parameter. :func:`notebook_config`
adds it: the reports runner (``python -m qinn_lib.reports --profile ...``) sets it for its kernels
through the environment (or records it in a quick report, :data:`INJECTED_PROFILE`), and a
notebook run by hand in JupyterLab gets the interactive default, which reproduces the committed
report from the shipped models (and falls back to the quick profile rather than start hours of
training unasked). It also says where the notebook writes, and for every model the notebook needs
whether it was shipped with the package, trained just now by the reports runner, reloaded from an
earlier run or is still to be trained (:func:`model_provenance`). Warnings in a kernel are
printed without this machine's paths (:func:`kernel_warning_format`).

The environment variables and the run context are :mod:`qinn_lib.settings`; the quick profile's
caps are :mod:`qinn_lib.training.budget`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from qinn_lib import paths
from qinn_lib.experiments import one_model, plans
from qinn_lib.experiments.plans import upload_label
from qinn_lib.notebook.lab import unprotected_session_warning
from qinn_lib.settings import INJECTED_PROFILE, PROFILE_ENV, RUNNER_OWNED, check_profile, context, trained_by_runner
from qinn_lib.threads import set_notebook_threads
from qinn_lib.training.budget import QUICK_CAPS


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(paths.repo_root()))
    except ValueError:
        return str(path)


def _describe(run_cfg: Any) -> str:
    """A run's kind and what tells it from its siblings, e.g. "qinn (mse)", "inn (16k)", "reuploading (2 uploads)"."""
    detail = (getattr(run_cfg, "invertibility", "") or getattr(run_cfg, "size", "")
              or (upload_label(run_cfg.uploads) if hasattr(run_cfg, "uploads") else ""))
    return f"{run_cfg.kind} ({detail})" if detail else run_cfg.kind


#: How a run the notebook needs is had (see :func:`model_provenance`), in the order they are listed.
_PROVENANCE = {
    "shipped": "shipped with the package (loaded, not trained)",
    "now": "trained just now by python -m qinn_lib.reports for this report",
    "earlier": "reloaded from a finished run under build/runs (trained earlier)",
    None: "to be trained by this notebook (checkpointed under build/runs)",
}


def model_provenance(runs: list[Any], models: str, availability: Callable[[Any], str | None] | None = None) -> str:
    """One sentence on how each of ``runs`` is had: shipped, trained just now by the reports runner
    (:func:`qinn_lib.settings.trained_by_runner`), reloaded from an earlier run, or still to train;
    e.g. ``"1 of 1 trained just now by python -m qinn_lib.reports for this report (qinn (mse))"``.
    ``availability(cfg)`` defaults to :func:`qinn_lib.experiments.one_model.availability`."""
    availability = availability or (lambda c: one_model.availability(c, models))
    now = trained_by_runner()
    groups: dict[str | None, list[Any]] = {}
    for c in runs:
        how = availability(c)
        if how == "trained":
            how = "now" if one_model.run_key(c) in now else "earlier"
        groups.setdefault(how, []).append(c)
    parts = [f"{len(groups[how])} of {len(runs)} {text} ({', '.join(sorted({_describe(c) for c in groups[how]}))})"
             for how, text in _PROVENANCE.items() if how in groups]
    policy = "" if models == "shipped" else f" (QINN_MODELS={models}: shipped models are not used)"
    return "; ".join(parts) + policy


def kernel_warning_format(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` for notebook kernels: ``Category: message`` with the place only
    where it helps and without this machine's paths (a report is read elsewhere): nothing for a
    notebook cell (ipykernel's temporary file), the path from the repository root for the
    package, from ``site-packages/`` on for other libraries."""
    name = str(filename)
    if "ipykernel_" in name or name.startswith("<"):
        where = ""
    elif "site-packages/" in name:
        where = f"{name.split('site-packages/', 1)[1]}:{lineno}: "
    else:
        where = f"{_relative(Path(name))}:{lineno}: "
    return f"{where}{category.__name__}: {message}\n"


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
    known: dict[str, str | None] = {}

    def available(c: Any) -> str | None:  # asked once per run, for the profile choice and the models line
        key = one_model.run_key(c)
        if key not in known:
            known[key] = one_model.availability(c, ctx.models)
        return known[key]

    injected = namespace.get(INJECTED_PROFILE)
    if injected is not None:
        profile, who = check_profile(injected), "recorded in this report by python -m qinn_lib.reports"
    elif not ctx.interactive:
        profile = ctx.profile
        who = "set by python -m qinn_lib.reports" if ctx.runner else f"set by ${PROFILE_ENV}"
    else:
        profile, who = "paper", "interactive default"
        paper_cfg, defaults = cls(profile="paper", **values), cls(profile="paper")
        needed = plans.notebook_runs(paper_cfg)
        absent = [c for c in needed if available(c) is None]
        other = plans.missing_work(paper_cfg, ctx.models)  # e.g. notebook 06's search trials
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

    set_notebook_threads()  # one torch thread per kernel unless $QINN_THREADS says otherwise (qinn_lib.threads)
    warnings.formatwarning = kernel_warning_format
    log(f"[qinn] profile {profile} ({who}); figures and results -> {_relative(ctx.output_dir)}/")
    if note:
        log(f"[qinn] note: {note}")
    runs = plans.notebook_runs(cfg)
    if runs:
        log(f"[qinn] models: {model_provenance(runs, ctx.models, available)}")

    warning = unprotected_session_warning()
    if warning:
        log(f"[qinn] warning: {warning}")
    return cfg
