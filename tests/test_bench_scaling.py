"""Smoke test of the qubit-scaling benchmark (qinn_lib.experiments.bench_scaling): tiny sizes, the
table's keys and the crossover logic. No timing is asserted (performance lives in the benchmark)."""

from __future__ import annotations

import pytest

from qinn_lib.evaluation.results import SECTION_SCHEMAS, check_section_values
from qinn_lib.experiments import bench_scaling


def test_run_scaling_tiny_has_every_cell_and_fits_its_schema():
    lines: list[str] = []
    out = bench_scaling.run_scaling(qubits=(3, 4), batch_size=6, n_layers=2, repeats=2, lightning_events=3,
                                    log=lines.append)
    assert out["qubits"] == [3, 4] and set(out["rows"]) == {"3", "4"}
    for key, cells in out["rows"].items():
        assert cells["n_qubits"] == int(key) and cells["preferred"] == "dense"
        for path, pieces in bench_scaling.SCALING_PATHS:
            for piece in pieces:
                assert cells[f"{path} {piece} cpu_ms"] > 0 and cells[f"{path} {piece} wall_ms"] > 0
                assert 1 <= cells[f"{path} {piece} repeats"] <= 2
        assert cells["lightning events"] == 3
        assert cells["lightning max |J - dense J|"] < 1e-4  # the peer computes the same Jacobian
    for key in ("gate_from_step", "gate_from_fwd_jac", "lightning_from_fwd_jac"):
        assert out[key] is None or out[key] in (3, 4)
    check_section_values(out, SECTION_SCHEMAS["bench_scaling"], "bench_scaling")
    assert any("qubit count" in line for line in lines) and any(line.strip().startswith("4 ") for line in lines)


def test_dense_max_qubits_skips_dense_cells_and_bad_arguments_are_named():
    out = bench_scaling.run_scaling(qubits=(2, 3), batch_size=4, n_layers=1, repeats=1, lightning=False,
                                    dense_max_qubits=2, log=lambda _: None)
    assert "dense step cpu_ms" in out["rows"]["2"] and "dense step cpu_ms" not in out["rows"]["3"]
    assert "lightning fwd+J cpu_ms" not in out["rows"]["2"]
    with pytest.raises(ValueError, match="lightning_events"):
        bench_scaling.run_scaling(qubits=(2,), batch_size=4, lightning_events=5)
    with pytest.raises(ValueError, match="repeats >= 1"):
        bench_scaling.run_scaling(qubits=(2,), repeats=0)


def test_crossover_is_the_width_from_which_the_path_wins_at_every_larger_width():
    def rows(dense, gate):
        return {str(n): {"dense step cpu_ms": d, "gate step cpu_ms": g} for n, d, g in zip((4, 6, 8, 10), dense, gate)}

    assert bench_scaling._crossover(rows([1, 2, 8, 64], [3, 4, 6, 20]), "gate", "step") == 8
    assert bench_scaling._crossover(rows([1, 5, 8, 64], [3, 4, 9, 20]), "gate", "step") == 10  # 6 wins, 8 not
    assert bench_scaling._crossover(rows([1, 2, 3, 4], [3, 4, 6, 20]), "gate", "step") is None
