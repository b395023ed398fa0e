"""The classical baseline of the paper: an INN of cubic-spline coupling blocks (sec. 2, Table 1).

This module holds the model: :class:`INN`, :class:`INNStack` (the seeds of an ensemble in
lockstep), :func:`build_inn`; Table 1's sizes are :data:`qinn_lib.models.inn.sizes.INN_SIZES`. The coupling block, the
soft permutation and the application of the spline are :mod:`qinn_lib.models.inn.coupling`.

Architecture
------------
``INN`` = fixed centring ``x -> x - pi/2``, then ``blocks`` x
[:class:`~qinn_lib.models.inn.coupling.CubicSplineCoupling`,
:class:`~qinn_lib.models.inn.coupling.SoftPermutation`], assembled with FrEIA's ``SequenceINN`` (the paper builds its INN with
FrEIA [55]; FrEIA 0.2 has no spline block, so the coupling is a FrEIA ``InvertibleModule`` whose
spline is nflows' ``unconstrained_cubic_spline``, the implementation of Neural Spline Flows [54];
by default evaluated by :mod:`qinn_lib.models.inn.spline`, the same function without boolean masks so that
``torch.compile`` can fuse it, with nflows' own code kept selectable as the reference,
``spline="nflows"``).

* Coupling (sec. 2, Fig. 1): the features are split as ``x = [u, v]`` with ``u`` the first
  ``n // 2`` features (2 of 5, the same split as FrEIA's coupling blocks) and ``v`` the rest. A subnet predicts
  from ``v``, for every dimension of ``u``, ``2 K + 2`` numbers for a ``K``-bin cubic spline: ``K``
  widths, ``K`` heights and the two boundary derivatives (nflows needs only those two; the inner
  knot derivatives follow from the widths and heights). This is the paper's "2 xi + 2 parameters
  for each u_i". ``u`` is transformed by the monotone spline on ``[-B, B]`` (``B`` = ``tail_bound``),
  the identity outside (linear tails). log|det J| is the sum of ``log spline'(u_i)`` (eq. 3: the
  Jacobian is triangular).
* Soft permutation (sec. 2): a fixed, seeded random orthogonal matrix; log|det| = 0. It mixes the
  transformed and the passive half, so after a few blocks every feature has been transformed.

How Table 1 maps onto this (n = 5 features)
--------------------------------------------
"# Spline bins" = ``K``; "# Coupling blocks" = number of [coupling, soft permutation] pairs;
"Layers per block" = number of *linear maps* of the subnet (3 = in -> hidden -> hidden -> out,
ReLU between); "Hidden dimension" = width of the hidden layers. Each block has ONE coupling
half-step (only ``u`` is transformed; the soft permutation takes care of mixing, as in FrEIA's
``AllInOneBlock``). Trainable parameters per block, with ``n_v = 3`` subnet inputs and
``n_u (2K + 2) = 2 (2K + 2)`` outputs::

    (n_v + 1) h + (h + 1) h + (h + 1) n_u (2K + 2)

    2k : K=5, h=8,  6 blocks:  6 * (32 + 72 + 216)    =  1 920
    6k : K=8, h=12, 9 blocks:  9 * (48 + 156 + 468)   =  6 048
    16k: K=8, h=24, 10 blocks: 10 * (96 + 600 + 900)  = 15 960

i.e. the Table-1 labels to the nearest thousand. The alternatives land far off, which is why we
chose this reading: two half-steps per block (``two_sided=True``: ``v`` is then transformed too,
conditioned on the new ``u``, by a second subnet ``n_u -> n_v (2K + 2)``) gives 4 440 / 14 094 /
36 180; "3 hidden layers" (4 linear maps) adds ``(h + 1) h`` per subnet, e.g. 21 960 for 16k.

Tail bound and centring
-----------------------
The INN sees the same ``[0, pi]``-scaled features as the QINN. The fixed first step subtracts
``pi/2`` (log|det| = 0), so inputs lie in ``[-pi/2, pi/2]^n``: a vector of Euclidean norm at most
``(pi/2) sqrt(5) = 3.51``. Orthogonal matrices keep that norm, so with ``B = 4`` (the default) no
feature of a training event starts in a linear tail of any block at initialisation, and
``B = 4`` also covers the N(0, 1) latent to ``P(|z_i| > 4) = 6e-5`` per dimension. Values outside
``[-B, B]`` (test events a little outside ``[0, pi]``, latent outliers) pass through the identity
tails, so the map is a bijection of all of R^n. (nflows' cubic spline does not force its end
slopes to 1, so the map is continuous but has a kink at +-B: log|det J| jumps there. This only
matters on that measure-zero set; the round trip is exact across it.)

Initialisation and numerics
---------------------------
* "Zero output = identity": nflows sets the boundary derivatives to ``3 sigmoid(d) * slope``; we
  add the fixed offset ``-ln 2`` to ``d`` so that an all-zero subnet output gives uniform bins with
  every knot derivative equal to 1, i.e. the identity spline.
* The subnet's last layer is *not* exactly zero but torch's default range scaled by
  ``LAST_LAYER_SCALE = 1e-2`` (outputs ~1e-3): an exactly zero last layer makes every bin exactly
  linear, and nflows' closed-form inverse then divides 0 by 0 (its quadratic branch) and returns
  NaN, in the values and in the gradients. Blocks therefore start a few 1e-3 from the identity
  (the whole 16k INN at init: |log det| < 0.05, |z - Q x| < 0.03 with Q the product of the soft
  permutations), the standard near-identity start for stable flow training, and gradients reach
  every subnet layer from the first step.
* The spline is evaluated in float64 whatever the model dtype, and nflows' ``quadratic_threshold``
  is lowered from 1e-3 to 1e-9. Measured on random splines: in float32, nflows' closed-form cubic
  inverse (Blinn's method) loses up to 4e-2 (and NaN for sharp splines); with the default threshold
  it drops the cubic term whenever the leading coefficient is below 1e-3, an *approximation*
  whose inverse is off by up to 1e-5 even in float64. With both changes the round trip of one
  spline is exact to < 1e-9 for smooth and moderately sharp splines. The spline maths itself is
  nflows' (``spline="nflows"`` runs nflows' code; the default :mod:`qinn_lib.models.inn.spline` computes the
  same values expression for expression, tested against it). One deliberate difference: the
  inverse's gradient is the implicit one (``dx = (dy - ds) / s'``), exact to rounding, where
  autograd through nflows' closed form loses up to ~1e-6 relative near the identity spline.
* Seeded: one ``torch.Generator(seed)`` draws every weight (in float64, then cast, so float32 and
  float64 models start identical); permutation ``i`` uses its own stream ``SeedSequence([seed, i])``.
  The global RNG is never touched. The permutation matrices are rebuilt from the seed, not saved
  (see :class:`~qinn_lib.models.inn.coupling.SoftPermutation`), so a checkpoint holds the
  trainable parameters only.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from FrEIA.framework import SequenceINN
from torch import nn

from qinn_lib.compiling import compiled_step
from qinn_lib.models.inn.coupling import (
    DEFAULT_TAIL_BOUND,
    CubicSplineCoupling,
    SoftPermutation,
    _check_dtype,
    _check_int,
    _check_spline,
    apply_spline,
    mlp_subnet_constructor,
)
from qinn_lib.models.inn.sizes import INN_SIZES

__all__ = ['INN', 'INNStack', 'build_inn']


class INN(nn.Module):
    """Spline-coupling INN of Table 1 (INN column) with the QINN's model API.

    Parameters
    ----------
    size : "2k", "6k" or "16k" (``qinn_lib.models.inn.sizes.INN_SIZES``).
    n_features : number of features (5 in the paper).
    seed : seeds every initial weight and every soft permutation.
    dtype : torch.float32 (training default) or torch.float64.
    two_sided : two coupling half-steps per block instead of one (not Table 1; module docstring).
    tail_bound : B of every spline (default 4, module docstring).
    spline : "maskfree" (default, :mod:`qinn_lib.models.inn.spline`) or "nflows" (the reference): two
        implementations of the same spline (see :func:`apply_spline`).

    ``forward(x) -> z``, ``forward_and_logdet(x) -> (z, log|det dz/dx|)``, ``inverse(z) -> x`` on
    ``(batch, n_features)`` tensors of ``[0, pi]``-scaled features; the log-determinant has shape
    ``(batch,)``. Inputs are converted to the model's dtype and device. :meth:`compile_` makes the
    training step's forward and inverse passes compiled (same function, 4-5x faster on a CPU).
    """

    #: ``inverse`` is the exact inverse of ``forward`` on all of R^n (module docstring), so the
    #: density of eq. 5 integrates to 1 and ``inverse`` of N(0, 1) samples has exactly that density
    #: (qinn_lib.evaluation.normalisation counts those samples in the box instead of integrating).
    exact_bijection = True

    def __init__(self, size: str = "16k", n_features: int = 5, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32, two_sided: bool = False,
                 tail_bound: float = DEFAULT_TAIL_BOUND, spline: str = "maskfree") -> None:
        super().__init__()
        if size not in INN_SIZES:
            raise ValueError(f"INN: unknown size {size!r}; valid sizes are {sorted(INN_SIZES)}")
        n = _check_int("INN", "n_features", n_features, 2)
        seed = _check_int("INN", "seed", seed, 0)
        dtype = _check_dtype(dtype)
        arch = dict(INN_SIZES[size])
        self.size = size
        self.n_features = n
        self.seed = seed
        self.two_sided = bool(two_sided)
        self.architecture = arch
        self.tail_bound = float(tail_bound)
        self.spline = _check_spline("INN", spline)
        self._compiled: Callable | None = None

        gen = torch.Generator().manual_seed(seed)
        subnet = mlp_subnet_constructor(arch["subnet_layers"], arch["hidden"], generator=gen, dtype=dtype)
        # Independent stream per permutation: changing the number of blocks does not change the
        # earlier matrices, and no stream is shared with the subnet weights.
        perm_seeds = [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(arch["blocks"])]
        flow = SequenceINN(n)
        for i in range(arch["blocks"]):
            flow.append(CubicSplineCoupling, subnet_constructor=subnet, bins=arch["bins"],
                        tail_bound=self.tail_bound, two_sided=self.two_sided, spline=self.spline)
            flow.append(SoftPermutation, seed=perm_seeds[i])
        self.flow = flow.to(dtype)
        # Fixed first step: centre [0, pi] on 0 (log|det| = 0); not saved, never trained.
        self.register_buffer("center", torch.full((n,), math.pi / 2, dtype=dtype), persistent=False)

    @classmethod
    def from_config(cls, cfg: Any, n_features: int = 5) -> "INN":
        """Build from an :class:`~qinn_lib.training.config.INNRunConfig` (size, seed, dtype, device)."""
        model = cls(cfg.size, n_features, seed=cfg.seed, dtype=getattr(torch, cfg.dtype))
        return model.to(torch.device(cfg.device))

    @property
    def dtype(self) -> torch.dtype:
        return self.center.dtype

    def extra_repr(self) -> str:
        return (f"size={self.size!r}, n_features={self.n_features}, {self.architecture}, "
                f"two_sided={self.two_sided}, tail_bound={self.tail_bound}, dtype={self.dtype}, "
                f"spline={self.spline!r}")

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters; Table 1: 2k / 6k / 16k (measured: 1 920 / 6 048 / 15 960)."""
        n = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {"quantum": 0, "classical": n, "total": n}

    def _batch(self, name: str, t: Any) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
            raise ValueError(f"INN: {name} must be a real tensor, got dtype {t.dtype}")
        if t.ndim != 2 or t.shape[1] != self.n_features:
            raise ValueError(f"INN: {name} must have shape (batch, {self.n_features}), got {tuple(t.shape)}")
        t = t.to(dtype=self.dtype, device=self.center.device)
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            raise ValueError(f"INN: {name} of shape {tuple(t.shape)} has {int(bad.sum())} non-finite (NaN/inf) entries")
        return t

    def _flow_pass(self, t: torch.Tensor, rev: bool) -> Any:
        """The flow after input checks: ``(z, log|det|)`` of ``x = t``, or ``x`` of ``z = t`` (rev).
        One function for both directions, so :meth:`compile_` has one fallback (and one warning)."""
        if rev:
            h, _ = self.flow(t, rev=True, jac=False)
            return h + self.center
        return self.flow(t - self.center, jac=True)

    def forward_and_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = f(x)`` and ``log|det dz/dx|`` per event (eq. 5), shapes (B, n) and (B,)."""
        x = self._batch("x", x)
        return (self._compiled or self._flow_pass)(x, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_and_logdet(x)[0]

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``x = f^{-1}(z)`` (generation: z ~ N(0, 1) -> scaled features)."""
        z = self._batch("z", z)
        return (self._compiled or self._flow_pass)(z, True)

    def compile_(self, **compile_kwargs: Any) -> "INN":
        """Compile the flow's forward and inverse passes (``torch.compile`` through
        :func:`qinn_lib.compiling.compiled_step`); returns ``self``. Idempotent.

        The compiled passes serve the calls of a training step (autograd on, the first such
        call's batch shape); every other call (``no_grad`` validation and generation, another
        batch size) stays eager, so it never triggers a second compile. The function is the same
        (float rounding aside: the compiler fuses and reorders float64 arithmetic); a platform
        where compiling fails falls back to eager with one warning. The first compiled call
        compiles (minutes cold, seconds with the on-disk cache; see ``python -m qinn_lib.bench``).
        Whether a run should compile at all is :func:`qinn_lib.compiling.should_compile`.
        ``compile_kwargs`` go to ``torch.compile`` (e.g. ``backend="aot_eager"`` in tests).
        """
        if self._compiled is None:
            self._compiled = compiled_step(self._flow_pass, label=f"INN {self.size}", **compile_kwargs)
        return self

    @property
    def is_compiled(self) -> bool:
        """Whether :meth:`compile_` was called (and compiling has not fallen back to eager)."""
        return self._compiled is not None and self._compiled.is_compiled()


