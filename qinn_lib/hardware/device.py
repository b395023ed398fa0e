"""A trained QINN run on an emulated quantum computer: finite shots and/or gate noise.

:class:`Device` says what the computer does: ``shots`` per circuit (None = exact expectation
values, as in the paper) and a :class:`~qinn_lib.hardware.noise.NoiseModel` (None = noiseless gates).
:class:`DeviceQINN` runs a trained :class:`~qinn_lib.models.qinn.model.QINN` on it, in both directions, exactly
as a device would have to:

- forward (eq. 12-16): encode x' = a x + pi b, run the circuit, estimate P(qubit k = 1) from the
  shots, z = c P + d;
- Jacobian for the NLL (eq. 5-7): the parameter-shift rule, 1 + 2n circuits per event, each with
  its own shots (:mod:`qinn_lib.hardware.shots`); J = diag(c) dP/dx' diag(a);
- inverse (eq. 13-15, 21-22): P = (z - d)/c, psi = g_C(P) (classical), run the ISP preparation,
  g_Q and U^dagger, estimate P(qubit k = 1) from the shots, decode x' = 2 atan2(sqrt(p1), sqrt(p0)).

The circuits are simulated as outcome distributions (exact: |U psi|^2; noisy:
:class:`~qinn_lib.hardware.noise.NoisyCircuits`), shots are drawn from them. Everything runs in float64 on
a copy of the model. With ``Device()`` (no shots, no noise) every output equals the model's own
exact simulation (tests/test_hardware.py), so differences are due to shots and noise alone.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from qinn_lib.hardware.noise import NoiseModel, NoisyCircuits, check_noise
from qinn_lib.hardware.shots import (
    basis_bits,
    check_shots,
    estimate_marginals,
    parameter_shift_jacobian,
    shifted_angles,
)
from qinn_lib.models.qinn.simulator import product_state, rot_matrices, ry_state
from qinn_lib.training.losses.nll import nll_per_event

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.events.scaling import AngleScaler
    from qinn_lib.models.qinn.model import QINN

__all__ = ["Device", "DeviceQINN"]

F64 = torch.float64


@dataclass(frozen=True)
class Device:
    """An emulated quantum computer: ``shots`` per circuit execution (None = exact expectation
    values) and gate ``noise`` (None = perfect gates)."""

    shots: int | None = None
    noise: NoiseModel | None = None

    def __post_init__(self) -> None:
        if self.shots is not None:
            object.__setattr__(self, "shots", check_shots(self.shots))
        check_noise(self.noise)

    @property
    def exact(self) -> bool:
        return self.shots is None and (self.noise is None or self.noise.p == 0)

    @property
    def label(self) -> str:
        parts = [] if self.shots is None else [f"N={self.shots:.0e}".replace("e+0", "e")]
        if self.noise is not None:
            parts.append(self.noise.label)
        return ", ".join(parts) or "exact"


class DeviceQINN:
    """``model`` run on ``device``; shots are drawn with a generator seeded by ``seed``.

    The model is copied to float64 and frozen: what is emulated is the trained model, unchanged.
    """

    def __init__(self, model: "QINN", device: Device, *, seed: int) -> None:
        if not isinstance(device, Device):
            raise ValueError(f"device must be a qinn_lib.hardware.device.Device, got {type(device).__name__}")
        self.device = device
        self.model = copy.deepcopy(model).to(F64).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.n = self.model.n_features
        self.generator = torch.Generator().manual_seed(int(seed))
        self._bits = basis_bits(self.n)
        with torch.no_grad():
            self._a, self._b = self.model.clamped_ab()
            if device.noise is not None:
                self._noisy = NoisyCircuits(self.model, device.noise)
            else:
                self._noisy = None
                self._u = self.model.unitary()
                self._inverse_v = self.model.unitary().mH @ self.model.isp_unitary()  # U^dagger g_Q

    # -- circuits: exact outcome distributions ---------------------------------------------------
    def forward_distribution(self, x_prime: torch.Tensor) -> torch.Tensor:
        """Outcome probabilities ``(B, 2^n)`` of the forward circuit for encoded angles ``(B, n)``."""
        if self._noisy is not None:
            return self._noisy.forward_distribution(x_prime)
        y = ry_state(x_prime).to(torch.complex128) @ self._u.T
        return y.real.square() + y.imag.square()

    def inverse_distribution(self, psi: torch.Tensor) -> torch.Tensor:
        """Outcome probabilities ``(B, 2^n)`` of ISP preparation Rot(psi), g_Q and U^dagger."""
        if self._noisy is not None:
            return self._noisy.inverse_distribution(psi)
        state = product_state(rot_matrices(psi)[..., :, 0])  # prod_k Rot(psi_k)|0>
        back = state @ self._inverse_v.T
        return back.real.square() + back.imag.square()

    # -- measurement ----------------------------------------------------------------------------
    def measure(self, probs: torch.Tensor) -> torch.Tensor:
        """P(qubit k = 1) ``(B, n)`` from outcome probabilities ``(B, 2^n)``: exact marginals, or
        estimates from ``device.shots`` shots."""
        if self.device.shots is None:
            return probs @ self._bits
        return estimate_marginals(probs, self.device.shots, self.generator)

    def _measure_forward(self, x_prime: torch.Tensor) -> torch.Tensor:
        if self._noisy is not None and self.device.shots is None:  # noisy, no shots: the n marginals directly
            return self._noisy.forward_distribution(x_prime, marginals=True)
        return self.measure(self.forward_distribution(x_prime))

    def _measure_inverse(self, psi: torch.Tensor) -> torch.Tensor:
        if self._noisy is not None and self.device.shots is None:
            return self._noisy.inverse_distribution(psi, marginals=True)
        return self.measure(self.inverse_distribution(psi))

    def measure_forward(self, x_prime: torch.Tensor) -> torch.Tensor:
        """P(qubit k = 1) ``(B, n)`` of the forward circuit for encoded angles ``(B, n)``, as measured on the device."""
        return self._measure_forward(torch.as_tensor(x_prime, dtype=F64))

    def measure_inverse(self, psi: torch.Tensor) -> torch.Tensor:
        """P(qubit k = 1) ``(B, n)`` of the inverse circuit for ISP angles ``(B, n, 3)``, as measured on the device."""
        return self._measure_inverse(torch.as_tensor(psi, dtype=F64))

    def reseed(self, seed: int) -> "DeviceQINN":
        """Restart the shot generator from ``seed`` (the circuits are kept: building noisy ones costs)."""
        self.generator = torch.Generator().manual_seed(int(seed))
        return self

    # -- the QINN's two directions -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x' = a x + pi b (sec. 3), the angles of the encoding R_y gates, float64."""
        return self._a * torch.as_tensor(x, dtype=F64) + math.pi * self._b

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """z = c P + d with P measured on the device (eq. 16), ``(B, n)``."""
        return self.model.c * self._measure_forward(self.encode(x)) + self.model.d

    @torch.no_grad()
    def forward_and_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, J) with J[b, k, i] = dz_k/dx_i from the parameter-shift rule: 1 + 2n circuits per
        event, each measured with the device's shots. J = diag(c) dP/dx' diag(a) (as
        :meth:`QINN.forward_and_jacobian`)."""
        angles = shifted_angles(self.encode(x))  # (B, 1 + 2n, n)
        batch, rows, n = angles.shape
        p = self._measure_forward(angles.reshape(batch * rows, n)).view(batch, rows, n)
        probs, dprobs = parameter_shift_jacobian(p)
        return self.model.c * probs + self.model.d, dprobs * (self.model.c[:, None] * self._a)

    @torch.no_grad()
    def isp_angles(self, probs: torch.Tensor) -> torch.Tensor:
        """psi = g_C(P), the ISP's Rot angles (eq. 21), ``(B, n, 3)``; classical, off the device."""
        return self.model.isp_net(torch.as_tensor(probs, dtype=F64)).unflatten(-1, (self.n, 3))

    @torch.no_grad()
    def latent_isp_angles(self, z: torch.Tensor) -> torch.Tensor:
        """psi = g_C((z - d) / c) for latent points ``z`` (eq. 16 inverted, then eq. 21), ``(B, n, 3)``."""
        z = torch.as_tensor(z, dtype=F64)
        return self.isp_angles((z - self.model.d) / self.model.c)

    @torch.no_grad()
    def decode(self, p1: torch.Tensor) -> torch.Tensor:
        """x from the inverse circuit's measured P(qubit k = 1): x' = 2 atan2(sqrt(p1), sqrt(1 - p1)),
        x = (x' - pi b) / a (eq. 12 inverted), ``(B, n)``."""
        p1 = torch.as_tensor(p1, dtype=F64).clamp(0.0, 1.0)
        x_prime = 2.0 * torch.atan2(torch.sqrt(p1), torch.sqrt(1.0 - p1))
        return (x_prime - math.pi * self._b) / self._a

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """x~ = f^{-1}(z) with the ISP circuit measured on the device (eq. 13-15, 21-22), ``(B, n)``."""
        return self.decode(self._measure_inverse(self.latent_isp_angles(z)))

    # -- what notebooks ask for ------------------------------------------------------------------
    def _batched(self, fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
        return torch.cat([fn(x[s:s + batch_size]) for s in range(0, len(x), batch_size)])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
        """x -> z -> x~ (scaled space), both measurements on the device."""
        return self._batched(lambda xb: self.inverse(self.forward(xb)), torch.as_tensor(x, dtype=F64), batch_size)

    @torch.no_grad()
    def generate_scaled(self, n: int, *, latent_seed: int, latent_dtype: torch.dtype = torch.float32,
                        batch_size: int = 8192) -> np.ndarray:
        """``n`` events in the scaled [0, pi] space from z ~ N(0, 1) seeded by ``latent_seed``, all
        rows kept (non-finite ones too), so two devices' samples are aligned event by event. z is
        drawn as :meth:`qinn_lib.experiments.one_model.TrainedModel.generate` draws it (same generator, batches and
        ``latent_dtype``), so an exact device reproduces that sample."""
        z = self.latent(n, latent_seed=latent_seed, latent_dtype=latent_dtype, batch_size=batch_size)
        return np.concatenate([self.inverse(z[s:s + batch_size]).numpy() for s in range(0, n, batch_size)])

    def latent(self, n: int, *, latent_seed: int, latent_dtype: torch.dtype = torch.float32,
               batch_size: int = 8192) -> torch.Tensor:
        """The ``n`` latent points z ~ N(0, 1) of :meth:`generate_scaled` (same generator and batches), float64."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        gen = torch.Generator().manual_seed(int(latent_seed))
        parts = [torch.randn((min(batch_size, n - s), self.n), generator=gen, dtype=latent_dtype)
                 for s in range(0, n, batch_size)]
        return torch.cat(parts).to(F64)

    def generate(self, n: int, *, latent_seed: int, scaler: "AngleScaler", latent_dtype: torch.dtype = torch.float32,
                 batch_size: int = 8192) -> np.ndarray:
        """:meth:`generate_scaled` in physical units, non-finite rows dropped (as
        :meth:`qinn_lib.experiments.one_model.TrainedModel.generate`)."""
        u = self.generate_scaled(n, latent_seed=latent_seed, latent_dtype=latent_dtype, batch_size=batch_size)
        return scaler.inverse(u[np.all(np.isfinite(u), axis=1)])

    @torch.no_grad()
    def nll_per_event(self, x: torch.Tensor, *, log_abs_det_scaling: float = 0.0, batch_size: int = 2048) -> np.ndarray:
        """-log p(x) per event (eq. 5) with z and the Jacobian measured on the device, in the units
        whose scaling has ``log_abs_det_scaling`` (``scaler.log_abs_det`` for physical units, as
        :func:`qinn_lib.evaluation.evaluate.test_nll`)."""
        def one(xb: torch.Tensor) -> torch.Tensor:
            z, jac = self.forward_and_jacobian(xb)
            return nll_per_event(z, torch.linalg.slogdet(jac).logabsdet, include_constant=True)

        per_event = self._batched(one, torch.as_tensor(x, dtype=F64), batch_size)
        return per_event.numpy() - float(log_abs_det_scaling)
