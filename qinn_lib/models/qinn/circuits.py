"""PennyLane definitions of every QINN circuit: the readable, drawable reference.

The fast batched simulation in :mod:`qinn_lib.models.qinn.model` is what trains; this module is the yardstick it
is tested against (``tests/test_qinn.py``) and the baseline the benchmark times. Everything follows
section 3 of the paper (eq. 12-22, Fig. 2-4) with PennyLane's conventions:

- wire 0 is the most significant bit of a computational-basis index (``qml.state()`` order);
- ``qml.RY(x)|0> = cos(x/2)|0> + sin(x/2)|1>``, so ``P(qubit = 1) = sin^2(x/2)`` and the
  angle comes back as ``x = 2 arcsin(sqrt(p))`` (eq. 12 of the paper drops the factors 1/2);
- ``qml.Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``.

Quantum functions (qfuncs) are the building blocks; the ``*_qnode`` factories wrap them into
``default.qubit`` QNodes with the torch interface and backprop differentiation, and the
``reference_*`` functions evaluate a whole :class:`~qinn_lib.models.qinn.model.QINN` (classical pieces included,
taken from the model's own parameters and ISP network) through those QNodes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import pennylane as qml
import torch

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

    from qinn_lib.models.qinn.model import QINN

__all__ = [
    "cnot_ring",
    "state_preparation",
    "model_layer",
    "model_circuit",
    "model_layer_adjoint",
    "model_circuit_adjoint",
    "isp_preparation",
    "isp_circuit",
    "swap_test",
    "forward_qnode",
    "forward_state_qnode",
    "inverse_qnode",
    "isp_state_qnode",
    "swap_test_qnode",
    "reference_forward",
    "reference_inverse",
    "reference_fidelity",
    "reference_states",
    "draw",
]


# ---------------------------------------------------------------------------------------------
# quantum functions
# ---------------------------------------------------------------------------------------------
def cnot_ring(wires: Sequence[int]) -> list[tuple[int, int]]:
    """(control, target) pairs of the entangling block of Fig. 2, in application order.

    CNOT(w_i, w_{i+1}) for every adjacent pair, then CNOT(w_{n-1}, w_0) closing the ring. With
    two wires the closing gate CNOT(1, 0) differs from CNOT(0, 1) and is kept; one wire has none.
    """
    wires = list(wires)
    n = len(wires)
    pairs = [(wires[i], wires[i + 1]) for i in range(n - 1)]
    if n >= 2:
        pairs.append((wires[-1], wires[0]))
    return pairs


def state_preparation(angles, wires: Sequence[int]) -> None:
    """Angle encoding S_x = prod_i R_y(x'_i) on |0...0> (eq. 12).

    ``angles`` has shape ``(n,)`` or ``(B, n)``; the batched form uses PennyLane's parameter
    broadcasting, so one QNode call evaluates a whole batch.
    """
    for k, w in enumerate(wires):
        qml.RY(angles[..., k], wires=w)


def model_layer(layer_weights, wires: Sequence[int]) -> None:
    """One hardware-efficient layer U_l (Fig. 2): Rot on every qubit, then the CNOT ring.

    ``layer_weights`` has shape ``(n, 3)`` holding (phi, theta, omega) per qubit.
    """
    for k, w in enumerate(wires):
        qml.Rot(layer_weights[k, 0], layer_weights[k, 1], layer_weights[k, 2], wires=w)
    for control, target in cnot_ring(wires):
        qml.CNOT(wires=[control, target])


def model_circuit(weights, wires: Sequence[int]) -> None:
    """The model circuit U = U_L ... U_1 (Fig. 2); ``weights`` has shape ``(L, n, 3)``."""
    for layer in range(weights.shape[0]):
        model_layer(weights[layer], wires)


def model_layer_adjoint(layer_weights, wires: Sequence[int]) -> None:
    """U_l^dagger written out: the CNOT ring in reverse order (eq. 15: CNOT^dagger = CNOT), then
    Rot^dagger(phi, theta, omega) = Rot(-omega, -theta, -phi) on every qubit (eq. 14)."""
    for control, target in reversed(cnot_ring(wires)):
        qml.CNOT(wires=[control, target])
    for k, w in enumerate(wires):
        qml.Rot(-layer_weights[k, 2], -layer_weights[k, 1], -layer_weights[k, 0], wires=w)


def model_circuit_adjoint(weights, wires: Sequence[int]) -> None:
    """U^dagger = U_1^dagger ... U_L^dagger (eq. 13), built gate by gate rather than with
    ``qml.adjoint`` so that the construction of eq. 13-15 itself can be tested."""
    for layer in reversed(range(weights.shape[0])):
        model_layer_adjoint(weights[layer], wires)


def isp_preparation(angles, wires: Sequence[int]) -> None:
    """Rot(psi_{i0}, psi_{i1}, psi_{i2}) on qubit i from |0> (eq. 22, first arrow).

    ``angles`` has shape ``(3n,)`` or ``(B, 3n)``: the output of the ISP network g_C (eq. 21),
    read as ``(n, 3)`` per event, qubit-major.
    """
    for k, w in enumerate(wires):
        qml.Rot(angles[..., 3 * k], angles[..., 3 * k + 1], angles[..., 3 * k + 2], wires=w)


def isp_circuit(weights, wires: Sequence[int]) -> None:
    """g_Q: the same hardware-efficient ansatz as the model circuit, with its own weights
    ``(L', n, 3)`` (eq. 22, second arrow; Fig. 4)."""
    model_circuit(weights, wires)


def swap_test(ancilla: int, wires_a: Sequence[int], wires_b: Sequence[int]) -> None:
    """The SWAP test of Fig. 3 on already-prepared registers A and B.

    H on the ancilla, CSWAP(ancilla, a_i, b_i) pairwise, H again; afterwards
    P(ancilla = 0) = (1 + F) / 2 with F = |<b|a>|^2.
    """
    if len(wires_a) != len(wires_b):
        raise ValueError(f"swap_test: registers differ in size: {len(wires_a)} vs {len(wires_b)} wires")
    qml.Hadamard(wires=ancilla)
    for wa, wb in zip(wires_a, wires_b):
        qml.CSWAP(wires=[ancilla, wa, wb])
    qml.Hadamard(wires=ancilla)


# ---------------------------------------------------------------------------------------------
# QNode factories
# ---------------------------------------------------------------------------------------------
def _device(n_wires: int):
    return qml.device("default.qubit", wires=n_wires)


def _qnode(func, n_wires: int):
    return qml.QNode(func, _device(n_wires), interface="torch", diff_method="backprop")


def _prob_one(wires: Sequence[int]) -> list:
    # P(qubit i = 1) = <Projector onto |1>_i>; one expectation per wire.
    return [qml.expval(qml.Projector([1], wires=w)) for w in wires]


def forward_qnode(n: int, n_layers: int):
    """QNode ``(angles (B, n), weights (L, n, 3)) -> list of n tensors P(qubit i = 1), each (B,)``.

    Forward direction of Fig. 2: angle encoding of x', the model circuit U, measurement.
    ``n_layers`` fixes the expected ``weights.shape[0]`` (checked at call time).
    """
    wires = list(range(n))

    def circuit(angles, weights):
        _check_layers("weights", weights, n_layers, n)
        state_preparation(angles, wires)
        model_circuit(weights, wires)
        return _prob_one(wires)

    return _qnode(circuit, n)


def forward_state_qnode(n: int, n_layers: int):
    """QNode ``(angles, weights) -> qml.state()`` of |y> = U|x'>, shape ``(B, 2^n)``."""
    wires = list(range(n))

    def circuit(angles, weights):
        _check_layers("weights", weights, n_layers, n)
        state_preparation(angles, wires)
        model_circuit(weights, wires)
        return qml.state()

    return _qnode(circuit, n)


def inverse_qnode(n: int, isp_layers: int, n_layers: int):
    """QNode ``(psi (B, 3n), isp_weights (L', n, 3), weights (L, n, 3)) -> list of P(qubit i = 1)``.

    Inverse direction (Fig. 4 then eq. 13-15): ISP Rot preparation from psi, g_Q, then U^dagger,
    measured; the classical network g_C that produces psi and the angle decoding stay outside.
    """
    wires = list(range(n))

    def circuit(psi, isp_weights, weights):
        _check_layers("isp_weights", isp_weights, isp_layers, n)
        _check_layers("weights", weights, n_layers, n)
        isp_preparation(psi, wires)
        isp_circuit(isp_weights, wires)
        model_circuit_adjoint(weights, wires)
        return _prob_one(wires)

    return _qnode(circuit, n)


def isp_state_qnode(n: int, isp_layers: int):
    """QNode ``(psi, isp_weights) -> qml.state()`` of |y~> = g_Q Rot(psi)|0> (eq. 22)."""
    wires = list(range(n))

    def circuit(psi, isp_weights):
        _check_layers("isp_weights", isp_weights, isp_layers, n)
        isp_preparation(psi, wires)
        isp_circuit(isp_weights, wires)
        return qml.state()

    return _qnode(circuit, n)


def swap_test_qnode(n: int, n_layers: int, isp_layers: int):
    """QNode ``(angles, weights, psi, isp_weights) -> P(ancilla = 0)``, shape ``(B,)`` (Fig. 3).

    Wire 0 is the ancilla, wires 1..n hold |y> = U|x'>, wires n+1..2n hold |y~> from the ISP.
    F = |<y~|y>|^2 = 2 P(ancilla = 0) - 1.
    """
    ancilla = 0
    wires_y = list(range(1, n + 1))
    wires_t = list(range(n + 1, 2 * n + 1))

    def circuit(angles, weights, psi, isp_weights):
        _check_layers("weights", weights, n_layers, n)
        _check_layers("isp_weights", isp_weights, isp_layers, n)
        state_preparation(angles, wires_y)
        model_circuit(weights, wires_y)
        isp_preparation(psi, wires_t)
        isp_circuit(isp_weights, wires_t)
        swap_test(ancilla, wires_y, wires_t)
        return qml.expval(qml.Projector([0], wires=ancilla))

    return _qnode(circuit, 2 * n + 1)


def _check_layers(name: str, weights, n_layers: int, n: int) -> None:
    if tuple(weights.shape) != (n_layers, n, 3):
        raise ValueError(f"{name} must have shape ({n_layers}, {n}, 3), got {tuple(weights.shape)}")


# ---------------------------------------------------------------------------------------------
# the whole QINN through the QNodes
# ---------------------------------------------------------------------------------------------
def _clamped_ab(model: "QINN") -> tuple[torch.Tensor, torch.Tensor]:
    # Same feasible set as the model (sec. 3): a in [0, 1], b in [0, 1 - a].
    a = torch.clamp(model.a, 0.0, 1.0)
    b = torch.clamp(model.b, min=torch.zeros_like(a), max=1.0 - a)
    return a, b


def _as_batch(model: "QINN", name: str, t) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=model.a.dtype, device=model.a.device)
    if t.ndim != 2 or t.shape[1] != model.n_features:
        raise ValueError(f"{name} must have shape (batch, {model.n_features}), got {tuple(t.shape)}")
    return t


def _stack(probs: list) -> torch.Tensor:
    return torch.stack(list(probs), dim=-1)


def reference_forward(model: "QINN", x) -> torch.Tensor:
    """z = c * P(U|a x + pi b>) + d evaluated with :func:`forward_qnode` (eq. 12-16); ``(B, n)``."""
    x = _as_batch(model, "x", x)
    a, b = _clamped_ab(model)
    angles = a * x + math.pi * b
    probs = _stack(forward_qnode(model.n_features, model.n_layers)(angles, model.weights))
    return model.c * probs + model.d


def reference_inverse(model: "QINN", z) -> torch.Tensor:
    """x~ from z through the learned ISP and U^dagger (eq. 13-15, 21-22) with :func:`inverse_qnode`.

    Uses the paper's arcsin decoding x'~ = 2 arcsin(sqrt(p)) (the fast path uses the equivalent,
    better-conditioned atan2 form; the test comparing both also checks that equivalence).
    """
    z = _as_batch(model, "z", z)
    a, b = _clamped_ab(model)
    probs_in = (z - model.d) / model.c
    psi = model.isp_net(probs_in)
    qnode = inverse_qnode(model.n_features, model.isp_layers, model.n_layers)
    p = _stack(qnode(psi, model.isp_weights, model.weights))
    x_prime = 2.0 * torch.arcsin(torch.sqrt(torch.clamp(p, 0.0, 1.0)))
    return (x_prime - math.pi * b) / a


def reference_states(model: "QINN", x) -> tuple[torch.Tensor, torch.Tensor]:
    """(|y>, |y~>) for each event, ``(B, 2^n)`` complex each, via the state QNodes.

    |y> = U|x'>; |y~> is the ISP state built from the P measured on |y> (eq. 17).
    """
    x = _as_batch(model, "x", x)
    a, b = _clamped_ab(model)
    angles = a * x + math.pi * b
    n = model.n_features
    probs = _stack(forward_qnode(n, model.n_layers)(angles, model.weights))
    y = forward_state_qnode(n, model.n_layers)(angles, model.weights)
    y_tilde = isp_state_qnode(n, model.isp_layers)(model.isp_net(probs), model.isp_weights)
    return y, y_tilde


def reference_fidelity(model: "QINN", x) -> torch.Tensor:
    """F = |<y~|y>|^2 per event from the SWAP test of Fig. 3: F = 2 P(ancilla = 0) - 1; ``(B,)``."""
    x = _as_batch(model, "x", x)
    a, b = _clamped_ab(model)
    angles = a * x + math.pi * b
    n = model.n_features
    probs = _stack(forward_qnode(n, model.n_layers)(angles, model.weights))
    psi = model.isp_net(probs)
    p0 = swap_test_qnode(n, model.n_layers, model.isp_layers)(
        angles, model.weights, psi, model.isp_weights
    )
    return 2.0 * p0 - 1.0


# ---------------------------------------------------------------------------------------------
# drawing (notebook 02)
# ---------------------------------------------------------------------------------------------
def draw(model: "QINN", which: str = "forward", *, max_layers: int | None = 2, **draw_kwargs) -> "Figure":
    """Matplotlib figure of one QINN circuit via ``qml.draw_mpl``.

    Parameters
    ----------
    which : "forward" (Fig. 2), "inverse" (Fig. 4 followed by U^dagger) or "swap" (Fig. 3).
    max_layers : draw only the first ``max_layers`` layers of each ansatz (None = all) so the
        figure stays legible; the gate pattern repeats per layer.
    draw_kwargs : passed on to ``qml.draw_mpl`` (e.g. ``decimals=2``, ``style="pennylane"``).

    With ``decimals``, a Rot gate's three angles (phi, theta, omega) are written in one line under
    its box (:func:`_readable_rot_labels`): inside the box PennyLane shrank them to fit four lines.
    """
    choices = ("forward", "inverse", "swap")
    if which not in choices:
        raise ValueError(f"draw: which must be one of {choices}, got {which!r}")
    n = model.n_features
    with torch.no_grad():
        w = model.weights.detach().cpu()
        wi = model.isp_weights.detach().cpu()
        if max_layers is not None:
            if max_layers < 1:
                raise ValueError(f"draw: max_layers must be >= 1 or None, got {max_layers}")
            w, wi = w[:max_layers], wi[:max_layers]
        # A representative event: the middle of the [0, pi]^n box.
        x = torch.full((1, n), math.pi / 2, dtype=model.a.dtype, device=model.a.device)
        a, b = _clamped_ab(model)
        angles = (a * x + math.pi * b)[0].cpu()
        psi = model.isp_net(model.measure(model.output_state(x)))[0].cpu()
    if which == "forward":
        qnode, args = forward_qnode(n, w.shape[0]), (angles, w)
    elif which == "inverse":
        qnode, args = inverse_qnode(n, wi.shape[0], w.shape[0]), (psi, wi, w)
    else:
        qnode, args = swap_test_qnode(n, w.shape[0], wi.shape[0]), (angles, w, psi, wi)
    fig, ax = qml.draw_mpl(qnode, **draw_kwargs)(*args)
    _readable_rot_labels(ax)
    return fig


#: Font size of a Rot gate's angles under its box (PennyLane's gate labels are 14 pt).
ROT_ANGLE_FONTSIZE = 10


def _readable_rot_labels(ax) -> None:
    """``Rot\\n(1.5,\\n0.5,\\n2.9)`` in a one-wire box is shrunk by ``qml.draw_mpl`` to 8 pt
    against 14 pt for every other label; write "Rot" in the box at the common size and the angles
    in one line in the gap below it (half-way to the next wire, where nothing else is drawn)."""
    size = max((t.get_fontsize() for t in ax.texts if not t.get_text().startswith("Rot")), default=14)
    for text in list(ax.texts):
        label = text.get_text()
        if not label.startswith("Rot\n(") or not label.endswith(")"):
            continue
        angles = [a.strip() for a in label[len("Rot\n("):-1].replace("\n", "").split(",")]
        text.set_text("Rot")
        text.set_fontsize(size)
        x, y = text.get_position()
        ax.text(x, y + 0.5, " ".join(angles), ha="center", va="center", fontsize=ROT_ANGLE_FONTSIZE, zorder=6)
