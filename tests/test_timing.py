"""The benchmarks' shared timing loop (qinn_lib.experiments.timing) and the lockstep benchmark on it."""

from __future__ import annotations

import pytest

from qinn_lib.experiments.timing import interleaved_times


def test_steps_take_turns_within_each_round_with_warm_up_calls():
    calls: list[str] = []
    steps = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    wall, cpu = interleaved_times(steps, repeats=4, rounds=2)
    # round 1: 3 warm-up + 2 timed per step; round 2: 1 warm-up + 2 timed per step
    assert calls == ["a"] * 5 + ["b"] * 5 + ["a"] * 3 + ["b"] * 3
    assert {k: len(v) for k, v in wall.items()} == {"a": 4, "b": 4} == {k: len(v) for k, v in cpu.items()}
    assert all(t >= 0 for v in wall.values() for t in v)


@pytest.mark.parametrize("repeats, rounds", [(2, 3), (5, 0)])
def test_too_few_repeats_for_the_rounds_is_refused(repeats, rounds):
    with pytest.raises(ValueError, match="repeats"):
        interleaved_times({"a": lambda: None}, repeats=repeats, rounds=rounds)


def test_the_lockstep_benchmark_reports_every_stack_size_eagerly():
    from qinn_lib.experiments.bench_lockstep import run_lockstep

    out = run_lockstep(ks=(1, 2), repeats=2, rounds=1, batch_size=16, compile=False, log=lambda *_: None)
    rows = out["rows"].values()
    assert sorted((r["mode"], r["k"]) for r in rows) == [("eager", 1), ("eager", 2)]
    assert all(r["per_model_ms_min"] > 0 for r in rows)
