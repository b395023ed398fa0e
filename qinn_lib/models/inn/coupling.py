"""The INN's coupling block and soft permutation (sec. 2, Fig. 1) as FrEIA invertible modules.

- :class:`CubicSplineCoupling`: the features are split as ``x = [u, v]``; a subnet
  (:func:`mlp_subnet_constructor`, a ReLU MLP) predicts from ``v`` the ``2 K + 2`` parameters of a
  ``K``-bin cubic spline for every dimension of ``u`` (the paper's "2 xi + 2 parameters for each
  u_i"), and ``u`` goes through that spline. log|det J| is the sum of ``log spline'(u_i)`` (eq. 3:
  the Jacobian is triangular).
- :func:`apply_spline`: the spline, nflows' ``unconstrained_cubic_spline`` [54] with linear tails,
  by default through the mask-free rewrite :mod:`qinn_lib.models.inn.spline` (which
  ``torch.compile`` can fuse), nflows' own code kept selectable as the reference.
- :class:`SoftPermutation`: a fixed, seeded random orthogonal matrix (log|det| = 0) that mixes the
  transformed and the passive half; rebuilt from the seed, never saved.

Why the constants here (tail bound, near-identity start, float64 spline, lowered quadratic
threshold) is the module docstring of :mod:`qinn_lib.models.inn.model`, which assembles these
blocks into the INN of Table 1.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from FrEIA.modules import InvertibleModule
from nflows.transforms.splines.cubic import unconstrained_cubic_spline
from torch import nn

from qinn_lib.models.inn import spline as _maskfree

__all__ = ['DEFAULT_TAIL_BOUND', 'LAST_LAYER_SCALE', 'SPLINE_IMPLS', 'mlp_subnet_constructor', 'apply_spline', 'CubicSplineCoupling', 'SoftPermutation']


#: Half-width B of the spline interval [-B, B]; identity outside (see module docstring).
DEFAULT_TAIL_BOUND = 4.0
#: Scale of the subnet's last layer relative to torch's default init (near-identity start).
LAST_LAYER_SCALE = 1e-2
#: Offset of the boundary-derivative logits: 3 * sigmoid(-ln 2) = 1, so zero output = identity.
_IDENTITY_DERIVATIVE_LOGIT = -math.log(2.0)
#: nflows drops the cubic term below this leading coefficient (its default 1e-3 is too coarse).
_QUADRATIC_THRESHOLD = 1e-9
#: The spline is evaluated in this dtype (nflows' closed-form inverse is inaccurate in float32).
_SPLINE_DTYPE = torch.float64
_DTYPES = (torch.float32, torch.float64)
#: Implementations of the same spline: "maskfree" (qinn_lib.models.inn.spline, the default: compilable) and
#: "nflows" (nflows' own code, the reference the tests compare against).
SPLINE_IMPLS = ("maskfree", "nflows")


def _check_spline(where: str, impl: Any) -> str:
    if impl not in SPLINE_IMPLS:
        raise ValueError(f"{where}: spline must be one of {SPLINE_IMPLS}, got {impl!r}")
    return impl


def _check_int(where: str, name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{where}: {name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _check_dtype(dtype: Any) -> torch.dtype:
    if dtype not in _DTYPES:
        raise ValueError(f"INN: dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def mlp_subnet_constructor(layers: int, hidden: int, *, generator: torch.Generator | None = None,
                           last_layer_scale: float = LAST_LAYER_SCALE,
                           dtype: torch.dtype = torch.float32) -> Callable[[int, int], nn.Sequential]:
    """FrEIA-style ``subnet_constructor(dims_in, dims_out)`` for a ReLU MLP.

    ``layers`` linear maps (``dims_in -> hidden -> ... -> hidden -> dims_out``), ReLU between them.
    Weights and biases are drawn uniformly from torch's default range ``+-1/sqrt(fan_in)`` with
    ``generator`` (in float64, then cast to ``dtype``); the last layer is scaled by
    ``last_layer_scale`` so the coupling starts near the identity (module docstring).
    """
    layers = _check_int("mlp_subnet_constructor", "layers", layers, 1)
    hidden = _check_int("mlp_subnet_constructor", "hidden", hidden, 1)
    if not (last_layer_scale > 0.0 and math.isfinite(last_layer_scale)):
        # 0 would make every spline bin exactly linear, where nflows' inverse returns NaN.
        raise ValueError(f"mlp_subnet_constructor: last_layer_scale must be > 0, got {last_layer_scale!r}")

    def construct(dims_in: int, dims_out: int) -> nn.Sequential:
        widths = [dims_in] + [hidden] * (layers - 1) + [dims_out]
        modules: list[nn.Module] = []
        for k in range(layers):
            # skip_init: no draw from the global RNG (all values come from `generator` below)
            lin = torch.nn.utils.skip_init(nn.Linear, widths[k], widths[k + 1], dtype=dtype)
            bound = 1.0 / math.sqrt(widths[k])
            if k == layers - 1:
                bound *= last_layer_scale
            with torch.no_grad():
                for p in (lin.weight, lin.bias):
                    p.copy_(torch.empty(p.shape, dtype=torch.float64).uniform_(-bound, bound, generator=generator))
            modules.append(lin)
            if k < layers - 1:
                modules.append(nn.ReLU())
        return nn.Sequential(*modules)

    return construct


def apply_spline(active: torch.Tensor, theta: torch.Tensor, bins: int, tail_bound: float,
                 rev: bool, impl: str = "maskfree") -> tuple[torch.Tensor, torch.Tensor]:
    """nflows' cubic spline [54] of every row of ``active`` ``(batch, d)`` with that row's knots
    ``theta`` ``(batch, d, 2 bins + 2)``: returns the transformed values and log|det| summed over
    the ``d`` dimensions (eq. 3: the coupling's Jacobian is triangular), shape ``(batch,)``.

    ``impl="maskfree"`` (default) evaluates it with :mod:`qinn_lib.models.inn.spline` (the same function,
    without boolean masks, so ``torch.compile`` can fuse it; its inverse's gradient is the exact
    implicit one), ``impl="nflows"`` with nflows' ``unconstrained_cubic_spline`` itself (the
    reference the tests compare against). Rows are independent, so the rows of several models can
    go through one call (see :class:`INNStack`). Evaluated in float64 (module docstring) and
    returned in ``active``'s dtype.
    """
    k = bins
    theta = theta.to(_SPLINE_DTYPE)
    args = dict(
        unnormalized_widths=theta[..., :k],
        unnormalized_heights=theta[..., k:2 * k],
        unnorm_derivatives_left=theta[..., 2 * k:2 * k + 1] + _IDENTITY_DERIVATIVE_LOGIT,
        unnorm_derivatives_right=theta[..., 2 * k + 1:] + _IDENTITY_DERIVATIVE_LOGIT,
        inverse=rev,
        tail_bound=tail_bound,
        quadratic_threshold=_QUADRATIC_THRESHOLD,
    )
    if impl == "maskfree":
        out, logabsdet = _maskfree.unconstrained_cubic_spline(active.to(_SPLINE_DTYPE), **args)
    elif impl == "nflows":
        out, logabsdet = unconstrained_cubic_spline(active.to(_SPLINE_DTYPE), tails="linear", **args)
    else:
        raise ValueError(f"apply_spline: impl must be one of {SPLINE_IMPLS}, got {impl!r}")
    # nflows returns log|d out / d in| elementwise, for the inverse when inverse=True: that is
    # FrEIA's sign convention already.
    return out.to(active.dtype), logabsdet.sum(dim=1).to(active.dtype)


class CubicSplineCoupling(InvertibleModule):
    """Cubic-spline coupling block [54] as a FrEIA ``InvertibleModule`` (sec. 2, Fig. 1).

    Parameters
    ----------
    dims_in : FrEIA input shapes, ``[(n,)]`` with ``n >= 2``.
    dims_c : conditions; not supported (must be empty).
    subnet_constructor : ``f(dims_in, dims_out) -> nn.Module`` (FrEIA convention), e.g.
        :func:`mlp_subnet_constructor`.
    bins : number K of spline bins.
    tail_bound : B; the spline acts on ``[-B, B]`` and is the identity outside.
    two_sided : False (default, Table-1 counts): one half-step, ``u <- s(u; v)``. True: a second
        half-step ``v <- s(v; u_new)`` with its own subnet, so every feature changes in every
        block (about twice the parameters).
    spline : "maskfree" (default) or "nflows": which implementation of the same spline
        :func:`apply_spline` uses.

    The split is ``u = x[:, :n // 2]`` (transformed), ``v = x[:, n // 2:]`` (conditioner).
    ``forward([x], rev=False)`` returns ``((y,), log|det dy/dx|)`` and with ``rev=True`` the inverse
    and ``log|det dx/dy|``, both of shape ``(batch,)`` (FrEIA's convention).
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]], dims_c: Sequence[tuple[int, ...]] | None = None,
                 subnet_constructor: Callable[[int, int], nn.Module] | None = None, bins: int = 8,
                 tail_bound: float = DEFAULT_TAIL_BOUND, two_sided: bool = False,
                 spline: str = "maskfree") -> None:
        super().__init__(dims_in, dims_c)
        if len(self.dims_in) != 1 or len(self.dims_in[0]) != 1:
            raise ValueError(f"CubicSplineCoupling: dims_in must be [(n,)] (one flat input), got {dims_in!r}")
        if self.dims_c:
            raise ValueError(f"CubicSplineCoupling: conditions are not supported, got dims_c={dims_c!r}")
        if subnet_constructor is None:
            raise ValueError("CubicSplineCoupling: subnet_constructor is required")
        n = _check_int("CubicSplineCoupling", "dims_in[0][0]", self.dims_in[0][0], 2)
        self.bins = _check_int("CubicSplineCoupling", "bins", bins, 1)
        if not (isinstance(tail_bound, (int, float)) and math.isfinite(tail_bound) and tail_bound > 0):
            raise ValueError(f"CubicSplineCoupling: tail_bound must be a positive number, got {tail_bound!r}")
        self.tail_bound = float(tail_bound)
        self.two_sided = bool(two_sided)
        self.spline = _check_spline("CubicSplineCoupling", spline)
        self.n_u = n // 2
        self.n_v = n - self.n_u
        self.params_per_dim = 2 * self.bins + 2  # K widths, K heights, 2 boundary derivatives
        self.subnet1 = subnet_constructor(self.n_v, self.n_u * self.params_per_dim)
        self.subnet2 = (subnet_constructor(self.n_u, self.n_v * self.params_per_dim)
                        if self.two_sided else None)

    def extra_repr(self) -> str:
        return (f"n_u={self.n_u}, n_v={self.n_v}, bins={self.bins}, tail_bound={self.tail_bound}, "
                f"two_sided={self.two_sided}, spline={self.spline!r}")

    def spline_parameters(self, passive: torch.Tensor, subnet: nn.Module | None = None) -> torch.Tensor:
        """The knots ``subnet(passive)`` as ``(batch, n_active, 2 K + 2)`` (``subnet1`` by default)."""
        subnet = self.subnet1 if subnet is None else subnet
        n_active = self.n_u if subnet is self.subnet1 else self.n_v
        return subnet(passive).reshape(passive.shape[0], n_active, self.params_per_dim)

    def _spline(self, subnet: nn.Module, active: torch.Tensor, passive: torch.Tensor,
                rev: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform ``active`` by the spline whose knots ``subnet(passive)`` predicts."""
        return apply_spline(active, self.spline_parameters(passive, subnet), self.bins, self.tail_bound, rev,
                            impl=self.spline)

    def forward(self, x_or_z: Iterable[torch.Tensor], c: Iterable[torch.Tensor] | None = None,
                rev: bool = False, jac: bool = True) -> tuple[tuple[torch.Tensor], torch.Tensor]:
        (x,) = x_or_z
        u, v = torch.split(x, [self.n_u, self.n_v], dim=1)
        if not self.two_sided:
            u, log_jac = self._spline(self.subnet1, u, v, rev)
        elif not rev:
            u, j1 = self._spline(self.subnet1, u, v, rev=False)
            v, j2 = self._spline(self.subnet2, v, u, rev=False)
            log_jac = j1 + j2
        else:  # undo the second half-step first; its conditioner u is still the transformed one
            v, j2 = self._spline(self.subnet2, v, u, rev=True)
            u, j1 = self._spline(self.subnet1, u, v, rev=True)
            log_jac = j1 + j2
        return (torch.cat([u, v], dim=1),), log_jac

    def output_dims(self, input_dims: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        if len(input_dims) != 1:
            raise ValueError(f"CubicSplineCoupling: expects one input, got {len(input_dims)}")
        return input_dims


class SoftPermutation(InvertibleModule):
    """Fixed random orthogonal matrix ``Q`` (sec. 2: "unitary soft-permutation matrix").

    ``Q`` is the QR decomposition of a seeded standard-normal matrix with the signs of ``R``'s
    diagonal moved into ``Q`` (this makes ``Q`` Haar-distributed and the decomposition unique).
    ``y = Q x``, ``x = Q^T y``; ``|det Q| = 1`` so the log-determinant is 0.

    ``Q`` is a pure function of ``(seed, n)``, kept in float64 outside the module's buffers and
    rounded once to the input's dtype when used. A float32 buffer cast to float64 by
    ``model.double()`` would be orthogonal only to ~1e-7, which breaks float64 round trips at that
    level; this way ``Q`` is orthogonal to the precision of whatever dtype the model runs in.
    Nothing is trained or saved: the seed (part of every run config) rebuilds it.
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]], dims_c: Sequence[tuple[int, ...]] | None = None,
                 seed: int = 0) -> None:
        super().__init__(dims_in, dims_c)
        if len(self.dims_in) != 1 or len(self.dims_in[0]) != 1:
            raise ValueError(f"SoftPermutation: dims_in must be [(n,)] (one flat input), got {dims_in!r}")
        if self.dims_c:
            raise ValueError(f"SoftPermutation: conditions are not supported, got dims_c={dims_c!r}")
        n = _check_int("SoftPermutation", "dims_in[0][0]", self.dims_in[0][0], 1)
        self.seed = _check_int("SoftPermutation", "seed", seed, 0)
        # numpy's PCG64 normal stream has been stable since numpy 1.17 (not a formal promise:
        # tests/test_inn.py pins the seed-0 matrix so a change would fail loudly, not silently
        # alter the permutations of a loaded checkpoint).
        q, r = np.linalg.qr(np.random.default_rng(self.seed).standard_normal((n, n)))
        q = q * np.sign(np.diag(r))[None, :]
        self._q64 = torch.from_numpy(q)  # plain attribute: .to()/.double() must not round it
        self._cache: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    @property
    def matrix(self) -> torch.Tensor:
        """``Q`` in float64 (a copy)."""
        return self._q64.clone()

    def extra_repr(self) -> str:
        return f"n={self._q64.shape[0]}, seed={self.seed}"

    def _q(self, like: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            # Inside a compiled graph the cast is folded into the graph; filling the cache there
            # would be a dict mutation that invalidates the graph's guards (one needless recompile).
            return self._q64.to(dtype=like.dtype, device=like.device)
        key = (like.dtype, like.device)
        q = self._cache.get(key)
        if q is None:
            q = self._cache[key] = self._q64.to(dtype=like.dtype, device=like.device)
        return q

    def forward(self, x_or_z: Iterable[torch.Tensor], c: Iterable[torch.Tensor] | None = None,
                rev: bool = False, jac: bool = True) -> tuple[tuple[torch.Tensor], torch.Tensor]:
        (x,) = x_or_z
        q = self._q(x)
        # Row vectors: y = Q x  <=>  y_row = x_row Q^T; the inverse uses Q^{-1} = Q^T.
        y = x @ q if rev else x @ q.T
        return (y,), x.new_zeros(x.shape[0])

    def output_dims(self, input_dims: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        if len(input_dims) != 1:
            raise ValueError(f"SoftPermutation: expects one input, got {len(input_dims)}")
        return input_dims
