"""The QINN's NLL piece as PennyLane + JAX would write it: the benchmark's strongest peer.

The piece is what the NLL (eq. 5-7) needs of the model circuit of Fig. 2 for a batch: z = c P(U|a x
+ pi b>) + d, the full Jacobian dz/dx and log|det dz/dx| (``fwd+logdet``), and, for a training
step of that loss, the gradient of the batch mean of ``0.5 |z|^2 - log|det J|`` with respect to
a, b, c, d and the circuit weights (``step``). It is built as a PennyLane user with JAX would build
it: a ``default.qubit`` QNode with ``interface="jax"`` and backprop (the gates are the oracle's own
qfuncs, :func:`qinn_lib.models.qinn.circuits.state_preparation` and
:func:`~qinn_lib.models.qinn.circuits.model_circuit`), the per-event Jacobian by ``jax.jacfwd``,
``jax.vmap`` over the batch and ``jax.jit`` around it all (``jax.value_and_grad`` for the step).
The parameters are copied out of a :class:`~qinn_lib.models.qinn.model.QINN`, so both compute the
same function of the same weights (tested in float64).

JAX is an optional extra (``pip install -e ".[jax]"``), not needed by the notebooks: it is imported
only when a peer is built, and :func:`jax_available` says whether it can be.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover - typing only
    from qinn_lib.models.qinn.model import QINN

__all__ = ["INSTALL_HINT", "JaxPeer", "hold_xla_threads", "jax_available"]

#: What the benchmark prints when JAX is missing.
INSTALL_HINT = 'PennyLane + JAX peer skipped: JAX is not installed (pip install -e ".[jax]", the optional jax extra)'

#: XLA's CPU client runs its ops on a thread pool of its own (torch's thread setting does not reach
#: it); these flags hold it to one thread, as the torch paths are timed. They act only if set before
#: JAX is first imported.
_ONE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def jax_available() -> bool:
    """Whether ``jax`` (and ``jaxlib``) can be imported, without importing them."""
    return importlib.util.find_spec("jax") is not None and importlib.util.find_spec("jaxlib") is not None


def hold_xla_threads(threads: int | None) -> bool:
    """Hold XLA to one thread (its flags in ``XLA_FLAGS``) if ``threads == 1``; whether XLA will run so.

    Call before anything imports JAX (PennyLane imports it when it is installed): flags set after
    the import may come too late, and then False is returned. ``threads`` other than 1 leave XLA's
    own thread pool."""
    if threads != 1:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if _ONE_THREAD_XLA_FLAGS in flags:
        return True
    if "jax" in sys.modules:
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + _ONE_THREAD_XLA_FLAGS).strip()
    return True


class JaxPeer:
    """The NLL piece of ``model`` (a :class:`QINN`) in PennyLane + JAX, jitted.

    ``forward_and_logdet(x)`` -> (z (B, n), log|det dz/dx| (B,)) and ``nll_value_and_grad(x)`` ->
    (loss, {name: gradient}) take a (B, n) array (numpy or torch) and return numpy arrays after the
    computation has finished (``block_until_ready``). The first call of each compiles (jit); time it
    with :meth:`compile`. A float64 model is computed in JAX's x64 mode (switched on around each
    call only), a float32 one in float32. Parameters are a snapshot taken at construction.
    """

    def __init__(self, model: "QINN", *, threads: int | None = 1) -> None:
        self.one_thread = hold_xla_threads(threads)
        import jax  # deferred: the optional jax extra
        import jax.numpy as jnp  # deferred: the optional jax extra
        import pennylane as qml  # deferred: PennyLane (~1.3 s to import)

        from qinn_lib.models.qinn.circuits import model_circuit, state_preparation  # deferred: imports PennyLane

        self._jax, self._jnp = jax, jnp
        self.x64 = model.dtype == torch.float64
        n = model.n_features
        wires = list(range(n))

        @qml.qnode(qml.device("default.qubit", wires=n), interface="jax", diff_method="backprop")
        def circuit(angles, weights):
            state_preparation(angles, wires)
            model_circuit(weights, wires)
            return [qml.expval(qml.Projector([1], wires=w)) for w in wires]  # P(qubit i = 1), as the oracle

        def clamp(v, lo, hi):
            # torch.clamp's gradient: v's own on the closed interval [lo, hi], the bound's outside.
            # jnp.clip would halve it on a bound, where the model starts (a = 1, b = 0).
            return jnp.where((v >= lo) & (v <= hi), v, jnp.clip(v, lo, hi))

        def z_of(x, p):
            # The model's feasible set of a, b (sec. 3), as QINN.clamped_ab and circuits._clamped_ab.
            a = clamp(p["a"], 0.0, 1.0)
            b = clamp(p["b"], 0.0, 1.0 - a)
            return p["c"] * jnp.stack(circuit(a * x + math.pi * b, p["weights"])) + p["d"]

        def one_event(x, p):
            return z_of(x, p), jnp.linalg.slogdet(jax.jacfwd(z_of)(x, p))[1]

        batch = jax.vmap(one_event, in_axes=(0, None))

        def nll(p, x):
            z, logdet = batch(x, p)
            return jnp.mean(0.5 * jnp.sum(z * z, axis=1) - logdet)

        self._forward = jax.jit(batch)
        self._step = jax.jit(jax.value_and_grad(nll))
        with self._precision():
            self.params = {name: jnp.asarray(getattr(model, name).detach().cpu().numpy())
                           for name in ("a", "b", "c", "d", "weights")}

    def _precision(self):
        from jax.experimental import enable_x64  # deferred: the optional jax extra

        return enable_x64(self.x64)

    def _batch(self, x: Any):
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return self._jnp.asarray(x, dtype=self._jnp.float64 if self.x64 else self._jnp.float32)

    def forward_and_logdet(self, x: Any):
        """(z, log|det dz/dx|) of the batch x (B, n), as numpy arrays."""
        with self._precision(), _quiet():
            z, logdet = self._jax.block_until_ready(self._forward(self._batch(x), self.params))
        return self._jax.device_get(z), self._jax.device_get(logdet)

    def nll_value_and_grad(self, x: Any):
        """(NLL batch mean, {parameter name: its gradient}) of the batch x, as numpy values."""
        with self._precision(), _quiet():
            loss, grads = self._jax.block_until_ready(self._step(self.params, self._batch(x)))
        return float(loss), {k: self._jax.device_get(v) for k, v in grads.items()}

    def compile(self, x: Any) -> dict[str, float]:
        """Compile both functions for x's shape; the seconds each first call took."""
        out = {}
        for key, fn in (("fwd+logdet", self.forward_and_logdet), ("step", self.nll_value_and_grad)):
            t0 = time.perf_counter()
            fn(x)
            out[key] = time.perf_counter() - t0
        return out


@contextlib.contextmanager
def _quiet():
    """Silence PennyLane's request for complex128 in float32 mode: JAX truncates it to complex64,
    which is the precision asked for (the torch model's float32 runs complex64 too)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Explicitly requested dtype .*complex128", category=UserWarning)
        yield
