"""OpenQASM export of the trained QINN's circuits, so they can be run anywhere.

- OpenQASM 2 (:func:`qasm2`): PennyLane's ``qml.to_openqasm`` of the reference circuits of
  :mod:`qinn_lib.models.qinn.circuits` with one event's angles baked in (QASM 2 has no inputs):
  the forward circuit for encoded angles x', the inverse circuit for ISP angles psi. Angles are
  written with full double precision.
- OpenQASM 3 (:func:`qasm3`): Qiskit's exporter of the circuits of
  :mod:`qinn_lib.hardware.ibm.qiskit_circuits`, the event's angles kept as ``input float[64]``
  (named ``_x_k_`` or ``_psi_j_``, j = 3k + component), so one file serves every event; :func:`routed_qasm3` exports a
  circuit already routed for a backend (physical qubits, native gates) as it would be submitted.
- :func:`export` writes all four files for one event (atomically).

Bit order: a QASM 2 program measures ``q[k] -> c[k]``; loaded in Qiskit, outcome probabilities
are indexed little-endian (bit k = qubit k), PennyLane's big-endian (wire 0 first):
:func:`qinn_lib.hardware.ibm.qiskit_circuits.pennylane_order` converts (tests/test_ibm_devices.py
reproduces PennyLane's probabilities from the exported files).

With IBM credentials, the routed circuits of :class:`~qinn_lib.hardware.ibm.backend_qinn.BackendQINN`
go to a device through ``qiskit_ibm_runtime.SamplerV2(mode=backend)`` unchanged (its
``sampler_factory``); that path is documented, not tested here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pennylane as qml
import torch

from qinn_lib.atomic import atomic_write_text
from qinn_lib.hardware.ibm import extra, qiskit_circuits
from qinn_lib.hardware.ibm.routing import Routed
from qinn_lib.models.qinn import circuits

try:
    from qiskit import qasm3 as qiskit_qasm3
except ImportError as err:  # the optional extra: one line naming the install command
    raise extra.missing_extra(__name__) from err

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["probs_qnode", "qasm2", "qasm3", "routed_qasm3", "export"]


def probs_qnode(model: "QINN", direction: str):
    """A ``default.qubit`` QNode ``angles -> qml.probs()`` of one QINN circuit, built from the
    reference quantum functions, the trained weights as constants (float64)."""
    n = model.n_features
    wires = list(range(n))
    w = model.weights.detach().to(torch.float64).cpu()
    wi = model.isp_weights.detach().to(torch.float64).cpu()

    def forward(angles):
        circuits.state_preparation(angles, wires)
        circuits.model_circuit(w, wires)
        return qml.probs(wires=wires)

    def inverse(angles):
        circuits.isp_preparation(angles, wires)
        circuits.isp_circuit(wi, wires)
        circuits.model_circuit_adjoint(w, wires)
        return qml.probs(wires=wires)

    if direction not in qiskit_circuits.DIRECTIONS:
        raise ValueError(f"direction must be one of {qiskit_circuits.DIRECTIONS}, got {direction!r}")
    return qml.QNode(forward if direction == "forward" else inverse, qml.device("default.qubit", wires=n))


def _one_event(model: "QINN", direction: str, angles) -> torch.Tensor:
    width = model.n_features * (1 if direction == "forward" else 3)
    a = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if a.numel() != width:
        raise ValueError(f"the {direction} circuit takes {width} angles for one event, got {a.numel()}")
    return a


def qasm2(model: "QINN", direction: str, angles) -> str:
    """OpenQASM 2 of the ``direction`` circuit with one event's ``angles`` (x' for the forward
    circuit, the 3n ISP angles psi for the inverse one) baked in; measures every qubit."""
    return qml.to_openqasm(probs_qnode(model, direction), measure_all=True)(_one_event(model, direction, angles))


def qasm3(model: "QINN", direction: str) -> str:
    """OpenQASM 3 of the ``direction`` circuit with the event's angles as inputs."""
    return qiskit_qasm3.dumps(qiskit_circuits.circuit(model, direction))


def routed_qasm3(routed: Routed) -> str:
    """OpenQASM 3 of a circuit routed for a backend (physical qubits, native gates), angles as inputs."""
    return qiskit_qasm3.dumps(routed.circuit)


def export(model: "QINN", folder: str | Path, *, x_prime, psi) -> list[Path]:
    """Write ``forward.qasm`` and ``inverse.qasm`` (OpenQASM 2, the event's x' and psi baked in) and
    ``forward.qasm3``, ``inverse.qasm3`` (angles as inputs) into ``folder``; returns the paths."""
    folder = Path(folder)
    files = {"forward.qasm": qasm2(model, "forward", x_prime), "inverse.qasm": qasm2(model, "inverse", psi),
             "forward.qasm3": qasm3(model, "forward"), "inverse.qasm3": qasm3(model, "inverse")}
    return [atomic_write_text(folder / name, text) for name, text in files.items()]
