"""Route a QINN circuit onto a device once: Qiskit's transpiler with the device's coupling map and
native gates, and what the routed circuit costs.

The QINN's CNOT ring (Fig. 2) closes a loop of 5 qubits; IBM's heavy-hex lattice has no such loop
(its shortest cycles have 12 qubits), so the transpiler has to move qubits with SWAPs (3 native
two-qubit gates each) and rewrite every gate in the native set (CZ or ECR plus sqrt(X) and Rz):
the 60 logical CNOTs of the forward circuit become about three times as many native two-qubit
gates. ``optimization_level=3`` chooses the qubits by their calibrated errors (VF2 post-layout)
and merges single-qubit gates. PennyLane's ``qiskit.aer`` device cannot be used for this: it
transpiles with ``routing_method="none"`` and fails once a coupling map is given, and without the
coupling map the noise model applies two-qubit errors only where qubits happen to be coupled.

The event's angles stay :class:`~qiskit.circuit.Parameter` s, so :func:`route` runs once per
circuit, backend and seed (cached in the process) and every event only binds its values.
:func:`routed_resources` counts the routed circuit: native two-qubit gates, single-qubit gates,
depth, two-qubit depth and the duration along the critical path from the calibrated gate durations.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from qinn_lib.errors import QinnError
from qinn_lib.hardware.ibm import extra
from qinn_lib.hardware.ibm.backends import two_qubit_gate

try:
    from qiskit import QuantumCircuit, qasm3, transpile
except ImportError as err:  # the optional extra: one line naming the install command
    raise extra.missing_extra(__name__) from err

__all__ = ["CircuitTooWideError", "Routed", "route", "routed_resources", "circuit_key"]


class CircuitTooWideError(QinnError, ValueError):
    """A circuit with more qubits than the backend has."""


@dataclass(frozen=True)
class Routed:
    """A circuit routed onto ``backend``: ``circuit`` on the device's physical qubits, ``order``
    (index into the logical parameters of each of ``circuit.parameters``, in Qiskit's order),
    ``measured`` (the physical qubit read into classical bit k), ``key`` (content hash of the
    logical circuit, the backend and the transpiler settings) and the seconds the transpiler took."""

    name: str
    backend: str
    circuit: QuantumCircuit
    n_logical_parameters: int
    order: tuple[int, ...]
    measured: tuple[int, ...]
    key: str
    seconds: float

    def bind_order(self, values: np.ndarray) -> np.ndarray:
        """Logical parameter values ``(B, k)`` in the order the routed circuit wants them."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_logical_parameters:
            raise ValueError(f"{self.name}: parameter values must have shape (events, {self.n_logical_parameters}), "
                             f"got {values.shape}")
        return values[:, list(self.order)]


def circuit_key(qc: QuantumCircuit) -> str:
    """Content hash of a circuit (its OpenQASM 3 text, parameters included)."""
    return hashlib.sha256(qasm3.dumps(qc).encode()).hexdigest()[:16]


_CACHE: dict[tuple, Routed] = {}


def route(qc: QuantumCircuit, backend, *, seed: int, optimization_level: int = 3) -> Routed:
    """``qc`` transpiled for ``backend`` (coupling map, native gates, calibrated errors), once per
    process for the same circuit, backend, seed and level. A circuit wider than the backend is a
    :class:`CircuitTooWideError`."""
    if qc.num_qubits > backend.num_qubits:
        raise CircuitTooWideError(f"the {qc.name} circuit needs {qc.num_qubits} qubits, backend {backend.name} "
                                  f"has {backend.num_qubits}: choose a larger backend (or a model with fewer features)")
    logical = circuit_key(qc)
    cache_key = (logical, backend.name, backend.backend_version, int(seed), int(optimization_level))
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    start = time.perf_counter()
    routed = transpile(qc, backend=backend, optimization_level=optimization_level, seed_transpiler=int(seed))
    seconds = time.perf_counter() - start
    index = {p.name: i for i, p in enumerate(qc.parameters)}
    missing = [p.name for p in routed.parameters if p.name not in index]
    if missing:  # pragma: no cover - the transpiler renames no parameter
        raise QinnError(f"routing {qc.name} for {backend.name} produced unknown parameters {missing}")
    measured = [-1] * qc.num_clbits
    for inst in routed.data:
        if inst.operation.name == "measure":
            measured[routed.find_bit(inst.clbits[0]).index] = routed.find_bit(inst.qubits[0]).index
    key = hashlib.sha256(repr(cache_key).encode()).hexdigest()[:16]
    out = Routed(qc.name, backend.name, routed, len(qc.parameters), tuple(index[p.name] for p in routed.parameters),
                 tuple(measured), key, seconds)
    _CACHE[cache_key] = out
    return out


def _active_qubits(qc: QuantumCircuit) -> list[int]:
    return sorted({qc.find_bit(q).index for inst in qc.data if inst.operation.name != "barrier" for q in inst.qubits})


def routed_resources(routed: Routed, backend) -> dict[str, Any]:
    """Counts of the routed circuit: ``native_2q`` (the backend's two-qubit gate), ``native_1q``,
    ``depth``, ``depth_2q`` (layers of two-qubit gates), ``duration_us`` (critical path with the
    calibrated durations, measurement included), ``physical_qubits`` (every qubit a gate touches),
    ``transpile_seconds``."""
    qc = routed.circuit
    gate = two_qubit_gate(backend)
    ops = qc.count_ops()
    one_q = sum(c for name, c in ops.items() if name not in (gate, "measure", "barrier", "delay", "reset"))
    try:
        duration = float(qc.estimate_duration(backend.target, unit="s")) * 1e6
    except Exception:  # noqa: BLE001 - a backend without durations: no estimate
        duration = float("nan")
    return {
        "circuit": routed.name, "backend": routed.backend, "two_qubit_gate": gate,
        "native_2q": int(ops.get(gate, 0)), "native_1q": int(one_q), "depth": int(qc.depth()),
        "depth_2q": int(qc.depth(lambda inst: inst.operation.num_qubits == 2)),
        "duration_us": duration, "physical_qubits": _active_qubits(qc), "measured": list(routed.measured),
        "transpile_seconds": float(routed.seconds),
    }
