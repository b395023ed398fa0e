"""Gate noise: the QINN's circuits with a noise channel after every gate, as density matrices.

Noise model (:class:`NoiseModel`): after every gate, the single-qubit channel of strength p acts
on every wire the gate touches (once per wire for a CNOT), PennyLane's conventions:

- ``"depolarizing"`` (``qml.DepolarizingChannel(p)``): Kraus operators sqrt(1 - p) I and
  sqrt(p/3) X, Y, Z, i.e. rho -> (1 - 4p/3) rho + (2p/3) I Tr(rho); p = 3/4 is fully depolarising;
- ``"amplitude_damping"`` (``qml.AmplitudeDamping(gamma = p)``): K0 = [[1, 0], [0, sqrt(1-p)]],
  K1 = [[0, sqrt(p)], [0, 0]], decay |1> -> |0> with probability p (T1 relaxation).

The gates are those of :mod:`qinn_lib.models.qinn.circuits`: the angle encoding R_y(x') (eq. 12) or the ISP
preparation Rot(psi) (eq. 22), then the Rot + CNOT-ring layers of U (Fig. 2), of g_Q (Fig. 4) and
of U^dagger written gate by gate (eq. 13-15). The channels are x'-independent, so the
parameter-shift Jacobian stays exact (:mod:`qinn_lib.hardware.shots`).

Two implementations that must agree (``tests/test_noise.py``, to ~1e-10):

- :func:`reference_forward_probs`, :func:`reference_inverse_probs`: PennyLane ``default.mixed``
  QNodes built from the circuits module's quantum functions, with the channel inserted after every
  gate by ``qml.noise.insert`` -- the readable reference;
- :class:`NoisyCircuits`: the fast batched path. Only the outcome probabilities are ever measured,
  and everything after the per-event preparation is a fixed (event-independent) channel Phi, so
  P(s) = Tr(|s><s| Phi(rho)) = Tr(Phi^dagger(|s><s|) rho): the 2^n projectors are carried back
  through the adjoint channel once per circuit (Heisenberg picture, 2^n matrices of 2^n x 2^n),
  and each event costs one contraction with its prepared state, a product of single-qubit
  density matrices, done in the real Pauli basis.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import torch

from qinn_lib.hardware.shots import basis_bits
from qinn_lib.models.qinn.simulator import rot_matrices

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = [
    "CHANNELS",
    "NoiseModel",
    "Gate",
    "layer_gates",
    "adjoint_layer_gates",
    "heisenberg_projectors",
    "prepared_qubits",
    "pauli_coefficients",
    "pauli_transfer",
    "NoisyCircuits",
    "reference_forward_probs",
    "reference_inverse_probs",
]

#: The noise channels, by name.
CHANNELS = ("depolarizing", "amplitude_damping")

_C128 = torch.complex128


@dataclass(frozen=True)
class NoiseModel:
    """One channel of strength ``p`` in [0, 1] after every gate (on every wire the gate acts on)."""

    channel: str
    p: float

    def __post_init__(self) -> None:
        if not isinstance(self.channel, str) or self.channel not in CHANNELS:
            raise ValueError(f"noise channel must be one of {list(CHANNELS)}, got {self.channel!r}")
        p = self.p
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(float(p)):
            raise ValueError(f"noise p must be a number in [0, 1], got {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"noise p must be in [0, 1], got {p!r}")
        object.__setattr__(self, "p", float(p))

    @property
    def label(self) -> str:
        return f"{self.channel} p={self.p:g}"

    def kraus(self) -> torch.Tensor:
        """Kraus operators, ``(k, 2, 2)`` complex128 (sum_k K^dagger K = I)."""
        p = self.p
        if self.channel == "depolarizing":
            eye = torch.eye(2, dtype=_C128)
            x = torch.tensor([[0, 1], [1, 0]], dtype=_C128)
            y = torch.tensor([[0, -1j], [1j, 0]], dtype=_C128)
            z = torch.tensor([[1, 0], [0, -1]], dtype=_C128)
            return torch.stack([math.sqrt(1 - p) * eye, *(math.sqrt(p / 3) * m for m in (x, y, z))])
        return torch.tensor([[[1, 0], [0, math.sqrt(1 - p)]], [[0, math.sqrt(p)], [0, 0]]], dtype=_C128)

    def pennylane_op(self):
        """The PennyLane channel class that :func:`qml.noise.insert` places after every gate."""
        import pennylane as qml

        return qml.DepolarizingChannel if self.channel == "depolarizing" else qml.AmplitudeDamping


def check_noise(noise: Any) -> NoiseModel | None:
    """``None`` (noiseless) or a :class:`NoiseModel`; anything else is a clear error."""
    if noise is None or isinstance(noise, NoiseModel):
        return noise
    raise ValueError(f"noise must be None or a qinn_lib.hardware.noise.NoiseModel, got {type(noise).__name__}")


# ---------------------------------------------------------------------------------------------
# gate lists (the same order as the quantum functions of qinn_lib.models.qinn.circuits)
# ---------------------------------------------------------------------------------------------
class Gate(NamedTuple):
    """A gate of the circuit: ``"Rot"`` on ``wires[0]`` with its 2x2 ``matrix``, or ``"CNOT"``
    on ``wires = (control, target)``."""

    name: str
    wires: tuple[int, ...]
    matrix: torch.Tensor | None = None


def _ring(n: int) -> list[tuple[int, int]]:
    from qinn_lib.models.qinn.circuits import cnot_ring  # deferred: PennyLane (~1.3 s to import)

    return cnot_ring(list(range(n)))


def layer_gates(weights: torch.Tensor) -> list[Gate]:
    """Gates of the hardware-efficient ansatz (Fig. 2) for weights ``(L, n, 3)``: per layer Rot on
    every wire, then the CNOT ring -- as :func:`qinn_lib.models.qinn.circuits.model_circuit`."""
    mats = rot_matrices(weights.detach().to(torch.float64))
    n_layers, n = weights.shape[:2]
    gates: list[Gate] = []
    for layer in range(n_layers):
        gates += [Gate("Rot", (k,), mats[layer, k]) for k in range(n)]
        gates += [Gate("CNOT", pair) for pair in _ring(n)]
    return gates


def adjoint_layer_gates(weights: torch.Tensor) -> list[Gate]:
    """Gates of U^dagger written out (eq. 13-15), as :func:`qinn_lib.models.qinn.circuits.model_circuit_adjoint`:
    layers in reverse, each the CNOT ring reversed, then Rot(-omega, -theta, -phi) on every wire."""
    w = weights.detach().to(torch.float64)
    mats = rot_matrices(-w.flip(-1))  # Rot^dagger(phi, theta, omega) = Rot(-omega, -theta, -phi), eq. 14
    n_layers, n = w.shape[:2]
    gates: list[Gate] = []
    for layer in reversed(range(n_layers)):
        gates += [Gate("CNOT", pair) for pair in reversed(_ring(n))]
        gates += [Gate("Rot", (k,), mats[layer, k]) for k in range(n)]
    return gates


# ---------------------------------------------------------------------------------------------
# Heisenberg picture: observables carried back through the noisy circuit
# ---------------------------------------------------------------------------------------------
def _pair_superoperator(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """The map O -> A O B (A = ``left``, B = ``right``, 2x2, acting on one qubit) as a 4x4 matrix
    on that qubit's (row bit, column bit) pair: S[(a, d), (b, c)] = A[a, b] B[c, d]."""
    return torch.einsum("ab,cd->adbc", left, right).reshape(4, 4)


