"""The measured wall time of the paper-profile reports, recorded by the reports runner.

Every paper-profile run of ``python -m qinn_lib.reports`` (the default reports, not a run with
parameters of its own) records how long each notebook took and how long the training before them
took, in the section ``report_durations`` of the profile's results file. The README renders it, so
the duration it states is the one last measured, not a figure written by hand. A run of some
notebooks (``--only``) updates their entries and keeps the others'."""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any

from qinn_lib.evaluation.results import load_results, record

SECTION = "report_durations"


def _load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # not every platform has one
        return "n/a"


def record_notebook(profile: str, stem: str, seconds: float, *, models: str, trained_runs: int) -> None:
    """Record that notebook ``stem`` ran for ``seconds`` of wall time, with the models mode in force
    (``shipped`` or ``train``) and how many runs its batch had to train first."""
    old = load_results(profile).get(SECTION, {})
    notebooks = dict(old.get("notebooks", {}))
    notebooks[stem] = {"seconds": float(seconds), "models": str(models), "trained_runs": int(trained_runs),
                       "date": _dt.date.today().isoformat(), "load_average": _load_average()}
    values: dict[str, Any] = {"notebooks": dict(sorted(notebooks.items()))}
    if "training" in old:
        values["training"] = old["training"]
    record(SECTION, values, profile)


def record_training(profile: str, seconds: float, *, runs: int) -> None:
    """Record the runner's training phase (every planned run not yet trained, as Dask jobs)."""
    old = load_results(profile).get(SECTION, {})
    values: dict[str, Any] = {"notebooks": old.get("notebooks", {}),
                              "training": {"seconds": float(seconds), "runs": int(runs),
                                           "date": _dt.date.today().isoformat(), "load_average": _load_average()}}
    record(SECTION, values, profile)


def render(section: dict[str, Any] | None) -> list[str]:
    """README lines: one row per notebook and the total."""
    if not section or not section.get("notebooks"):
        return []
    rows = section["notebooks"]
    lines = ["**Measured wall time of the paper-profile reports** (`.venv/bin/python -m qinn_lib.reports --profile paper`, "
             "as last run; 2 CPU cores; load average at the end of each notebook):", "",
             "| notebook | wall time | models | runs trained first | date | load average |",
             "| --- | --- | --- | --- | --- | --- |"]
    for stem, r in rows.items():
        lines.append(f"| {stem} | {r['seconds'] / 60:.1f} min | {r['models']} | {r['trained_runs']} | {r['date']} | "
                     f"{r['load_average']} |")
    total = sum(r["seconds"] for r in rows.values())
    lines.append(f"| **all {len(rows)} notebooks** | **{total / 60:.1f} min** | | | | |")
    training = section.get("training")
    if training:
        lines += ["", f"Training before the notebooks in that run: {training['runs']} run(s) in "
                      f"{training['seconds'] / 60:.1f} min ({training['date']}, load average {training['load_average']})."]
    lines.append("")
    return lines
