"""The QINN model (sec. 3 of the paper) with a fast batched torch simulation of its circuits.

The circuits are those of :mod:`qinn_lib.models.qinn.circuits` (the PennyLane reference, against which
``tests/test_qinn.py`` checks values, gradients and Jacobians). Simulating them here instead of
through ``default.qubit`` is what makes training affordable:

- every circuit unitary depends on parameters only, never on the event, so U (2^n x 2^n) is built
  once per call from its layers (Kronecker product of the per-qubit Rot matrices, then the CNOT
  ring as a fixed permutation of basis states) and a whole batch is one matrix product;
- angle encoding gives a product state, i.e. an outer product of n two-vectors;
- the full Jacobian dz/dx (eq. 5-7) is forward-mode by hand: d|x'>/dx'_i is the product state with
  qubit i's factor differentiated, so the n tangent states ride through U in the same matrix
  product as the state itself.

This module holds the model, :class:`QINN` (encoding, model circuit, measurement, learned ISP),
and assembles it from two siblings: the gates, product states and CNOT ring of
:mod:`qinn_lib.models.qinn.simulator`, and the custom autograd Functions with hand-written
backward passes (circuit unitary, forward measurement with Jacobian, inverse measurement with
angle decoding, ISP product state) of :mod:`qinn_lib.models.qinn.autograd`. A training step may
wrap itself in ``with model.reuse_circuits():`` to build each circuit unitary once instead of once
per call, or take its maps from :meth:`QINN.step_maps` (unitaries built once, no input checks),
which ``torch.compile`` traces into one graph
(:meth:`qinn_lib.training.objectives.QINNObjective.compiled_terms`).

Conventions (identical to PennyLane): wire 0 is the most significant bit of a basis index,
``RY(x)|0> = cos(x/2)|0> + sin(x/2)|1>`` and ``Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, NamedTuple

import torch
from torch import nn

from qinn_lib.models.qinn import real_autograd
from qinn_lib.models.qinn.autograd import _CircuitUnitary, _ForwardMeasure, _InverseMeasure, _RotProductState
from qinn_lib.models.qinn.simulator import _COMPLEX, _PROB_EPS, _abs2, _tables, ry_state

__all__ = ['QINN', 'StepMaps']


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"QINN: {name} must be an integer >= {lo}, got {value!r}")
    return value


def _check_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype in ("float32", "float64") else None
    if dtype not in _COMPLEX:
        raise ValueError(f"QINN: dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


class QINN(nn.Module):
    """Quantum invertible neural network of sec. 3 (Fig. 2-4), simulated exactly.

    Parameters
    ----------
    n_features : number of features = qubits n.
    n_layers : layers L of the model circuit U (Table 1: 12).
    isp_layers : layers L' of the ISP circuit g_Q (Table 1: 8).
    isp_nn_layers : linear layers of the ISP network g_C (Table 1: 3).
    isp_hidden : hidden width of g_C (Table 1: 32).
    seed : seeds every initial value (circuit weights, g_C).
    dtype : torch.float32 (training default) or torch.float64; states use the matching complex type.

    Trainable parameters: ``a, b`` (state preparation, sec. 3), ``weights`` (L, n, 3) of U,
    ``c, d`` (measurement map, eq. 16), ``isp_weights`` (L', n, 3) of g_Q and ``isp_net`` (g_C).
    """

    def __init__(
        self,
        n_features: int = 5,
        n_layers: int = 12,
        isp_layers: int = 8,
        isp_nn_layers: int = 3,
        isp_hidden: int = 32,
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        n = _check_int("n_features", n_features, 1)
        self.n_features = n
        self.n_layers = _check_int("n_layers", n_layers, 1)
        self.isp_layers = _check_int("isp_layers", isp_layers, 1)
        self.isp_nn_layers = _check_int("isp_nn_layers", isp_nn_layers, 1)
        self.isp_hidden = _check_int("isp_hidden", isp_hidden, 1)
        _check_int("seed", seed, 0)
        dtype = _check_dtype(dtype)
        gen = torch.Generator().manual_seed(seed)

        def uniform(shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
            # Drawn in float64 so float32 and float64 models with one seed start from the same values.
            return (lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)).to(dtype)

        # State preparation x' = a x + pi b (sec. 3), initialised to the identity.
        self.a = nn.Parameter(torch.ones(n, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n, dtype=dtype))
        # Circuit weights uniform in [0, 2 pi): every single-qubit rotation up to a global sign.
        self.weights = nn.Parameter(uniform((n_layers, n, 3), 0.0, 2.0 * math.pi))
        self.isp_weights = nn.Parameter(uniform((isp_layers, n, 3), 0.0, 2.0 * math.pi))
        # Measurement map z = c P + d (eq. 16). P lies in [0, 1]; c = 4, d = -2 sends it to
        # [-2, 2], i.e. +-2 sigma of the N(0, 1) latent target, so the NLL starts on the right
        # scale. (z is bounded by [d, c + d]; training widens c when the tails need it.)
        self.c = nn.Parameter(torch.full((n,), 4.0, dtype=dtype))
        self.d = nn.Parameter(torch.full((n,), -2.0, dtype=dtype))
        # ISP network g_C: P (n) -> 3n Rot angles psi (eq. 21). SiLU because it is smooth: the
        # generated x~ = f^{-1}(z) is then a smooth function of z (ReLU kinks would imprint kinks
        # on generated distributions) and, unlike tanh, it does not saturate.
        widths = [n] + [isp_hidden] * (isp_nn_layers - 1) + [3 * n]
        layers: list[nn.Module] = []
        for k in range(isp_nn_layers):
            # skip_init: no draw from torch's global RNG (constructing a model has no side effects)
            lin = nn.utils.skip_init(nn.Linear, widths[k], widths[k + 1], dtype=dtype)
            bound = 1.0 / math.sqrt(widths[k])  # torch's default Linear init range, but seeded
            with torch.no_grad():
                lin.weight.copy_(uniform(tuple(lin.weight.shape), -bound, bound))
                lin.bias.copy_(uniform(tuple(lin.bias.shape), -bound, bound))
            layers.append(lin)
            if k < isp_nn_layers - 1:
                layers.append(nn.SiLU())
        self.isp_net = nn.Sequential(*layers)

        # Circuit-unitary cache, active only inside ``with model.reuse_circuits():``.
        self._circuit_cache: dict | None = None

    #: Arithmetic of the circuits in :meth:`step_maps` (:data:`~qinn_lib.models.qinn.real_autograd.STEP_ARITHMETICS`):
    #: "auto" = real (re, im) pairs inside a compiled step, complex otherwise. Not part of any
    #: config: both compute the same function (tested to float rounding).
    step_arithmetic = "auto"

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, n_features: int = 5) -> "QINN":
        """Build from a :class:`~qinn_lib.training.config.QINNRunConfig` (architecture, seed, dtype, device)."""
        model = cls(
            n_features,
            cfg.n_layers,
            cfg.isp_layers,
            cfg.isp_nn_layers,
            cfg.isp_hidden,
            seed=cfg.seed,
            dtype=_check_dtype(cfg.dtype),
        )
        return model.to(torch.device(cfg.device))

    def _tab(self) -> dict[str, torch.Tensor]:
        return _tables(self.n_features, self.a.device, self.a.dtype)

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    @property
    def cdtype(self) -> torch.dtype:
        return _COMPLEX[self.a.dtype]

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, n_layers={self.n_layers}, isp_layers={self.isp_layers}, "
            f"isp_nn_layers={self.isp_nn_layers}, isp_hidden={self.isp_hidden}, dtype={self.dtype}"
        )

    # -- parameters -------------------------------------------------------------------------------
    def quantum_parameters(self) -> list[nn.Parameter]:
        """Rotation angles of U and g_Q (the paper puts no weight prior on these, footnote 1)."""
        return [self.weights, self.isp_weights]

    def classical_parameters(self) -> list[nn.Parameter]:
        """a, b, c, d and the ISP network g_C."""
        return [self.a, self.b, self.c, self.d, *self.isp_net.parameters()]

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameter counts; Table 1: ~300 quantum, ~1.7k classical."""
        q = sum(p.numel() for p in self.quantum_parameters())
        c = sum(p.numel() for p in self.classical_parameters())
        return {"quantum": q, "classical": c, "total": q + c}

    def clamped_ab(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) projected on a in [0, 1], b in [0, 1 - a] (sec. 3), differentiably.

        clamp passes the gradient on the closed interval, so a parameter sitting on the boundary
        (a = 1, b = 0 at init) still receives its gradient; :meth:`constrain_` projects after the
        optimizer step (projected gradient descent).
        """
        a = torch.clamp(self.a, 0.0, 1.0)
        b = torch.clamp(self.b, min=torch.zeros_like(a), max=1.0 - a)
        return a, b

    @torch.no_grad()
    def constrain_(self) -> None:
        """Project the raw a, b onto the feasible set in place; call after each optimizer step."""
        self.a.clamp_(0.0, 1.0)
        self.b.copy_(torch.clamp(self.b, min=torch.zeros_like(self.a), max=1.0 - self.a))

    # -- input checks -----------------------------------------------------------------------------
    def _batch(self, name: str, t: Any, width: int | None = None) -> torch.Tensor:
        width = self.n_features if width is None else width
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"QINN: {name} must be a real tensor, got dtype {t.dtype}")
        if t.ndim != 2 or t.shape[1] != width:
            raise ValueError(f"QINN: {name} must have shape (batch, {width}), got {tuple(t.shape)}")
        t = t.to(dtype=self.dtype, device=self.a.device)
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ValueError(
                f"QINN: {name} of shape {tuple(t.shape)} has {int(bad.sum())} non-finite (NaN/inf) entries"
            )
        return t

    def _state_batch(self, name: str, t: Any) -> torch.Tensor:
        dim = 1 << self.n_features
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != dim:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"QINN: {name} must be a tensor of shape (batch, {dim}), got {shape}")
        return t.to(dtype=self.cdtype, device=self.a.device)

    # -- circuit unitaries ------------------------------------------------------------------------
    def unitary(self) -> torch.Tensor:
        """U = U_L ... U_1 of the model circuit (Fig. 2), ``(2^n, 2^n)`` complex."""
        return self._circuit(self.weights)

    def isp_unitary(self) -> torch.Tensor:
        """g_Q of the learned ISP (Fig. 4), ``(2^n, 2^n)`` complex."""
        return self._circuit(self.isp_weights)

    def _circuit(self, weights: torch.Tensor) -> torch.Tensor:
        cache = self._circuit_cache
        if cache is None:
            return _CircuitUnitary.apply(weights)
        key = (id(weights), weights._version, torch.is_grad_enabled(), weights.device, weights.dtype)
        u = cache.get(key)
        if u is None:
            u = _CircuitUnitary.apply(weights)
            if u.requires_grad:
                # Once a backward pass has gone through U its saved tensors are freed: forget it.
                def forget(grad: torch.Tensor, key: tuple = key) -> None:
                    cache.pop(key, None)

                u.register_hook(forget)
            cache[key] = u
        return u

    @contextlib.contextmanager
    def reuse_circuits(self) -> Iterator["QINN"]:
        """Build U and g_Q once and share them between all calls inside the block.

        A training step calls the circuits up to five times (forward, inverse of z, inverse of
        sampled z), each rebuilding the same unitaries from unchanged weights. Inside this block
        each unitary is built once per weight state; an entry is dropped when the weights change
        in place (their version counter moves, e.g. ``optimizer.step()``) and as soon as a
        backward pass has gone through it (its graph is then freed). Outside the block nothing is
        cached. Wrap one training step (forward, losses, backward) per block.
        """
        previous = self._circuit_cache
        self._circuit_cache = {}
        try:
            yield self
        finally:
            self._circuit_cache = previous

    # -- forward direction ------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x' = a x + pi b (sec. 3). Not clipped: events slightly outside [0, pi] stay smooth."""
        return self._encode(self._batch("x", x))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.clamped_ab()
        return a * x + math.pi * b

    def decode(self, x_prime: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`encode`: x = (x' - pi b) / a."""
        x_prime = self._batch("x_prime", x_prime)
        a, b = self.clamped_ab()
        return (x_prime - math.pi * b) / a

    def output_state(self, x: torch.Tensor) -> torch.Tensor:
        """|y> = U|x'>, ``(B, 2^n)`` complex."""
        return self._output_state(self._batch("x", x), self.unitary())

    def _output_state(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return ry_state(self._encode(x)).to(self.cdtype) @ u.transpose(0, 1)

    def measure(self, state: torch.Tensor) -> torch.Tensor:
        """P(qubit i = 1) of each state, ``(B, n)`` (the measurement of eq. 16)."""
        return _abs2(self._state_batch("state", state)) @ self._tab()["bits"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """z = c P(U|a x + pi b>) + d (eq. 12-16), ``(B, n)``."""
        probs = _ForwardMeasure.apply(self.encode(x), self.unitary(), False)
        return self.c * probs + self.d

    def forward_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, J) with the full Jacobian ``J[b, k, i] = dz_k / dx_i``, ``(B, n, n)``.

        Forward mode by hand: d psi / dx'_i is the product state with factor i differentiated,
        so state and n tangents go through U in one matmul; dP_k/dx'_i =
        2 Re sum_{bit_k(s)=1} conj(y_s) dy_{i,s}; J = diag(c) (dP/dx') diag(a). Differentiable
        w.r.t. all parameters (log det J enters the NLL, eq. 7).
        """
        return self._forward_and_jacobian(self._batch("x", x), self.unitary())

    def _forward_and_jacobian(self, x: torch.Tensor, u: Any,
                              measure: Callable = _ForwardMeasure.apply) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.clamped_ab()
        probs, dprobs = measure(a * x + math.pi * b, u, True)
        return self.c * probs + self.d, dprobs * (self.c[:, None] * a)

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Full Jacobian dz/dx, ``(B, n, n)`` with ``[b, k, i] = dz_k/dx_i``."""
        return self.forward_and_jacobian(x)[1]

    def forward_and_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log|det dz/dx|) for the change of variables of eq. 5-7; shapes (B, n), (B,)."""
        return self._forward_and_logdet(self._batch("x", x), self.unitary())

    def _forward_and_logdet(self, x: torch.Tensor, u: Any,
                            measure: Callable = _ForwardMeasure.apply) -> tuple[torch.Tensor, torch.Tensor]:
        z, jac = self._forward_and_jacobian(x, u, measure)
        return z, torch.linalg.slogdet(jac).logabsdet

    # -- inverse direction ------------------------------------------------------------------------
    def _isp_angles(self, probs: torch.Tensor) -> torch.Tensor:
        """psi = g_C(P), the 3n Rot angles of eq. 21, as (B, n, 3)."""
        return self.isp_net(probs).unflatten(-1, (self.n_features, 3))

    def isp_state(self, probs: torch.Tensor) -> torch.Tensor:
        """|y~> = g_Q Rot(psi)|0>, psi = g_C(P) (eq. 21-22, Fig. 4); ``(B, 2^n)`` complex."""
        probs = self._batch("probs", probs)
        prepared = _RotProductState.apply(self._isp_angles(probs))
        return prepared @ self.isp_unitary().transpose(0, 1)

    def inverse_from_state(self, state: torch.Tensor) -> torch.Tensor:
        """x~ from a state |y~>: U^dagger (eq. 13-15), measure, decode the angles, undo a, b.

        With |y~> = |y> = U|x'> this returns x exactly: the round trip the ISP is trained for.
        """
        state = self._state_batch("state", state)
        back = state @ self.unitary().conj()  # rows: (U^dagger s)^T = s^T conj(U)
        p01 = torch.clamp(_abs2(back) @ self._tab()["bits01_t"].T, min=_PROB_EPS)
        n = self.n_features
        x_prime = 2.0 * torch.atan2(torch.sqrt(p01[:, n:]), torch.sqrt(p01[:, :n]))
        a, b = self.clamped_ab()
        return (x_prime - math.pi * b) / a

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """x~ = f^{-1}(z): P = (z - d)/c, ISP (eq. 21-22), U^dagger (eq. 13-15), decode; ``(B, n)``."""
        return self._inverse(self._batch("z", z), self.unitary(), self.isp_unitary())

    def _inverse(self, z: torch.Tensor, u: Any, g_q: Any, measure: Callable = _InverseMeasure.apply) -> torch.Tensor:
        psi = self._isp_angles((z - self.d) / self.c)
        x_prime = measure(psi, u, g_q)
        a, b = self.clamped_ab()
        return (x_prime - math.pi * b) / a

    def fidelity(self, x: torch.Tensor) -> torch.Tensor:
        """F = |<y~|y>|^2 per event (eq. 17, what the SWAP test of Fig. 3 estimates), ``(B,)``.

        |y> = U|x'>; |y~> is built by the ISP from the P measured on |y>.
        """
        return self._fidelity(self._batch("x", x), self.unitary(), self.isp_unitary())

    def _fidelity(self, x: torch.Tensor, u: torch.Tensor, g_q: torch.Tensor) -> torch.Tensor:
        y = self._output_state(x, u)
        prepared = _RotProductState.apply(self._isp_angles(_abs2(y) @ self._tab()["bits"]))
        y_tilde = prepared @ g_q.transpose(0, 1)
        return _abs2((y_tilde.conj() * y).sum(-1))

    # -- one training step, traceable -------------------------------------------------------------
    def step_maps(self) -> "StepMaps":
        """The maps one training step needs, on trusted input, sharing U and g_Q built by this call.

        :meth:`forward_and_logdet`, :meth:`inverse` and :meth:`fidelity` without their input
        checks (a check on the values, ``bool(isnan(x).any())``, cannot be traced into a graph;
        the trainer's batches come from prepared data, checked once) and without the circuit
        cache of :meth:`reuse_circuits` (the two unitaries are built here, once, and every map
        uses them). The arithmetic is the checked methods' own: they call the same functions.
        This is what :meth:`qinn_lib.training.objectives.QINNObjective.compiled_terms` traces into one
        ``torch.compile`` graph. Inputs must already have the model's dtype and device.

        While ``torch.compile`` traces it (:attr:`step_arithmetic` ``"auto"``), the circuits run in
        real arithmetic (:mod:`qinn_lib.models.qinn.real_autograd`: same math, fused by inductor);
        eager they are the complex Functions, unchanged.
        """
        if real_autograd.use_real(self.step_arithmetic):
            ur = real_autograd.circuit_unitary(self.weights)
            gr = real_autograd.circuit_unitary(self.isp_weights)
            return StepMaps(
                forward_and_logdet=lambda x: self._forward_and_logdet(x, ur, real_autograd.forward_measure),
                inverse=lambda z: self._inverse(z, ur, gr, real_autograd.inverse_measure),
                fidelity=lambda x: real_autograd.fidelity(ry_state(self._encode(x)), ur, gr, self._isp_angles,
                                                          self._tab()["bits"]),
            )
        u = _CircuitUnitary.apply(self.weights)
        g_q = _CircuitUnitary.apply(self.isp_weights)
        return StepMaps(
            forward_and_logdet=lambda x: self._forward_and_logdet(x, u),
            inverse=lambda z: self._inverse(z, u, g_q),
            fidelity=lambda x: self._fidelity(x, u, g_q),
        )


class StepMaps(NamedTuple):
    """See :meth:`QINN.step_maps`."""

    forward_and_logdet: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    inverse: Callable[[torch.Tensor], torch.Tensor]
    fidelity: Callable[[torch.Tensor], torch.Tensor]
