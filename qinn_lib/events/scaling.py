"""The paper's scaling of every feature to ``[0, pi]`` and its exact inverse.

Sec. 3 (state preparation): "The entire dataset is first scaled to R^n -> [0, pi]^n" so that every
feature can be used as a qubit rotation angle (angle encoding, ``S_x = R_y(x)``). We use the
per-feature affine map fixed by the *training* split's minimum and maximum::

    u = pi (x - lo) / (hi - lo),        x = lo + u (hi - lo) / pi.

Validation/test/generated values outside the training range map slightly outside ``[0, pi]``;
they are deliberately *not* clipped, because clipping would make the map non-invertible and
silently move events. Clipping for the circuit is the model's business (the paper clips after its
trainable linear transformation).

Densities: the Jacobian ``du/dx`` is the constant diagonal ``pi / (hi - lo)``, so a density in
scaled space converts to physical space as ``log p_x(x) = log p_u(u(x)) + log_abs_det``
(:attr:`AngleScaler.log_abs_det`, eq. 5 of the paper applied to this fixed first layer).

Fitting: ``AngleScaler.fit(train)`` called on the *class* returns a new fitted scaler;
``scaler.fit(train)`` on an (unfitted) instance fits it in place and returns it. Both spellings
work so neither is a silent trap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from qinn_lib.events.observables import FEATURES

if TYPE_CHECKING:
    import torch

#: The range the training split is mapped onto (sec. 3): the input domain of every model here.
SCALED_RANGE: tuple[float, float] = (0.0, math.pi)


class _ClassOrInstanceMethod:
    """Descriptor: ``Cls.fit(x)`` builds a new instance, ``obj.fit(x)`` fits ``obj`` in place."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj, cls):
        def bound(*args, **kwargs):
            # On the class: a fresh scaler with the default feature names.
            instance = obj if obj is not None else cls()
            return self.func(instance, *args, **kwargs)

        bound.__doc__ = self.func.__doc__
        bound.__name__ = self.func.__name__
        return bound


