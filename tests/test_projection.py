"""The paper-profile projection (qinn_lib.experiments.projection): the benchmark's plans and the
bound it prints for issue 20's target (the INN runs alone, every quantum step free)."""

from __future__ import annotations

import pytest

from qinn_lib.experiments.projection import project_paper_profile

STEP_MS = {"qinn": 3.0, "reuploading": 3.7, "inn 2k": 4.9, "inn 6k": 12.0, "inn 16k": 11.6}


def test_the_cost_scales_with_the_step_times():
    one = project_paper_profile(STEP_MS)
    two = project_paper_profile({k: 2 * v for k, v in STEP_MS.items()})
    assert two["core_hours"] == pytest.approx(2 * one["core_hours"])
    assert (two["runs"], two["jobs"]) == (one["runs"], one["jobs"])


def test_free_quantum_steps_leave_the_inn_runs_as_a_bound():
    full = project_paper_profile(STEP_MS)
    inn_only = project_paper_profile(dict(STEP_MS, qinn=0.0, reuploading=0.0))
    no_inn = project_paper_profile({**STEP_MS, "inn 2k": 0.0, "inn 6k": 0.0, "inn 16k": 0.0})
    assert 0 < inn_only["wall_minutes"] < full["wall_minutes"]
    assert inn_only["core_hours"] + no_inn["core_hours"] == pytest.approx(full["core_hours"])
    # two workers: the wall time is at least half the core time, and no less than the longest job
    assert inn_only["wall_minutes"] >= inn_only["core_hours"] * 60 / 2 - 1e-9


def test_notebook_06s_full_plan_has_more_runs():
    assert project_paper_profile(STEP_MS, full_diagnosis=True)["runs"] > project_paper_profile(STEP_MS)["runs"]