def _apply_pair(obs: torch.Tensor, superop: torch.Tensor, wire: int, n: int) -> torch.Tensor:
    """Apply a 4x4 single-qubit superoperator (:func:`_pair_superoperator`) to qubit ``wire`` of
    every (D, D) matrix in ``obs`` (M, D, D), without building 2^n x 2^n gate matrices."""
    m = obs.shape[0]
    lo, hi = 1 << wire, 1 << (n - 1 - wire)
    # (m, lo, a, hi, lo', d, hi') -> (..., a, d): the qubit's row and column bits last
    o = obs.reshape(m, lo, 2, hi, lo, 2, hi).permute(0, 1, 3, 4, 6, 2, 5)
    out = (o.reshape(-1, 4) @ superop.T).reshape(m, lo, hi, lo, hi, 2, 2)
    return out.permute(0, 1, 5, 2, 3, 6, 4).reshape(obs.shape)


def _cnot_image(n: int, control: int, target: int) -> torch.Tensor:
    """pi with CNOT|s> = |pi(s)> (an involution)."""
    s = torch.arange(1 << n)
    return s ^ (((s >> (n - 1 - control)) & 1) << (n - 1 - target))


def heisenberg_projectors(gates: Sequence[Gate], n: int, noise: NoiseModel | None) -> torch.Tensor:
    """Phi^dagger(|s><s|) for every basis state s, ``(2^n, 2^n, 2^n)`` complex128, where Phi is the
    circuit ``gates`` with ``noise`` after every gate.

    Forward, each gate G is followed by the channel E on its wires: rho -> E(G rho G^dagger). Its
    adjoint, applied to observables from the last gate back to the first, is
    O -> G^dagger E^dagger(O) G with E^dagger(O) = sum_k K_k^dagger O K_k.
    """
    noise = check_noise(noise)
    dim = 1 << n
    obs = torch.zeros((dim, dim, dim), dtype=_C128)
    idx = torch.arange(dim)
    obs[idx, idx, idx] = 1.0  # |s><s|
    # E^dagger(O) = sum_k K_k^dagger O K_k as one 4x4 superoperator (identity without noise)
    kraus = noise.kraus() if noise is not None else torch.eye(2, dtype=_C128)[None]
    channel = sum(_pair_superoperator(k.mH, k) for k in kraus)
    noisy = noise is not None and noise.p > 0
    for gate in reversed(gates):
        if gate.name == "Rot":
            mat = gate.matrix.to(_C128)
            # O -> G^dagger E^dagger(O) G in one step
            obs = _apply_pair(obs, _pair_superoperator(mat.mH, mat) @ channel, gate.wires[0], n)
        elif gate.name == "CNOT":
            if noisy:
                for wire in gate.wires:
                    obs = _apply_pair(obs, channel, wire, n)
            image = _cnot_image(n, *gate.wires)  # (G^dagger O G)[i, j] = O[pi(i), pi(j)]
            obs = obs[:, image][:, :, image]
        else:
            raise ValueError(f"unknown gate {gate.name!r}")
    return obs


