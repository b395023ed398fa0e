"""A trained QINN run on a calibrated IBM device model, both directions, as a device would run it.

:class:`BackendQINN` is a :class:`~qinn_lib.hardware.device.DeviceQINN` whose two measurements --
P(qubit k = 1) of the forward circuit for encoded angles x' and of the inverse circuit for ISP
angles psi -- are made by a backend: the circuits of :mod:`qinn_lib.hardware.ibm.qiskit_circuits`,
routed once (:mod:`qinn_lib.hardware.ibm.routing`), run for all events in batched sampler calls
(:mod:`qinn_lib.hardware.ibm.sampler`) with ``shots`` shots each on Aer's simulation of the
backend's calibration (or on perfect gates, ``noisy=False``), optionally readout-mitigated
(:mod:`qinn_lib.hardware.ibm.mitigation`). Everything classical (the encoding, z = c P + d, the ISP
network g_C, the angle decoding) is the model's own, in float64, so :meth:`generate_scaled`,
:meth:`reconstruct` and :mod:`qinn_lib.hardware.sweeps` work unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from qinn_lib.hardware.device import Device, DeviceQINN
from qinn_lib.hardware.ibm import backends, mitigation, qiskit_circuits, routing
from qinn_lib.hardware.ibm.sampler import CHUNK, Runner, aer_sampler

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["CALIBRATION_SHOTS", "BackendQINN"]

F64 = torch.float64
#: Shots of each readout-calibration circuit: e01, e10 ~ 1e-2 are then known to ~3e-4.
CALIBRATION_SHOTS = 100_000


class BackendQINN(DeviceQINN):
    """``model`` on backend ``backend`` (a fake IBM backend's name): ``shots`` per event and circuit,
    seed ``seed`` (shots; :meth:`reseed` restarts it), chunks kept in ``store``. ``mitigate`` applies
    readout-error mitigation to every measurement (it can be switched between calls: the raw
    results are what is stored). ``sampler_factory`` (seed -> a SamplerV2) replaces Aer's sampler,
    e.g. with ``qiskit_ibm_runtime.SamplerV2(mode=backend)`` on a real device; ``sampler_name`` then
    names it (kept results are keyed by it, so a device's results never mix with a simulation's)."""

    def __init__(self, model: "QINN", backend: str, *, shots: int = 10_000, seed: int, noisy: bool = True,
                 mitigate: bool = False, store: str | Path | None = None, transpile_seed: int = 0,
                 chunk: int = CHUNK, sampler_factory: Callable[[int], Any] | None = None,
                 sampler_name: str | None = None) -> None:
        super().__init__(model, Device(), seed=seed)
        self.backend = backends.load_backend(backend)
        self.noisy = bool(noisy)
        self.mitigate = bool(mitigate)
        # route first: a circuit too wide for the backend fails before the noise model is built
        self.routed = {d: routing.route(qiskit_circuits.circuit(self.model, d), self.backend, seed=transpile_seed)
                       for d in qiskit_circuits.DIRECTIONS}
        if sampler_factory is None:
            sim = backends.noisy_simulator(backend) if self.noisy else backends.ideal_simulator()
            sampler_factory = aer_sampler(sim)
            sampler_name = "aer-noisy" if self.noisy else "aer-ideal"
        elif sampler_name is None:
            sampler_name = f"custom sampler {getattr(sampler_factory, '__qualname__', type(sampler_factory).__name__)}"
        name = self.backend.name + ("" if self.noisy else "-ideal")
        tag = f"{self.backend.name}:{self.backend.backend_version}:{sampler_name}"
        self.runner = Runner(sampler_factory, backend=name, shots=shots, seed=seed, store=store, chunk=chunk, tag=tag)
        self._calibration_runner = Runner(sampler_factory, backend=name, shots=max(CALIBRATION_SHOTS, int(shots)),
                                          seed=seed, store=store, tag=tag)
        self._calibration: mitigation.ReadoutCalibration | None = None

    @property
    def label(self) -> str:
        return self.backend.name + (" (mitigated)" if self.mitigate else "")

    @property
    def measured_qubits(self) -> list[int]:
        """Every physical qubit either circuit reads out."""
        return sorted({q for r in self.routed.values() for q in r.measured})

    @property
    def calibration(self) -> mitigation.ReadoutCalibration:
        """The readout calibration of :attr:`measured_qubits`, measured once (two circuits)."""
        if self._calibration is None:
            self._calibration = mitigation.calibrate(self._calibration_runner, self.measured_qubits,
                                                     self.backend.num_qubits)
        return self._calibration

    def resources(self) -> list[dict[str, Any]]:
        """:func:`routing.routed_resources` of the forward and the inverse circuit."""
        return [routing.routed_resources(self.routed[d], self.backend) for d in qiskit_circuits.DIRECTIONS]

    def measure_raw(self, direction: str, values: np.ndarray) -> np.ndarray:
        """P(bit k = 1) as read, without mitigation, ``(events, n)``."""
        return self.runner.marginals(self.routed[direction], values)

    def _measure(self, direction: str, values: torch.Tensor) -> torch.Tensor:
        p = self.measure_raw(direction, values.detach().to(F64).reshape(len(values), -1).numpy())
        if self.mitigate:
            p = mitigation.mitigate(p, self.calibration, self.routed[direction].measured)
        return torch.as_tensor(p, dtype=F64)

    def _measure_forward(self, x_prime: torch.Tensor) -> torch.Tensor:
        return self._measure("forward", x_prime)

    def _measure_inverse(self, psi: torch.Tensor) -> torch.Tensor:
        return self._measure("inverse", psi)  # (B, n, 3) -> (B, 3n), qubit-major as the circuit's psi

    def reseed(self, seed: int) -> "BackendQINN":
        """Shots from ``seed`` on (the routed circuits and the calibration are kept)."""
        self.runner.seed = int(seed)
        return self
