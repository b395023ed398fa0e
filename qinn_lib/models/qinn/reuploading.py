"""Where the QINN's density ceiling comes from: the same forward flow with the input uploaded
1, 2 or 3 times (data re-uploading), trained with the NLL alone (notebook 06).

The QINN encodes each feature once, ``R_y(x'_i)|0>`` (eq. 12), so every output ``z_k`` is a
degree-1 trigonometric polynomial along each ``x'_i`` (:func:`qinn_lib.evaluation.diagnostics.fourier_check`),
whatever the depth of the model circuit. Here the encoding is repeated: the ``n_layers`` layers of
the model circuit (Fig. 2, the same hardware-efficient layers) are split into ``uploads`` blocks
and every block is preceded by the encoding ``prod_i R_y(x'_i)``::

    |y> = W_u R(x') ... W_2 R(x') W_1 R(x') |0>,    z = c P(|y>) + d   (eq. 16),

with the same state preparation ``x' = a x + pi b`` and the same number of trainable parameters
for every ``uploads`` (uploads = 1 *is* the QINN's forward map, tested). Each output is then a
trigonometric polynomial of degree ``uploads`` along each coordinate. If the NLL-only ceiling
moves with the number of uploads, the encoding is what limits the density.

What does NOT carry over: this is a forward-only density model. The QINN's inverse rests on the
single encoding: ``U^dagger`` undoes the model circuit and the angles are read off a product state
(eq. 13-15), and the ISP (sec. 3.1, eq. 21-22) is trained to prepare that state. With repeated
uploads the state before the last block is no longer a product state of the angles, so there is
no exact inverse, no ISP and no invertibility loss here, and the model is trained and compared on
its NLL only (eq. 7). Its NLL is flagged like the QINN's where the map folds
(:func:`qinn_lib.evaluation.diagnostics.flagged_nll`).

The Jacobian ``dz/dx`` (needed for the NLL) is propagated forward: the state and its n tangents
``d|psi>/dx'_i`` go through every gate together; at the encoding gate of qubit i the tangent i picks
up ``R_y'(x'_i)`` applied to the state (product rule). Two implementations of that one recursion:
the readable one here, gate by gate (:meth:`ReuploadingFlow.forward_and_jacobian_gatewise`, the
test oracle of the fast one, itself checked against the PennyLane circuit of
:func:`pennylane_reference`), and the fast one every method uses, a few real matrix products per
block (:mod:`qinn_lib.models.qinn.reuploading_sim`), which :meth:`ReuploadingFlow.compile_` can
also compile into one graph per architecture.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from qinn_lib.compiling import compiled_step
from qinn_lib.models.qinn.autograd import circuit_unitary
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.reuploading_sim import block_unitaries, measure, propagate
from qinn_lib.models.qinn.simulator import _COMPLEX

__all__ = ['ReuploadingFlow', 'pennylane_reference']


def _block_sizes(n_layers: int, uploads: int) -> list[int]:
    """``n_layers`` split into ``uploads`` blocks as evenly as possible (earlier blocks one larger)."""
    return [n_layers // uploads + (1 if k < n_layers % uploads else 0) for k in range(uploads)]


class ReuploadingFlow(nn.Module):
    """Forward-only flow ``x -> z`` with the input uploaded ``uploads`` times (module docstring).

    Parameters
    ----------
    n_features : qubits n.
    n_layers : model-circuit layers in all (Table 1: 12), split evenly between the uploads.
    uploads : how many times the encoding ``prod_i R_y(x'_i)`` is applied (1 = the QINN).
    seed : seeds the circuit weights, drawn exactly as the QINN draws its model-circuit weights,
        so ``uploads = 1`` with the same seed starts from the same forward map.
    dtype : torch.float32 or torch.float64.
    """

    # Same state preparation x' = a x + pi b with a in [0, 1], b in [0, 1 - a] as the QINN (sec. 3).
    clamped_ab = QINN.clamped_ab
    constrain_ = QINN.constrain_

    def __init__(self, n_features: int = 5, n_layers: int = 12, uploads: int = 1, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        for name, value, lo in (("n_features", n_features, 1), ("n_layers", n_layers, 1), ("uploads", uploads, 1),
                                ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"ReuploadingFlow: {name} must be an integer >= {lo}, got {value!r}")
        if uploads > n_layers:
            raise ValueError(f"ReuploadingFlow: uploads ({uploads}) must not exceed n_layers ({n_layers})")
        if dtype not in _COMPLEX:
            raise ValueError(f"ReuploadingFlow: dtype must be torch.float32 or torch.float64, got {dtype!r}")
        n = n_features
        self.n_features, self.n_layers, self.uploads = n, n_layers, uploads
        self.blocks = _block_sizes(n_layers, uploads)
        gen = torch.Generator().manual_seed(seed)
        # The QINN's initialisation (qinn.QINN.__init__): a = 1, b = 0, weights uniform in
        # [0, 2 pi) drawn first in float64 from the seeded generator, c = 4, d = -2.
        self.a = nn.Parameter(torch.ones(n, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n, dtype=dtype))
        self.weights = nn.Parameter((2.0 * math.pi * torch.rand((n_layers, n, 3), generator=gen,
                                                                dtype=torch.float64)).to(dtype))
        self.c = nn.Parameter(torch.full((n,), 4.0, dtype=dtype))
        self.d = nn.Parameter(torch.full((n,), -2.0, dtype=dtype))
        s = torch.arange(1 << n)
        bits = ((s[:, None] >> torch.arange(n - 1, -1, -1)) & 1).to(dtype)  # (2^n, n), wire 0 most significant
        self.register_buffer("bits", bits, persistent=False)
        self._compiled: Callable | None = None  # compile_(): the compiled forward_and_logdet

    @classmethod
    def from_config(cls, cfg: Any, n_features: int = 5) -> "ReuploadingFlow":
        """Build from a :class:`~qinn_lib.training.config.ReuploadingRunConfig`."""
        dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.dtype]
        return cls(n_features, cfg.n_layers, cfg.uploads, seed=cfg.seed, dtype=dtype).to(torch.device(cfg.device))

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, n_layers={self.n_layers}, uploads={self.uploads}, blocks={self.blocks}"

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters: the circuit angles (quantum) and a, b, c, d (classical)."""
        q = self.weights.numel()
        c = sum(p.numel() for p in (self.a, self.b, self.c, self.d))
        return {"quantum": q, "classical": c, "total": q + c}

    # -- the circuit ------------------------------------------------------------------------------
    def _check(self, name: str, t: Any) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.ndim != 2 or t.shape[1] != self.n_features:
            raise ValueError(f"ReuploadingFlow: {name} must have shape (batch, {self.n_features}), got {tuple(t.shape)}")
        return t.to(dtype=self.dtype, device=self.a.device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x' = a x + pi b (sec. 3)."""
        a, b = self.clamped_ab()
        return a * self._check("x", x) + math.pi * b

    def _apply_qubit(self, rows: torch.Tensor, gate: torch.Tensor, q: int) -> torch.Tensor:
        """Per-event 2x2 ``gate`` (B, 2, 2) on qubit ``q`` of every row of ``rows`` (B, R, 2^n)."""
        b, r, dim = rows.shape
        left = 1 << q
        v = rows.reshape(b, r, left, 2, dim // (2 * left))
        return torch.einsum("bac,brlcs->brlas", gate.to(rows.dtype), v).reshape(b, r, dim)

    def _rows_gatewise(self, x_prime: torch.Tensor, jacobian: bool) -> torch.Tensor:
        """The output state (row 0) and, with ``jacobian``, its tangents d/dx'_i (rows 1..n), (B, R, 2^n),
        gate by gate in complex arithmetic: the readable reference of the fast path."""
        n = self.n_features
        batch = x_prime.shape[0]
        half = 0.5 * x_prime
        cos, sin = torch.cos(half), torch.sin(half)
        gates = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, n, 2, 2)
        dgates = 0.5 * torch.stack([torch.stack([-sin, -cos], -1), torch.stack([cos, -sin], -1)], -2)
        rows = torch.zeros(batch, n + 1 if jacobian else 1, 1 << n, dtype=_COMPLEX[self.dtype], device=x_prime.device)
        rows[:, 0, 0] = 1.0
        start = 0
        for size in self.blocks:
            for q in range(n):  # the encoding R(x') = prod_q R_y(x'_q); gates on distinct qubits commute
                new = self._apply_qubit(rows, gates[:, q], q)
                if jacobian:  # product rule: tangent q gains R_y'(x'_q) applied to the state
                    extra = self._apply_qubit(rows[:, :1], dgates[:, q], q)
                    new = torch.cat([new[:, :1 + q], new[:, 1 + q:2 + q] + extra, new[:, 2 + q:]], dim=1)
                rows = new
            rows = rows @ circuit_unitary(self.weights[start:start + size]).transpose(0, 1)
            start += size
        return rows

    def _measured(self, x_prime: torch.Tensor, jacobian: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(P, dP/dx') by the fast path (:mod:`qinn_lib.models.qinn.reuploading_sim`)."""
        rows = propagate(x_prime, block_unitaries(self.weights, self.blocks), jacobian)
        return measure(rows, self.bits, jacobian)

    def forward_angles(self, x_prime: torch.Tensor) -> torch.Tensor:
        """z = c P + d as a function of the encoded angles x' (B, n)."""
        probs = self._measured(self._check("x_prime", x_prime), False)[0]
        return self.c * probs + self.d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_angles(self.encode(x))

    def forward_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, J) with ``J[b, k, i] = dz_k/dx_i``: dP_k/dx'_i = 2 Re sum_{bit_k(s)=1} conj(psi_s) dpsi_{i,s},
        J = diag(c) dP/dx' diag(a)."""
        return _forward_and_jacobian(self, self._check("x", x))

    def forward_and_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log|det dz/dx|) for the NLL (eq. 5-7); compiled after :meth:`compile_` for the
        calls of a training step."""
        x = self._check("x", x)
        return (self._compiled or _forward_and_logdet)(self, x)

    def compile_(self, **compile_kwargs: Any) -> "ReuploadingFlow":
        """Compile :meth:`forward_and_logdet` (the whole NLL step's model side) with ``torch.compile``
        through :func:`qinn_lib.compiling.compiled_step`; returns ``self``. Idempotent.

        One compiled function per process takes the model as an argument, so every flow of one
        architecture, dtype and batch shape (the seeds of notebook 06) shares one graph. Only the
        calls of a training step are compiled (autograd on, the first such call's batch shape);
        validation under ``no_grad`` stays eager. A failing compiler falls back to eager with one
        warning. Whether a run should compile is :func:`qinn_lib.compiling.should_compile`'s
        decision (the trainer calls this only then). ``compile_kwargs`` go to ``torch.compile``.
        """
        if self._compiled is None:
            key = tuple(sorted((k, repr(v)) for k, v in compile_kwargs.items()))
            if key not in _COMPILED:
                # dynamic=False: another architecture gets a static graph of its own.
                _COMPILED[key] = compiled_step(_forward_and_logdet, label="ReuploadingFlow.forward_and_logdet",
                                               **{"dynamic": False, **compile_kwargs})
            self._compiled = _COMPILED[key]
        return self

    @property
    def is_compiled(self) -> bool:
        """Whether :meth:`compile_` was called (and compiling has not fallen back to eager)."""
        return self._compiled is not None and self._compiled.is_compiled()

    # -- the readable reference -------------------------------------------------------------------
    def forward_and_jacobian_gatewise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_and_jacobian` by the gate-by-gate recursion (:meth:`_rows_gatewise`): the
        readable form, slower, the fast path's oracle (tests)."""
        a, b = self.clamped_ab()
        rows = self._rows_gatewise(a * self._check("x", x) + math.pi * b, True)
        psi, tangents = rows[:, :1], rows[:, 1:]
        probs = (psi[:, 0].real.square() + psi[:, 0].imag.square()) @ self.bits
        overlap = (psi.conj() * tangents).real  # (B, i, s)
        dprobs = 2.0 * torch.einsum("bis,sk->bki", overlap, self.bits)
        return self.c * probs + self.d, dprobs * (self.c[:, None] * a)

    def forward_and_logdet_gatewise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward_and_logdet` by the gate-by-gate reference."""
        z, jac = self.forward_and_jacobian_gatewise(x)
        return z, torch.linalg.slogdet(jac).logabsdet


#: The process's compiled forward_and_logdet, by compile options (ReuploadingFlow.compile_).
_COMPILED: dict[tuple, Callable] = {}


def _forward_and_jacobian(model: ReuploadingFlow, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fast (z, J) on a checked batch x: a function of the model and x, so one compiled graph
    serves every model of an architecture."""
    a, b = model.clamped_ab()
    probs, dprobs = model._measured(a * x + math.pi * b, True)
    return model.c * probs + model.d, dprobs * (model.c[:, None] * a)


def _forward_and_logdet(model: ReuploadingFlow, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    z, jac = _forward_and_jacobian(model, x)
    # contiguous: see reuploading_sim.measure (inductor's slogdet backward and a strided Jacobian)
    return z, torch.linalg.slogdet(jac.contiguous()).logabsdet


def pennylane_reference(model: ReuploadingFlow) -> Callable[[torch.Tensor], torch.Tensor]:
    """The test oracle: ``x' (n,) -> z (n,)`` through a PennyLane ``default.qubit`` QNode of the same
    circuit (per block: :func:`qinn_lib.models.qinn.circuits.state_preparation`, then
    :func:`qinn_lib.models.qinn.circuits.model_circuit`; measured P(qubit = 1)), in float64, differentiable
    with torch autograd (so ``torch.autograd.functional.jacobian`` gives the reference Jacobian)."""
    import pennylane as qml

    from qinn_lib.models.qinn.circuits import model_circuit, state_preparation  # deferred: PennyLane (~1.3 s to import)

    n = model.n_features
    wires = list(range(n))
    weights = model.weights.detach().double()
    c, d = model.c.detach().double(), model.d.detach().double()

    @qml.qnode(qml.device("default.qubit", wires=n), interface="torch", diff_method="backprop")
    def circuit(x_prime):
        start = 0
        for size in model.blocks:
            state_preparation(x_prime, wires)
            model_circuit(weights[start:start + size], wires)
            start += size
        return [qml.expval(qml.Projector([1], wires=w)) for w in wires]

    def f(x_prime: torch.Tensor) -> torch.Tensor:
        return c * torch.stack(list(circuit(x_prime))) + d

    return f