# ---------------------------------------------------------------------------------------------
# per-event preparation: product of single-qubit density matrices, in the Pauli basis
# ---------------------------------------------------------------------------------------------
def _paulis() -> torch.Tensor:
    """I, X, Y, Z as ``(4, 2, 2)`` complex128."""
    return torch.tensor([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=_C128)


def prepared_qubits(vectors: torch.Tensor, noise: NoiseModel | None) -> torch.Tensor:
    """Single-qubit density matrices E(|v><v|) for prepared qubit states ``vectors`` (B, n, 2),
    with the channel after the preparing gate; ``(B, n, 2, 2)`` complex128."""
    noise = check_noise(noise)
    v = vectors.to(_C128)
    rho = v[..., :, None] * v[..., None, :].conj()
    if noise is None or noise.p == 0:
        return rho
    kraus = noise.kraus()
    return torch.einsum("kab,xnbc,kdc->xnad", kraus, rho, kraus.conj())


def pauli_coefficients(rho_qubits: torch.Tensor) -> torch.Tensor:
    """Real c with rho_k = sum_a c[k, a] sigma_a (sigma = I, X, Y, Z): c = Tr(rho_k sigma_a) / 2,
    ``(B, n, 2, 2) -> (B, n, 4)`` float64."""
    return 0.5 * torch.einsum("xnij,aji->xna", rho_qubits, _paulis()).real


def pauli_transfer(obs: torch.Tensor) -> torch.Tensor:
    """T[m, a] = Tr(O_m sigma_a) for every n-qubit Pauli string a (qubit 0 most significant),
    ``(M, 2^n, 2^n) -> (M, 4^n)`` real: Tr(O_m rho) = sum_a T[m, a] prod_k c[k, a_k] for a product
    state with Pauli coefficients c (:func:`pauli_coefficients`)."""
    n = obs.shape[-1].bit_length() - 1
    strings = _paulis()
    for _ in range(1, n):
        d = strings.shape[-1]
        strings = (strings[:, None, :, None, :, None] * _paulis()[None, :, None, :, None, :]).reshape(-1, 2 * d, 2 * d)
    return torch.einsum("mij,aji->ma", obs, strings).real


def _kron_rows(c: torch.Tensor) -> torch.Tensor:
    """Row-wise Kronecker product of per-qubit vectors: ``(B, k, 4) -> (B, 4^k)``."""
    out = c[:, 0]
    for j in range(1, c.shape[1]):
        out = (out[:, :, None] * c[:, j, None, :]).flatten(1)
    return out


def _ry_vectors(x_prime: torch.Tensor) -> torch.Tensor:
    """R_y(x')|0> = (cos x'/2, sin x'/2) per qubit (eq. 12), ``(B, n, 2)``."""
    half = 0.5 * x_prime.to(torch.float64)
    return torch.stack([torch.cos(half), torch.sin(half)], -1)


def _rot_vectors(psi: torch.Tensor) -> torch.Tensor:
    """Rot(psi_k)|0> per qubit (eq. 22): the first column of the Rot matrix, ``(B, n, 2)``."""
    return rot_matrices(psi.to(torch.float64))[..., :, 0]


class NoisyCircuits:
    """The forward (Fig. 2) and inverse (Fig. 4, then U^dagger) circuits of ``model`` with
    ``noise`` after every gate, evaluated for batches of events.

    The Heisenberg observables of both circuits are built once here (from the model's current
    weights), as Pauli transfer rows T (:func:`pauli_transfer`). An event's prepared state is a
    product of single-qubit density matrices with real Pauli coefficients c_k, so
    P_m = sum_{a, b} c_A[a] T[m, a, b] c_B[b], with c_A, c_B the Kronecker products of the first
    and the last qubits' coefficients: one real matrix product per batch, and no 2^n x 2^n
    density matrix per event. :meth:`forward_distribution` / :meth:`inverse_distribution` give all
    2^n outcome probabilities (for sampling shots), ``*_marginals`` the n values P(qubit k = 1).
    """

    def __init__(self, model: "QINN", noise: NoiseModel | None) -> None:

        self.noise = check_noise(noise)
        self.n = model.n_features
        bits = basis_bits(self.n).T  # (n, 2^n): P(qubit k = 1) = sum_s bits[k, s] P(s)
        with torch.no_grad():
            forward = layer_gates(model.weights)
            inverse = layer_gates(model.isp_weights) + adjoint_layer_gates(model.weights)
            t_forward = pauli_transfer(heisenberg_projectors(forward, self.n, self.noise))
            t_inverse = pauli_transfer(heisenberg_projectors(inverse, self.n, self.noise))
        self._transfer = {("forward", False): t_forward, ("forward", True): bits @ t_forward,
                          ("inverse", False): t_inverse, ("inverse", True): bits @ t_inverse}

    def _evaluate(self, key: tuple[str, bool], vectors: torch.Tensor, batch_size: int) -> torch.Tensor:
        t = self._transfer[key]
        m, n = t.shape[0], self.n
        h = n // 2
        # T[m, a, b] -> (b, m a): then c_B @ that, times c_A, summed over a
        t_ba = t.view(m, 4**h, 4 ** (n - h)).permute(2, 0, 1).reshape(4 ** (n - h), m * 4**h)
        out = []
        for start in range(0, vectors.shape[0], batch_size):
            c = pauli_coefficients(prepared_qubits(vectors[start:start + batch_size], self.noise))
            y = (_kron_rows(c[:, h:]) @ t_ba).view(-1, m, 4**h)
            out.append((y * _kron_rows(c[:, :h])[:, None, :]).sum(-1))
        probs = torch.cat(out) if out else torch.zeros((0, m), dtype=torch.float64)
        return probs.clamp(0.0, 1.0)  # rounding can leave -1e-17 where a probability is 0

    @torch.no_grad()
    def forward_distribution(self, x_prime: torch.Tensor, *, marginals: bool = False,
                             batch_size: int = 4096) -> torch.Tensor:
        """Outcome probabilities ``(B, 2^n)`` of the noisy forward circuit for angles x' ``(B, n)``;
        with ``marginals`` P(qubit k = 1), ``(B, n)``."""
        return self._evaluate(("forward", marginals), _ry_vectors(x_prime), batch_size)

    @torch.no_grad()
    def inverse_distribution(self, psi: torch.Tensor, *, marginals: bool = False,
                             batch_size: int = 4096) -> torch.Tensor:
        """Outcome probabilities ``(B, 2^n)`` of the noisy ISP preparation Rot(psi), g_Q and
        U^dagger for ISP angles psi ``(B, n, 3)``; with ``marginals`` P(qubit k = 1), ``(B, n)``."""
        return self._evaluate(("inverse", marginals), _rot_vectors(psi), batch_size)


# ---------------------------------------------------------------------------------------------
# PennyLane default.mixed: the readable reference
# ---------------------------------------------------------------------------------------------
def _mixed_qnode(circuit, n: int, noise: NoiseModel | None):
    import pennylane as qml

    qnode = qml.QNode(circuit, qml.device("default.mixed", wires=n), interface="torch")
    noise = check_noise(noise)
    if noise is None:
        return qnode
    return qml.noise.insert(qnode, noise.pennylane_op(), noise.p, position="all")


def reference_forward_probs(model: "QINN", x_prime: torch.Tensor, noise: NoiseModel | None) -> torch.Tensor:
    """Outcome probabilities ``(B, 2^n)`` of the forward circuit (encoding R_y(x'), then U) on
    ``default.mixed`` with ``noise`` inserted after every gate."""
    import pennylane as qml

    from qinn_lib.models.qinn import circuits  # deferred: PennyLane (~1.3 s to import)

    n = model.n_features
    wires = list(range(n))

    def circuit(angles, weights):
        circuits.state_preparation(angles, wires)
        circuits.model_circuit(weights, wires)
        return qml.probs(wires=wires)

    with torch.no_grad():
        out = _mixed_qnode(circuit, n, noise)(x_prime.to(torch.float64), model.weights.detach().to(torch.float64))
    return torch.as_tensor(out, dtype=torch.float64).reshape(len(x_prime), 1 << n)


def reference_inverse_probs(model: "QINN", psi: torch.Tensor, noise: NoiseModel | None) -> torch.Tensor:
    """Outcome probabilities ``(B, 2^n)`` of the inverse circuit (ISP preparation Rot(psi), g_Q,
    U^dagger gate by gate) on ``default.mixed`` with ``noise`` after every gate; ``psi`` (B, n, 3)."""
    import pennylane as qml

    from qinn_lib.models.qinn import circuits  # deferred: PennyLane (~1.3 s to import)

    n = model.n_features
    wires = list(range(n))

    def circuit(angles, isp_weights, weights):
        circuits.isp_preparation(angles, wires)
        circuits.isp_circuit(isp_weights, wires)
        circuits.model_circuit_adjoint(weights, wires)
        return qml.probs(wires=wires)

    with torch.no_grad():
        out = _mixed_qnode(circuit, n, noise)(psi.to(torch.float64).flatten(1), model.isp_weights.detach().to(torch.float64),
                                              model.weights.detach().to(torch.float64))
    return torch.as_tensor(out, dtype=torch.float64).reshape(len(psi), 1 << n)
