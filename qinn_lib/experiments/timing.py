"""Step timings measured side by side: the timing loop the benchmarks share.

Why interleaved rounds: on a shared two-core machine the load drifts during a benchmark; timing
every contender in each of several rounds (instead of one contender after another) exposes them
to the same drift, so their ratio is fair even when the absolute numbers move.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Mapping

__all__ = ["interleaved_times"]


def interleaved_times(steps: Mapping[Hashable, Callable[[], object]], repeats: int,
                      rounds: int) -> tuple[dict[Hashable, list[float]], dict[Hashable, list[float]]]:
    """``(wall, cpu)``: seconds per call of every step in ``steps``, ``repeats // rounds`` timed
    calls per round and step, the steps taking turns within each round; 3 untimed warm-up calls
    per step in the first round, 1 in each later one (after the other steps ran in between)."""
    if rounds < 1 or repeats < rounds:
        raise ValueError(f"need rounds >= 1 and repeats >= rounds, got repeats={repeats}, rounds={rounds}")
    wall: dict[Hashable, list[float]] = {key: [] for key in steps}
    cpu: dict[Hashable, list[float]] = {key: [] for key in steps}
    per_round = repeats // rounds
    for r in range(rounds):
        for key, step in steps.items():
            for _ in range(3 if r == 0 else 1):
                step()
            for _ in range(per_round):
                t0, c0 = time.perf_counter(), time.process_time()
                step()
                wall[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
    return wall, cpu
