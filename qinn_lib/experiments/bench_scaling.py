"""Benchmark the QINN's forward map, Jacobian and NLL backward against the number of qubits.

Part of ``python -m qinn_lib.bench --scaling`` (off by default: minutes). For each width n the
model circuit of Fig. 2 (L = 12 layers, float32, batch 128 of random angles in [0, pi]) is timed
along three exact simulations in the same run, on one torch thread:

- **dense**: :meth:`QINN.forward_and_logdet` (U built once per call, a batch is one matmul);
- **gate**: :func:`qinn_lib.models.qinn.statevector.forward_and_logdet` (gate by gate, adjoint backward);
- **lightning**: PennyLane ``lightning.qubit`` with ``diff_method="adjoint"``, the Jacobian
  dP/dx' as n vector-Jacobian products over the batch (one adjoint Jacobian per event, cached).

Two pieces are timed: ``fwd+J`` (z and the full Jacobian dz/dx, eq. 5-7) for all three, and
``step`` (``forward_and_logdet`` plus backward of the NLL's mean, eq. 7) for dense and gate.
Lightning has no ``step``: its adjoint method gives first derivatives only, and the NLL's
backward needs d(log det J)/dweights, a second derivative; its ``fwd+J`` is therefore a lower
bound on what a lightning training step would cost. Each cell is timed ``repeats`` times or
until ``max_seconds`` of timing (at least once); min process CPU time (``time.process_time``;
with one thread what the work costs this core on a shared machine) and min wall time are
reported. The crossover is the smallest measured width from which gate (or lightning) is
faster than dense at every larger measured width. No number is asserted: a measurement.

Measured here (2-core machine shared with a training run, torch 2.13, one thread; CPU ms, min of
up to 3; lightning float64 on the whole batch), 2026-12-03:

    qubits   dense step   gate step   dense fwd+J   gate fwd+J   lightning fwd+J
       4          1.6         4.9          0.5          1.1           616
       8         64.2       177.1         23.2         29.7          1438
       9        333.4       421.5        132.3         76.8          1695
      10         2386        1153          792          184          2095
      11        16439        4014         5332          590          2642
      12       123665       18866        39436         4129          3729

The dense unitary stops paying at 9 (fwd+J) to 10 (step) qubits; lightning's fwd+J beats dense
from 11 and the gate-by-gate fwd+J at 12.
:data:`qinn_lib.models.qinn.path_by_width.GATE_FROM_QUBITS` = 10 is set from the step column.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch

from qinn_lib.models.qinn import statevector
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.path_by_width import preferred_path
from qinn_lib.threads import torch_threads

__all__ = ["run_scaling", "SCALING_PATHS"]

#: (path, pieces it is timed for)
SCALING_PATHS = (("dense", ("fwd+J", "step")), ("gate", ("fwd+J", "step")), ("lightning", ("fwd+J",)))


def _nll_step(forward_and_logdet: Callable, model: QINN, x: torch.Tensor) -> Callable[[], None]:
    """The NLL's pieces (eq. 7): forward with log det, backward of the batch mean."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        z, logdet = forward_and_logdet(model, x)
        (0.5 * z.square().sum(1) - logdet).mean().backward()
    return step


def _fwd_jac(forward_and_jacobian: Callable, model: QINN, x: torch.Tensor) -> Callable[[], None]:
    def fwd() -> None:
        with torch.no_grad():
            forward_and_jacobian(model, x)
    return fwd


