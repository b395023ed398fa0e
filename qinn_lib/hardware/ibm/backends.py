"""IBM devices by name: Qiskit's fake backends, each with a real calibration snapshot, and the Qiskit
Aer simulators that run circuits with that calibration's noise.

A fake backend (``qiskit_ibm_runtime.fake_provider``) is a real device's coupling map, native gate
set (CZ on Heron, ECR on Eagle, CX on Falcon; plus sqrt(X), X and Rz) and a snapshot of its
calibration: per-qubit T1, T2 and readout errors, per-gate errors and durations.
:func:`noisy_simulator` is ``AerSimulator.from_backend``: readout errors, depolarising gate errors
and thermal relaxation over each gate's duration, all from the calibration, none chosen by us;
the density-matrix method gives each event's exact noisy outcome distribution, from which the
shots are drawn. :func:`ideal_simulator` runs the same routed circuits without noise.

Names are accepted as the class (``FakeTorino``), the backend's own name (``fake_torino``) or the
device (``torino``); an unknown name is an :class:`UnknownBackendError` listing the available ones.
"""

from __future__ import annotations

import difflib
import functools
import statistics
from typing import Any, Sequence

from qinn_lib.errors import QinnError
from qinn_lib.hardware.ibm import extra

try:
    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime import fake_provider
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2
except ImportError as err:  # the optional extra: one line naming the install command
    raise extra.missing_extra(__name__) from err

__all__ = ["UnknownBackendError", "available_backends", "load_backend", "noisy_simulator", "ideal_simulator",
           "two_qubit_gate", "describe", "calibration"]


class UnknownBackendError(QinnError, ValueError):
    """A backend name that is not one of Qiskit's fake backends; the message lists the available ones."""


@functools.cache
def _classes() -> dict[str, type]:
    out = {}
    for attr in dir(fake_provider):
        cls = getattr(fake_provider, attr)
        if isinstance(cls, type) and issubclass(cls, FakeBackendV2) and attr.startswith("Fake") \
                and attr != "FakeFractionalBackend":  # a test double of fractional gates, not a device
            out[attr] = cls
    return out


def available_backends() -> list[str]:
    """Class names of every fake backend (each a real device's calibration snapshot)."""
    return sorted(_classes())


def _key(name: str) -> str:
    return name.lower().removeprefix("fake").replace("_", "").removesuffix("v2")


def _resolve(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UnknownBackendError(f"backend name must be a non-empty string, got {name!r}; "
                                  f"available: {', '.join(available_backends())}")
    by_key = {_key(c): c for c in _classes()}
    found = by_key.get(_key(name.strip()))
    if found is None:
        close = difflib.get_close_matches(_key(name), list(by_key), n=3)
        hint = f" (did you mean {', '.join(by_key[c] for c in close)}?)" if close else ""
        raise UnknownBackendError(f"unknown backend {name!r}{hint}; available: {', '.join(available_backends())}")
    return found


@functools.cache
def _load(cls_name: str):
    return _classes()[cls_name]()


def load_backend(name: str):
    """The fake backend called ``name`` (class, backend or device name; loaded once per process)."""
    return _load(_resolve(name))


@functools.cache
def _noisy(cls_name: str) -> AerSimulator:
    return AerSimulator.from_backend(_load(cls_name), method="density_matrix")


def noisy_simulator(name: str) -> AerSimulator:
    """``AerSimulator.from_backend`` of ``name`` with the density-matrix method; built once per
    process (building the noise model of a 133-qubit device takes seconds)."""
    return _noisy(_resolve(name))


def ideal_simulator() -> AerSimulator:
    """Aer without noise (statevector): the routed circuits as they would run on perfect gates."""
    return AerSimulator(method="statevector")


def two_qubit_gate(backend) -> str:
    """The backend's native two-qubit gate (``cz``, ``ecr`` or ``cx``)."""
    names = [g for g in backend.target.operation_names if backend.target.operation_from_name(g).num_qubits == 2]
    if not names:
        raise QinnError(f"backend {backend.name} has no two-qubit gate")
    return sorted(names)[0]


def describe(backend) -> dict[str, Any]:
    """Name, processor family, qubits, native gates and the calibration snapshot's date."""
    processor = dict(getattr(backend, "_conf_dict", {}).get("processor_type") or {})
    props = backend.properties()
    return {
        "backend": backend.name, "family": str(processor.get("family", "?")),
        "revision": str(processor.get("revision", "?")), "qubits": int(backend.num_qubits),
        "two_qubit_gate": two_qubit_gate(backend),
        "basis": sorted(g for g in backend.target.operation_names if g in ("rz", "sx", "x", "cz", "ecr", "cx")),
        "calibrated": str(props.last_update_date.date()) if props is not None else "?",
    }


def _median(values: Sequence[float | None]) -> float:
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else float("nan")


def calibration(backend, qubits: Sequence[int] | None = None) -> dict[str, float]:
    """Medians of the calibration over ``qubits`` (all if None): two-qubit gate error (couplings
    between those qubits), sqrt(X) error, readout error, T1 and T2 [us], two-qubit gate duration [ns]."""
    target = backend.target
    qs = list(range(backend.num_qubits)) if qubits is None else [int(q) for q in qubits]
    chosen = set(qs)
    gate = two_qubit_gate(backend)
    pairs = [p for k, p in target[gate].items() if p is not None and set(k) <= chosen]
    props = [backend.qubit_properties(q) for q in qs]
    return {
        "two_qubit_error": _median([p.error for p in pairs]),
        "two_qubit_ns": 1e9 * _median([p.duration for p in pairs]),
        "sx_error": _median([target["sx"][(q,)].error for q in qs]),
        "readout_error": _median([target["measure"][(q,)].error for q in qs]),
        "t1_us": 1e6 * _median([p.t1 for p in props]),
        "t2_us": 1e6 * _median([p.t2 for p in props]),
        "n_qubits": len(qs), "n_couplings": len(pairs),
    }