class INNStack(nn.Module):
    """Several INNs of one architecture evaluated in lockstep: a performance path for training
    seed ensembles, never a different model.

    Why: a batch-128 step of the 16k INN is ~40k tiny tensor ops (nflows' spline is 80-85 % of
    them), so its cost is per-op overhead, not arithmetic. The spline treats every row on its own,
    so the rows of all members go through ONE :func:`apply_spline` call per block; everything else
    (subnets, soft permutations, losses, Adam) stays per member. Measured with
    ``python -m qinn_lib.bench``: see the README for the per-member speed-up.

    Each member keeps its own parameters, seed and permutations; ``forward_and_logdet`` and
    ``inverse`` take and return one tensor per member and agree with the members' own methods to
    float rounding (tests/test_inn.py). They are not guaranteed bit-identical: an elementwise op's
    result can depend in the last bit on where a value sits in the (longer) tensor (vectorised
    body vs scalar tail), so a seed trained in a stack and the same seed trained alone start to
    differ at the 1e-16 level and, through 58k chaotic training steps, end up as two different
    (equally valid) trainings. A stack trained with the same seeds gives the same numbers again.
    """

    def __init__(self, members: Sequence[INN]) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise ValueError("INNStack: needs at least one member")
        for i, m in enumerate(members):
            if not isinstance(m, INN):
                raise ValueError(f"INNStack: member {i} is a {type(m).__name__}, not an INN")
        ref = members[0]
        for i, m in enumerate(members[1:], start=1):
            for attr in ("size", "n_features", "two_sided", "tail_bound", "dtype", "spline"):
                if getattr(m, attr) != getattr(ref, attr):
                    raise ValueError(f"INNStack: member {i} has {attr}={getattr(m, attr)!r}, member 0 has "
                                     f"{getattr(ref, attr)!r}; only INNs of one architecture can be stacked")
        self.members = nn.ModuleList(members)
        self._compiled: Callable | None = None

    def __len__(self) -> int:
        return len(self.members)

    def _check(self, name: str, ts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        ts = list(ts)
        if len(ts) != len(self.members):
            raise ValueError(f"INNStack: expected {len(self.members)} {name} tensors (one per member), got {len(ts)}")
        return [m._batch(f"{name}[{i}]", t) for i, (m, t) in enumerate(zip(self.members, ts))]

    def _run(self, hs: list[torch.Tensor], rev: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The members' ``flow`` (FrEIA ``SequenceINN.forward``) on ``hs``, module by module."""
        n_modules = len(self.members[0].flow.module_list)
        log_jacs: list[Any] = [0] * len(hs)
        for j in (reversed(range(n_modules)) if rev else range(n_modules)):
            mods = [m.flow.module_list[j] for m in self.members]
            if isinstance(mods[0], CubicSplineCoupling) and not mods[0].two_sided:
                c0 = mods[0]
                parts = [torch.split(h, [c0.n_u, c0.n_v], dim=1) for h in hs]
                theta = torch.cat([c.spline_parameters(v) for c, (_, v) in zip(mods, parts)])
                out, lj = apply_spline(torch.cat([u for u, _ in parts]), theta, c0.bins, c0.tail_bound, rev,
                                       impl=c0.spline)
                sizes = [h.shape[0] for h in hs]
                hs = [torch.cat([u, v], dim=1) for u, (_, v) in zip(out.split(sizes), parts)]
                js = lj.split(sizes)
            else:  # soft permutations (and two-sided couplings): member by member
                results = [mod([h], rev=rev, jac=True) for mod, h in zip(mods, hs)]
                hs = [r[0][0] for r in results]
                js = [r[1] for r in results]
            log_jacs = [j_ + lj_ for j_, lj_ in zip(js, log_jacs)]  # FrEIA's order: j + log_det_jac
        return hs, log_jacs

    def _flow_pass(self, ts: list[torch.Tensor], rev: bool) -> Any:
        """Every member's flow after input checks (see :meth:`INN._flow_pass`)."""
        if rev:
            hs, _ = self._run(ts, rev=True)
            return [h + m.center for m, h in zip(self.members, hs)]
        return self._run([x - m.center for m, x in zip(self.members, ts)], rev=False)

    def forward_and_logdet(self, xs: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(z_i, log|det dz_i/dx_i|)]``: :meth:`INN.forward_and_logdet` of every member."""
        xs = self._check("x", xs)
        zs, logdets = (self._compiled or self._flow_pass)(xs, False)
        return list(zip(zs, logdets))

    def inverse(self, zs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``[x_i]``: :meth:`INN.inverse` of every member."""
        zs = self._check("z", zs)
        return (self._compiled or self._flow_pass)(zs, True)

    def compile_(self, **compile_kwargs: Any) -> "INNStack":
        """Compile the whole stack's forward and inverse passes (all members in one graph per
        direction); returns ``self``. Same contract as :meth:`INN.compile_` (training-step calls
        compiled, everything else eager, eager fallback with one warning). Compile the stack, not
        its members: the members' own methods stay eager."""
        if self._compiled is None:
            label = f"INNStack {self.members[0].size} x{len(self.members)}"
            self._compiled = compiled_step(self._flow_pass, label=label, **compile_kwargs)
        return self

    @property
    def is_compiled(self) -> bool:
        """Whether :meth:`compile_` was called (and compiling has not fallen back to eager)."""
        return self._compiled is not None and self._compiled.is_compiled()


def build_inn(size: str = "16k", n_features: int = 5, *, seed: int = 0,
              dtype: torch.dtype = torch.float32, two_sided: bool = False,
              tail_bound: float = DEFAULT_TAIL_BOUND, spline: str = "maskfree") -> INN:
    """The Table-1 INN of the given size ("2k", "6k" or "16k"); see :class:`INN`."""
    return INN(size, n_features, seed=seed, dtype=dtype, two_sided=two_sided, tail_bound=tail_bound,
               spline=spline)

