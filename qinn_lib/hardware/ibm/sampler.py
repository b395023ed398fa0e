"""All events of a sample through a routed circuit in batched sampler calls, each chunk of results
kept on disk so an interrupted device run resumes where it stopped.

One sampler call runs one routed circuit (:mod:`qinn_lib.hardware.ibm.routing`) for a chunk of
events, each event a row of parameter values, each with ``shots`` shots: a sampler primitive
(``SamplerV2``) pub ``(circuit, values)``. The default sampler is Qiskit Aer's on the backend's
noisy simulator; with IBM credentials ``qiskit_ibm_runtime.SamplerV2(mode=backend)`` takes the
same pubs (``sampler_factory``; not tested here). A call costs a fixed few seconds on a 133-qubit
device model (the noise model is prepared per call) plus a share per event, so chunks are large
(:data:`CHUNK`); every call is logged (:attr:`Runner.calls`) so the cost can be reported.

What a call returns per event is P(classical bit k = 1), the share of shots with bit k set, for
every bit: exactly what the QINN measures (eq. 16). Chunks are content-addressed: the file name
is a hash of the sampler's name (backend, noisy or ideal), the routed circuit's key, the shots, the
seed and the chunk's parameter values, so a result is reused only for the same sampler, circuit and events, and is written atomically
(:mod:`qinn_lib.atomic`), so a crash mid-write never leaves half a file. A failing sampler is a
:class:`SamplerError` naming the backend, the circuit, the events and the cause, in one line.
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qinn_lib.atomic import atomic_write
from qinn_lib.errors import QinnError, one_line
from qinn_lib.hardware.ibm import extra
from qinn_lib.hardware.ibm.routing import Routed

try:
    from qiskit_aer.primitives import SamplerV2
except ImportError as err:  # the optional extra: one line naming the install command
    raise extra.missing_extra(__name__) from err

__all__ = ["CHUNK", "SamplerError", "Call", "Runner", "marginals_from_bits", "aer_sampler"]

#: Events per sampler call (a call's fixed cost is paid once per chunk; a chunk is what is kept).
CHUNK = 500


class SamplerError(QinnError, RuntimeError):
    """A sampler call failed; the message names the backend, the circuit, the events and the cause."""


@dataclass(frozen=True)
class Call:
    """One chunk: its ``events``, the ``seconds`` it took and whether it was read from disk."""

    circuit: str
    events: int
    seconds: float
    cached: bool


def marginals_from_bits(array: np.ndarray, num_bits: int) -> np.ndarray:
    """P(bit k = 1) per event from a ``BitArray``'s packed bytes ``(events, shots, bytes)`` (big-endian
    bytes, bit 0 the lowest bit of the last byte), ``(events, num_bits)``."""
    bits = np.unpackbits(np.asarray(array, dtype=np.uint8), axis=-1)  # (events, shots, 8 * bytes), MSB first
    return bits[..., ::-1][..., :num_bits].mean(axis=1)


def aer_sampler(simulator: Any) -> Callable[[int], Any]:
    """A factory ``seed -> SamplerV2`` on Aer's ``simulator``."""
    return lambda seed: SamplerV2.from_backend(simulator, seed=int(seed))


def _chunk_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little") & 0x7FFFFFFF


class Runner:
    """Runs routed circuits on one backend's sampler: ``shots`` per event, reproducible from ``seed``
    (every chunk's simulator seed is derived from it and the chunk's content), chunks kept in
    ``store`` (a folder; None keeps them in memory only). ``backend`` names the device in messages;
    ``tag`` names what runs the circuits (device model and calibration version, noisy or ideal
    simulation, or another sampler) and is part of every chunk's key, so two samplers sharing a
    store never read each other's results."""

    def __init__(self, sampler_factory: Callable[[int], Any], *, backend: str, shots: int, seed: int,
                 store: str | Path | None = None, chunk: int = CHUNK, tag: str | None = None) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.sampler_factory = sampler_factory
        self.backend = backend
        self.tag = backend if tag is None else str(tag)
        self.shots = int(shots)
        self.seed = int(seed)
        self.store = None if store is None else Path(store)
        self.chunk = int(chunk)
        self.calls: list[Call] = []
        self._memory: dict[str, np.ndarray] = {}

    def _path(self, key: str) -> Path | None:
        return None if self.store is None else self.store / f"{key}.npy"

    def _load(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is not None and path.is_file():
            try:
                out = np.load(path, allow_pickle=False)
            except (OSError, ValueError):  # unreadable (e.g. from another numpy): measured again
                return None
            self._memory[key] = out
            return out
        return None

    def _save(self, key: str, values: np.ndarray) -> None:
        self._memory[key] = values
        path = self._path(key)
        if path is not None:
            buf = io.BytesIO()
            np.save(buf, values, allow_pickle=False)
            atomic_write(path, lambda fh: fh.write(buf.getvalue()))

    def _run(self, routed: Routed, values: np.ndarray, seed: int) -> np.ndarray:
        start = time.perf_counter()
        try:
            result = self.sampler_factory(seed).run([(routed.circuit, values)], shots=self.shots).result()
            bits = next(iter(result[0].data.values()))
            out = marginals_from_bits(bits.array, bits.num_bits)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # any failure of the simulator or the service: one line, what and why
            raise SamplerError(f"sampler failed on backend {self.backend}, {routed.name} circuit, {len(values)} events "
                               f"x {self.shots} shots: {type(err).__name__}: {one_line(err)}") from err
        if out.shape != (len(values), routed.circuit.num_clbits):
            raise SamplerError(f"sampler on backend {self.backend} returned {out.shape} marginals for "
                               f"{len(values)} events of the {routed.name} circuit")
        self.calls.append(Call(routed.name, len(values), time.perf_counter() - start, False))
        return out

    def marginals(self, routed: Routed, values: np.ndarray) -> np.ndarray:
        """P(bit k = 1) ``(events, n)`` of ``routed`` for logical parameter values ``(events, k)``."""
        bound = routed.bind_order(values)
        out = []
        for start in range(0, len(bound), self.chunk):
            part = np.ascontiguousarray(bound[start:start + self.chunk])
            key = hashlib.sha256(f"{self.tag}:{routed.key}:{self.shots}:{self.seed}:".encode()
                                 + part.tobytes()).hexdigest()[:24]
            found = self._load(key)
            if found is None:
                found = self._run(routed, part, _chunk_seed(self.seed, key))
                self._save(key, found)
            else:
                self.calls.append(Call(routed.name, len(part), 0.0, True))
            out.append(found)
        n = routed.circuit.num_clbits
        return np.concatenate(out) if out else np.zeros((0, n))