class AngleScaler:
    """Affine per-feature map of the training range ``[lo, hi]`` onto ``[0, pi]``.

    Parameters
    ----------
    lo, hi : per-feature minimum and maximum (both or neither; ``None`` = not fitted yet).
    names : feature names used in error messages (default :data:`qinn_lib.events.observables.FEATURES`).
    """

    def __init__(self, lo: Sequence[float] | None = None, hi: Sequence[float] | None = None,
                 names: Sequence[str] = FEATURES) -> None:
        self.names: tuple[str, ...] = tuple(str(n) for n in names)
        if len(self.names) == 0:
            raise ValueError("AngleScaler: names must list at least one feature")
        self.lo: np.ndarray | None = None
        self.hi: np.ndarray | None = None
        if (lo is None) != (hi is None):
            raise ValueError("AngleScaler: give both lo and hi, or neither (then call fit)")
        if lo is not None:
            self._set_range(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))

    # -- fitting ----------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def is_fitted(self) -> bool:
        return self.lo is not None

    def _set_range(self, lo: np.ndarray, hi: np.ndarray) -> None:
        for label, arr in (("lo", lo), ("hi", hi)):
            if arr.shape != (self.n_features,):
                raise ValueError(
                    f"AngleScaler.{label} must have shape ({self.n_features},) for features "
                    f"{self.names}, got shape {arr.shape}"
                )
            bad = [self.names[j] for j in range(self.n_features) if not np.isfinite(arr[j])]
            if bad:
                raise ValueError(f"AngleScaler.{label} is not finite for feature(s) {bad}")
        flat = [f"{self.names[j]} (lo={lo[j]!r}, hi={hi[j]!r})"
                for j in range(self.n_features) if not hi[j] > lo[j]]
        if flat:
            raise ValueError(
                f"AngleScaler: feature(s) {flat} have hi <= lo -- a constant feature cannot be "
                "scaled to [0, pi]; drop it or check the training data"
            )
        self.lo, self.hi = lo.copy(), hi.copy()

    @_ClassOrInstanceMethod
    def fit(self, train: Any) -> "AngleScaler":
        """Fit ``lo``/``hi`` to the per-feature min/max of ``train`` (the TRAINING split only)."""
        x = self._check_numpy(train, "AngleScaler.fit(train)", need_fit=False)
        if x.shape[0] < 2:
            raise ValueError(f"AngleScaler.fit(train): need at least 2 events, got {x.shape[0]}")
        self._set_range(x.min(axis=0), x.max(axis=0))
        return self

    # -- checks -----------------------------------------------------------------------------
    def _require_fit(self, where: str) -> None:
        if not self.is_fitted:
            raise RuntimeError(
                f"{where} called before the scaler was fitted; use AngleScaler.fit(train) "
                "or AngleScaler.from_dict(d) first"
            )

    def _check_numpy(self, x: Any, where: str, need_fit: bool = True) -> np.ndarray:
        if need_fit:
            self._require_fit(where)
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: cannot convert input to a float array: {exc}") from None
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(
                f"{where}: expected shape (N, {self.n_features}) with columns {self.names}, "
                f"got shape {arr.shape}"
            )
        finite = np.isfinite(arr)
        if not finite.all():
            cols = [self.names[j] for j in range(self.n_features) if not finite[:, j].all()]
            raise ValueError(
                f"{where}: {int((~finite.all(axis=1)).sum())} rows contain NaN or inf "
                f"(feature(s) {cols})"
            )
        return arr

    def _check_torch(self, x: "torch.Tensor", where: str, check_finite: bool) -> None:
        import torch

        self._require_fit(where)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}")
        if x.shape[-1] != self.n_features:
            raise ValueError(
                f"{where}: expected last dimension {self.n_features} ({self.names}), "
                f"got shape {tuple(x.shape)}"
            )
        if check_finite:
            finite = torch.isfinite(x.detach())
            if not bool(finite.all()):
                per_col = finite.reshape(-1, self.n_features).all(dim=0)
                cols = [self.names[j] for j in range(self.n_features) if not bool(per_col[j])]
                raise ValueError(f"{where}: input contains NaN or inf (feature(s) {cols})")

    # -- numpy ------------------------------------------------------------------------------
    @property
    def scale(self) -> np.ndarray:
        """``du/dx = pi / (hi - lo)`` per feature."""
        self._require_fit("AngleScaler.scale")
        return np.pi / (self.hi - self.lo)

    def transform(self, x: Any) -> np.ndarray:
        """Physical features ``(N, n)`` -> angles; the training range maps onto ``[0, pi]``."""
        arr = self._check_numpy(x, "AngleScaler.transform")
        # pi * ((x - lo) / (hi - lo)): dividing first makes x = hi map to exactly pi.
        return np.pi * ((arr - self.lo) / (self.hi - self.lo))

    def inverse(self, u: Any) -> np.ndarray:
        """Angles ``(N, n)`` -> physical features (exact inverse of :meth:`transform`)."""
        arr = self._check_numpy(u, "AngleScaler.inverse")
        return self.lo + (arr / np.pi) * (self.hi - self.lo)

    # -- torch ------------------------------------------------------------------------------
    def _params_torch(self, like: "torch.Tensor"):
        import torch

        lo = torch.as_tensor(self.lo, dtype=like.dtype, device=like.device)
        hi = torch.as_tensor(self.hi, dtype=like.dtype, device=like.device)
        # width in the input's dtype, so that x = hi maps to exactly pi in float32 as well
        return lo, hi - lo

    def transform_torch(self, x: "torch.Tensor", check_finite: bool = True) -> "torch.Tensor":
        """Differentiable :meth:`transform`; dtype and device follow ``x`` (shape ``(..., n)``)."""
        self._check_torch(x, "AngleScaler.transform_torch", check_finite)
        lo, width = self._params_torch(x)
        return math.pi * ((x - lo) / width)

    def inverse_torch(self, u: "torch.Tensor", check_finite: bool = True) -> "torch.Tensor":
        """Differentiable :meth:`inverse`. ``check_finite=False`` skips the NaN/inf check
        (e.g. inside a training loop that handles non-finite losses itself)."""
        self._check_torch(u, "AngleScaler.inverse_torch", check_finite)
        lo, width = self._params_torch(u)
        return lo + (u / math.pi) * width

    # -- densities --------------------------------------------------------------------------
    @property
    def log_abs_det(self) -> float:
        """``log |det du/dx| = sum_j log(pi / (hi_j - lo_j))`` (constant).

        ``log p_phys(x) = log p_scaled(u(x)) + log_abs_det``; NLL_phys = NLL_scaled - log_abs_det.
        """
        self._require_fit("AngleScaler.log_abs_det")
        return float(np.sum(np.log(np.pi / (self.hi - self.lo))))

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain lists/strings only (safe for ``torch.load(weights_only=True)`` checkpoints)."""
        self._require_fit("AngleScaler.to_dict")
        return {"kind": "AngleScaler", "names": list(self.names),
                "lo": [float(v) for v in self.lo], "hi": [float(v) for v in self.hi]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AngleScaler":
        if not isinstance(d, dict):
            raise TypeError(f"AngleScaler.from_dict expects a dict, got {type(d).__name__}")
        missing = [k for k in ("lo", "hi") if k not in d]
        if missing:
            raise ValueError(f"AngleScaler.from_dict: missing key(s) {missing}; got keys {sorted(d)}")
        if d.get("kind", "AngleScaler") != "AngleScaler":
            raise ValueError(f"AngleScaler.from_dict: record is of kind {d['kind']!r}, not 'AngleScaler'")
        return cls(lo=d["lo"], hi=d["hi"], names=d.get("names", FEATURES))

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"AngleScaler(unfitted, names={self.names})"
        ranges = ", ".join(f"{n}=[{a:.4g}, {b:.4g}]" for n, a, b in zip(self.names, self.lo, self.hi))
        return f"AngleScaler({ranges})"