def _lightning_jacobian(model: QINN) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(z, dz/dx) of ``model`` through a ``lightning.qubit`` QNode with adjoint differentiation."""
    import pennylane as qml  # deferred: PennyLane (~1.3 s to import), only with the lightning peer

    from qinn_lib.models.qinn.circuits import model_circuit, state_preparation  # deferred: imports PennyLane

    n = model.n_features
    wires = list(range(n))
    dev = qml.device("lightning.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="adjoint")
    def circuit(angles, weights):
        state_preparation(angles, wires)
        model_circuit(weights, wires)
        return [qml.expval(qml.PauliZ(w)) for w in wires]  # P(1) = (1 - <Z>) / 2

    def forward_and_jacobian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = (t.detach().double() for t in model.clamped_ab())
        angles = (a * x.double() + math.pi * b).requires_grad_(True)
        probs = 0.5 * (1.0 - torch.stack(circuit(angles, model.weights.detach().double()), -1))
        rows = [torch.autograd.grad(probs[:, k].sum(), angles, retain_graph=k < n - 1)[0] for k in range(n)]
        c = model.c.detach().double()
        return (c * probs + model.d.detach().double()).detach(), torch.stack(rows, 1) * (c[:, None] * a)

    return forward_and_jacobian


def _time_cell(fn: Callable[[], None], repeats: int, max_seconds: float) -> dict:
    cpu, wall = [], []
    while len(cpu) < repeats and (not cpu or sum(wall) < max_seconds):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"cpu_ms": 1e3 * min(cpu), "wall_ms": 1e3 * min(wall), "repeats": len(cpu)}


def _crossover(rows: dict, path: str, piece: str) -> int | None:
    """Smallest measured width from which ``path`` beats dense (CPU ms of ``piece``) at every larger width."""
    widths = sorted(int(k) for k in rows)
    best = None
    for n in reversed(widths):
        cells = rows[str(n)]
        other, dense = cells.get(f"{path} {piece} cpu_ms"), cells.get(f"dense {piece} cpu_ms")
        if other is None or dense is None or other >= dense:
            break
        best = n
    return best


def run_scaling(qubits: Sequence[int] = (4, 6, 8, 10, 12), *, batch_size: int = 128, n_layers: int = 12,
                repeats: int = 3, max_seconds: float = 20.0, lightning: bool = True,
                lightning_events: int | None = None, dense_max_qubits: int | None = None, seed: int = 0,
                threads: int | None = 1, log=print) -> dict:
    """Time fwd+J and the NLL step against the number of qubits for dense, gate and lightning.

    ``lightning_events``: time lightning on this many events and scale to ``batch_size`` (its
    cost is per event: the batch is split into one circuit per event); None = the whole batch.
    ``dense_max_qubits``: skip the dense path above this width (None: time every width).
    Returns ``{"rows": {str(n): {...}}, ...}`` with keys ``"<path> <piece> cpu_ms"`` / ``wall_ms``
    / ``repeats`` per measured cell, and the crossovers."""
    if repeats < 1 or max_seconds <= 0 or batch_size < 1 or n_layers < 1:
        raise ValueError(f"need repeats >= 1, max_seconds > 0, batch_size >= 1, n_layers >= 1; got "
                         f"{repeats}, {max_seconds}, {batch_size}, {n_layers}")
    if lightning_events is not None and not 1 <= lightning_events <= batch_size:
        raise ValueError(f"lightning_events must be None or in [1, batch_size={batch_size}], got {lightning_events}")
    with torch_threads(threads):
        rows: dict[str, dict] = {}
        gen = torch.Generator().manual_seed(seed)
        for n in qubits:
            model = QINN(n, n_layers, 1, seed=seed)
            x = torch.rand(batch_size, n, generator=gen) * math.pi
            cells: dict = {"n_qubits": n, "preferred": preferred_path(n)}
            paths = {"dense": (QINN.forward_and_jacobian, QINN.forward_and_logdet),
                     "gate": (statevector.forward_and_jacobian, statevector.forward_and_logdet)}
            for path, (fwd_jac, fwd_logdet) in paths.items():
                if path == "dense" and dense_max_qubits is not None and n > dense_max_qubits:
                    continue
                for piece, fn in (("fwd+J", _fwd_jac(fwd_jac, model, x)), ("step", _nll_step(fwd_logdet, model, x))):
                    res = _time_cell(fn, repeats, max_seconds)
                    for key, value in res.items():
                        cells[f"{path} {piece} {key}"] = value
            if lightning:
                events = batch_size if lightning_events is None else lightning_events
                jac = _lightning_jacobian(model)
                z_l, j_l = jac(x[:events])
                with torch.no_grad():
                    z_d, j_d = model.forward_and_jacobian(x[:events])
                # sanity check of the peer: same function (float32 dense vs float64 lightning)
                cells["lightning max |J - dense J|"] = float((j_l - j_d.double()).abs().max())
                res = _time_cell(lambda: jac(x[:events]), repeats, max_seconds)
                scale = batch_size / events
                cells["lightning fwd+J cpu_ms"] = res["cpu_ms"] * scale
                cells["lightning fwd+J wall_ms"] = res["wall_ms"] * scale
                cells["lightning fwd+J repeats"] = res["repeats"]
                cells["lightning events"] = events
            rows[str(n)] = cells
            log(_row_line(cells))
    out = {"qubits": [int(n) for n in qubits], "batch_size": batch_size, "n_layers": n_layers,
           "threads": 1 if threads is None else threads, "rows": rows,
           "gate_from_step": _crossover(rows, "gate", "step"), "gate_from_fwd_jac": _crossover(rows, "gate", "fwd+J"),
           "lightning_from_fwd_jac": _crossover(rows, "lightning", "fwd+J")}
    _log_table(out, log)
    return out


def _fmt(cells: dict, key: str) -> str:
    value = cells.get(key)
    return f"{value:10.1f}" if value is not None else f"{'-':>10}"


_COLUMNS = (("dense step", "dense step cpu_ms"), ("gate step", "gate step cpu_ms"),
            ("dense fwd+J", "dense fwd+J cpu_ms"), ("gate fwd+J", "gate fwd+J cpu_ms"),
            ("lightning fwd+J", "lightning fwd+J cpu_ms"))


def _row_line(cells: dict) -> str:
    return f"  {cells['n_qubits']:>2} qubits: " + " ".join(_fmt(cells, key) for _, key in _COLUMNS)


def _log_table(out: dict, log) -> None:
    log(f"QINN step time against qubit count (L = {out['n_layers']} layers, batch {out['batch_size']}, float32, "
        f"{out['threads']} thread; CPU ms, min over repeats; lightning: adjoint, float64, fwd+J only):")
    log("  qubits " + " ".join(f"{name:>15}" for name, _ in _COLUMNS) + "   wall: dense step, gate step")
    for key in sorted(out["rows"], key=int):
        cells = out["rows"][key]
        lightning_note = ("" if cells.get("lightning events", out["batch_size"]) == out["batch_size"]
                          else f"   (lightning: {cells['lightning events']} events, scaled)")
        log(f"  {int(key):>6} " + " ".join(f"{_fmt(cells, k):>15}" for _, k in _COLUMNS)
            + f"   {_fmt(cells, 'dense step wall_ms')} {_fmt(cells, 'gate step wall_ms')}{lightning_note}")
    for label, key in (("gate beats dense (step)", "gate_from_step"), ("gate beats dense (fwd+J)", "gate_from_fwd_jac"),
                       ("lightning beats dense (fwd+J)", "lightning_from_fwd_jac")):
        value = out[key]
        log(f"  {label}: " + (f"from {value} qubits on (of the widths measured)" if value is not None
                              else "at no measured width up to the largest"))
