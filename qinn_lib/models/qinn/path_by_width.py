"""Which simulation of the QINN's forward map and Jacobian to use for a given circuit width.

Two exact simulations of the same circuit (Fig. 2, eq. 12-16) compute z and dz/dx (eq. 5-7):

- ``"dense"``: :meth:`qinn_lib.models.qinn.model.QINN.forward_and_jacobian` builds the unitary
  U (2^n x 2^n) once per call and pushes the batch through it in one matrix product. Building U
  costs O(L 8^n) and holding it O(4^n), nothing at the paper's 5 qubits;
- ``"gate"``: :mod:`qinn_lib.models.qinn.statevector` applies the gates one by one to the batch
  of states, O(L n 2^n) per state, with an adjoint backward (memory independent of depth).

:func:`preferred_path` picks by width, :func:`forward_and_jacobian_auto` /
:func:`forward_and_logdet_auto` dispatch on ``model.n_features``. Training (the paper's 5
qubits, :class:`~qinn_lib.training.objectives.QINNObjective`) always uses the dense path with
its compiled graph: these functions are for a user who widens the circuit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from qinn_lib.models.qinn import statevector

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["GATE_FROM_QUBITS", "PATHS", "preferred_path", "forward_and_jacobian_auto", "forward_and_logdet_auto"]

PATHS = ("dense", "gate")

#: Width from which the gate-by-gate path is faster than the dense unitary for one NLL step
#: (forward, Jacobian, log det, backward of the mean; batch 128, 12 layers, float32, one
#: thread), measured by ``python -m qinn_lib.bench --scaling`` (qinn_lib.experiments.bench_scaling,
#: table in its docstring) on the project's 2-core machine: CPU ms per step dense / gate
#: 333 / 422 at 9 qubits, 2386 / 1153 at 10, 16439 / 4014 at 11 (forward and Jacobian alone
#: cross one qubit earlier, at 9: 132 / 77 ms).
GATE_FROM_QUBITS = 10


def preferred_path(n_qubits: int) -> str:
    """``"dense"`` below :data:`GATE_FROM_QUBITS` qubits, ``"gate"`` from there on."""
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < 1:
        raise ValueError(f"preferred_path: n_qubits must be an integer >= 1, got {n_qubits!r}")
    return "dense" if n_qubits < GATE_FROM_QUBITS else "gate"


def _check_path(path: str | None, model: "QINN") -> str:
    if path is None:
        return preferred_path(model.n_features)
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS} or None (by width), got {path!r}")
    return path


def forward_and_jacobian_auto(model: "QINN", x: torch.Tensor, path: str | None = None
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, dz/dx) of ``model`` at x (B, n) by the path for its width (or ``path``), as
    :meth:`QINN.forward_and_jacobian`; both paths agree to float rounding."""
    if _check_path(path, model) == "dense":
        return model.forward_and_jacobian(x)
    return statevector.forward_and_jacobian(model, x)


def forward_and_logdet_auto(model: "QINN", x: torch.Tensor, path: str | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(z, log|det dz/dx|) by the path for the model's width (or ``path``), as :meth:`QINN.forward_and_logdet`."""
    if _check_path(path, model) == "dense":
        return model.forward_and_logdet(x)
    return statevector.forward_and_logdet(model, x)
