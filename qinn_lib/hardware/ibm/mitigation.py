"""Readout-error mitigation: a per-qubit calibration matrix, measured, then inverted.

A device misreads a qubit: prepared in |0> it reads 1 with probability e01, prepared in |1> it
reads 0 with probability e10 (about 1-3 % on today's IBM devices; the fake backends' readout
errors come from their calibration). The cheapest standard mitigation measures both numbers per
qubit with two calibration circuits (all qubits left in |0>; all flipped to |1> by X), each with
many shots, so the readout of qubit k is the 2x2 matrix

    A_k = [[1 - e01, e10], [e01, 1 - e10]]    (columns: prepared 0, 1; rows: read 0, 1)

and the mitigated probabilities are A^{-1} applied to the measured ones. For the tensor product of
the A_k (readout errors independent between qubits), the marginal P(qubit k = 1) that the QINN
uses (eq. 16) is mitigated by A_k alone:

    P_true = (P_read - e01) / (1 - e01 - e10),

clipped to [0, 1] (shot noise can push an estimate just outside). The X gate's own error enters the
calibration, as it does on a device. Gate errors are not mitigated: this corrects the readout only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from qinn_lib.hardware.ibm import extra
from qinn_lib.hardware.ibm.routing import Routed
from qinn_lib.hardware.ibm.sampler import Runner

try:
    from qiskit import QuantumCircuit
except ImportError as err:  # the optional extra: one line naming the install command
    raise extra.missing_extra(__name__) from err

__all__ = ["ReadoutCalibration", "calibration_circuits", "calibrate", "mitigate"]


@dataclass(frozen=True)
class ReadoutCalibration:
    """Measured readout errors of physical ``qubits``: ``e01[k]`` = P(read 1 | prepared 0),
    ``e10[k]`` = P(read 0 | prepared 1), each from ``shots`` shots."""

    qubits: tuple[int, ...]
    e01: np.ndarray
    e10: np.ndarray
    shots: int

    def matrix(self, qubit: int) -> np.ndarray:
        """A_k of physical ``qubit``: columns prepared 0 / 1, rows read 0 / 1."""
        k = self.qubits.index(int(qubit))
        return np.array([[1 - self.e01[k], self.e10[k]], [self.e01[k], 1 - self.e10[k]]])

    def errors(self, qubits: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(e01, e10) of ``qubits`` in that order."""
        idx = [self.qubits.index(int(q)) for q in qubits]
        return self.e01[idx], self.e10[idx]


def calibration_circuits(qubits: Sequence[int], width: int) -> list[Routed]:
    """The two calibration circuits on physical ``qubits`` of a ``width``-qubit device (no routing:
    X and measure are native, each qubit is read into its own bit)."""
    out = []
    for flipped in (False, True):
        qc = QuantumCircuit(width, len(qubits), name=f"readout_{int(flipped)}")
        for bit, q in enumerate(qubits):
            if flipped:
                qc.x(q)
            qc.measure(q, bit)
        out.append(Routed(qc.name, "", qc, 0, (), tuple(int(q) for q in qubits), f"{qc.name}:{width}:{list(qubits)}", 0.0))
    return out


def calibrate(runner: Runner, qubits: Sequence[int], width: int) -> ReadoutCalibration:
    """Measure e01 and e10 of physical ``qubits`` with ``runner`` (its shots per circuit)."""
    qubits = tuple(sorted({int(q) for q in qubits}))
    zero, one = calibration_circuits(qubits, width)
    none = np.zeros((1, 0))
    p_zero = runner.marginals(zero, none)[0]
    p_one = runner.marginals(one, none)[0]
    return ReadoutCalibration(qubits, p_zero.astype(np.float64), (1.0 - p_one).astype(np.float64), runner.shots)


def mitigate(p_read: np.ndarray, calibration: ReadoutCalibration, measured: Sequence[int]) -> np.ndarray:
    """Mitigated P(bit k = 1) ``(events, n)`` from read ``p_read`` ``(events, n)``; ``measured[k]`` is the
    physical qubit read into bit k."""
    e01, e10 = calibration.errors(measured)
    scale = 1.0 - e01 - e10
    if np.any(scale <= 0.05):
        raise ValueError(f"readout of qubits {list(measured)} is too poor to invert: 1 - e01 - e10 = {scale.round(3).tolist()}")
    return np.clip((np.asarray(p_read, dtype=np.float64) - e01) / scale, 0.0, 1.0)
