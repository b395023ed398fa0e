"""The QINN's two circuits in Qiskit, gate for gate those of :mod:`qinn_lib.models.qinn.circuits`.

- forward (Fig. 2): R_y(x'_k) on every qubit (eq. 12), then the L layers of U (Rot on every qubit,
  the CNOT ring), measured;
- inverse (Fig. 4, eq. 13-15, 22): Rot(psi_k) on every qubit from |0>, the L' layers of g_Q, then
  U^dagger written gate by gate (layers reversed, each the reversed CNOT ring then
  Rot(-omega, -theta, -phi)), measured.

The trained angles are numbers; the event's angles (x' or psi) are circuit
:class:`~qiskit.circuit.Parameter` s, so a circuit is transpiled once and every event is a set of
parameter values (:mod:`qinn_lib.hardware.ibm.routing`). ``qml.Rot(phi, theta, omega) =
RZ(omega) RY(theta) RZ(phi)``: applied as rz(phi), ry(theta), rz(omega). Qubit k is PennyLane's wire
k and is measured into classical bit k, so P(qubit k = 1) is the share of shots with bit k set
(Qiskit prints bit strings with bit 0 last, PennyLane's basis index has wire 0 first: only full
outcome distributions need the bit order reversed, :func:`pennylane_order`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qinn_lib.hardware.ibm import extra

try:
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
except ImportError as err:  # the optional extra: one line naming the install command
    raise extra.missing_extra(__name__) from err

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["DIRECTIONS", "ring", "forward_circuit", "inverse_circuit", "circuit", "pennylane_order"]

DIRECTIONS = ("forward", "inverse")


def ring(n: int) -> list[tuple[int, int]]:
    """(control, target) of the CNOT ring of Fig. 2, as :func:`qinn_lib.models.qinn.circuits.cnot_ring`."""
    pairs = [(k, k + 1) for k in range(n - 1)]
    return pairs + [(n - 1, 0)] if n >= 2 else pairs


def _rot(qc: QuantumCircuit, phi, theta, omega, q: int) -> None:
    qc.rz(phi, q)
    qc.ry(theta, q)
    qc.rz(omega, q)


def _layers(qc: QuantumCircuit, weights: np.ndarray) -> None:
    n = weights.shape[1]
    for layer in weights:
        for k in range(n):
            _rot(qc, *(float(v) for v in layer[k]), k)
        for control, target in ring(n):
            qc.cx(control, target)


def _adjoint_layers(qc: QuantumCircuit, weights: np.ndarray) -> None:
    n = weights.shape[1]
    for layer in weights[::-1]:
        for control, target in reversed(ring(n)):
            qc.cx(control, target)
        for k in range(n):
            phi, theta, omega = (float(v) for v in layer[k])
            _rot(qc, -omega, -theta, -phi, k)  # Rot^dagger (eq. 14)


def _weights(t) -> np.ndarray:
    return t.detach().to("cpu").double().numpy()


def forward_circuit(model: "QINN") -> QuantumCircuit:
    """Encoding R_y(x'), U, measurement; parameters ``x[0..n-1]`` are the encoded angles x' = a x + pi b."""
    n = model.n_features
    x = ParameterVector("x", n)
    qc = QuantumCircuit(n, n, name="qinn_forward")
    for k in range(n):
        qc.ry(x[k], k)
    _layers(qc, _weights(model.weights))
    qc.measure(range(n), range(n))
    return qc


def inverse_circuit(model: "QINN") -> QuantumCircuit:
    """ISP preparation Rot(psi), g_Q, U^dagger, measurement; parameters ``psi[3k + j]`` are the
    ISP angles of qubit k (qubit-major, as ``circuits.isp_preparation``)."""
    n = model.n_features
    psi = ParameterVector("psi", 3 * n)
    qc = QuantumCircuit(n, n, name="qinn_inverse")
    for k in range(n):
        _rot(qc, psi[3 * k], psi[3 * k + 1], psi[3 * k + 2], k)
    _layers(qc, _weights(model.isp_weights))
    _adjoint_layers(qc, _weights(model.weights))
    qc.measure(range(n), range(n))
    return qc


def circuit(model: "QINN", direction: str) -> QuantumCircuit:
    """:func:`forward_circuit` or :func:`inverse_circuit`."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return forward_circuit(model) if direction == "forward" else inverse_circuit(model)


def pennylane_order(probs_qiskit: np.ndarray) -> np.ndarray:
    """Outcome probabilities indexed by a Qiskit integer (bit k = qubit k, little-endian) reordered
    to PennyLane's (wire 0 most significant): the bits of every index reversed; ``(..., 2^n)``."""
    probs_qiskit = np.asarray(probs_qiskit)
    n = probs_qiskit.shape[-1].bit_length() - 1
    idx = np.arange(1 << n)
    rev = np.zeros_like(idx)
    for k in range(n):
        rev |= ((idx >> k) & 1) << (n - 1 - k)
    return probs_qiskit[..., rev]
