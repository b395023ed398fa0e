"""``torch.compile`` for the training steps, amortised and never fatal.

Why a module of its own: the INN and QINN steps are tens of thousands of tiny tensor ops on a
CPU, so their cost is dispatch overhead, which the compiler removes (measured 4-5x on the INN,
1.6x on the QINN; see ``python -m qinn_lib.bench``). But compiling costs 50-270 s cold, so it
only pays for long trainings, and it must never turn a working run into a crash on a platform
where inductor fails. This module decides *whether* to compile and wraps the result so that a
failure falls back to the eager function with exactly one warning.

Policy (``QINN_COMPILE`` environment variable):

* ``auto`` (default): compile when a run has at least :data:`MIN_STEPS_TO_COMPILE` optimiser
  steps ahead of it. The quick profile (a few dozen steps) stays eager: there a cold compile
  would cost more than the whole training.
* ``1`` / ``always``: always compile. ``0`` / ``never``: never.

The compiled artefacts are cached on disk (inductor's FX-graph cache) under
``build/torch_compile_cache`` (override with ``TORCHINDUCTOR_CACHE_DIR``), so a second process
with the same graphs compiles in seconds instead of minutes. Inductor trusts what it finds there;
corrupt entries (a truncated kernel library, say) are removed before the first compile and after
a failed one, then the compile is tried again (:mod:`qinn_lib.compile_cache`), so a run's numbers
do not depend on the cache's state. Only a compiler that fails on a clean cache falls back to
eager, whose arithmetic agrees with the compiled step to float rounding, not bit for bit.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import warnings
from typing import Any, Callable, TypeVar

import torch

from qinn_lib import compile_cache, env
from qinn_lib.paths import repo_root

__all__ = ["MIN_STEPS_TO_COMPILE", "compile_policy", "should_compile", "compiled", "compiled_step",
           "step_compile_options", "CompileFallbackWarning"]

F = TypeVar("F", bound=Callable[..., Any])

#: Below this many optimiser steps a cold compile (50-270 s) costs more than it saves.
MIN_STEPS_TO_COMPILE = 2000

_POLICIES = env.COMPILE_POLICIES


class CompileFallbackWarning(RuntimeWarning):
    """``torch.compile`` failed (the eager function is used instead: same values to float rounding), or
    corrupt compile-cache entries were removed before compiling again."""


def compile_policy() -> str:
    """``"auto"``, ``"always"`` or ``"never"`` from ``QINN_COMPILE`` (default ``auto``)."""
    return env.choice("QINN_COMPILE", _POLICIES, "auto")


def should_compile(total_steps: int) -> bool:
    """Whether a run of ``total_steps`` optimiser steps should compile its step (module docstring)."""
    policy = compile_policy()
    if policy == "always":
        return True
    if policy == "never":
        return False
    return int(total_steps) >= MIN_STEPS_TO_COMPILE


#: Distinct graphs one compiled function may hold before dynamo silently falls back to eager
#: (torch's default is 8): a scan or an ablation study compiles one graph per architecture and
#: loss configuration in a long-lived worker process.
RECOMPILE_LIMIT = 64


def step_compile_options() -> dict[str, Any]:
    """Inductor options of the compiled QINN training steps (``torch.compile(..., options=...)``).

    ``cpp_wrapper``: the graph's calling code is generated as C++ instead of Python, which removes
    the Python overhead per kernel call of a step of a few hundred small kernels (issue 20,
    measured side by side: about 0.83x the QINN step's time with the complex circuits, 0.8x with the
    real ones of :mod:`qinn_lib.models.qinn.real_autograd`; a warm start from the on-disk cache
    takes ~15 s instead of ~7 s).
    Without inductor's per-op size/alignment asserts: checking every kernel's strides cost 5 % of
    the step (measured); values are tested against the eager objective."""
    return {"size_asserts": False, "alignment_asserts": False, "cpp_wrapper": True}


def _default_cache_dir() -> str | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return default_cache_dir()
    except Exception:  # private API; only used to tell torch's own default from a user's choice
        return None


def _set_cache_dir() -> None:
    # Something in torch (seen: building the optimizer) may already have put inductor's *default*
    # /tmp/torchinductor_<user> into the environment; only a different value is a user's choice.
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current and current != _default_cache_dir():
        return
    try:

        cache = repo_root() / "build" / "torch_compile_cache"
    except RuntimeError:  # installed without a checkout: torch's default /tmp cache
        return
    try:  # a read-only build folder must not fail the run: the cache only saves compile time
        cache.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=cache).close()
    except OSError as exc:
        warnings.warn(f"cannot write in the compile cache folder {cache}: {exc.strerror or exc}; compiled graphs are "
                      "cached in torch's default folder instead (set TORCHINDUCTOR_CACHE_DIR to a writable folder)",
                      CompileFallbackWarning, stacklevel=3)
        return
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)


def _repair_cache(label: str, *, thorough: bool) -> list[Any]:
    """Remove corrupt compile-cache entries (:mod:`qinn_lib.compile_cache`), with one warning naming
    the folder; returns what was removed."""
    removed = compile_cache.repair(thorough=thorough)
    if removed:
        warnings.warn(f"removed {len(removed)} corrupt entr{'y' if len(removed) == 1 else 'ies'} of the compile cache "
                      f"{compile_cache.cache_folder()} (e.g. {removed[0].relative_to(removed[0].parents[1])}); "
                      f"compiling {label} afresh", CompileFallbackWarning, stacklevel=3)
    return removed


class _DropCShimNotice(logging.Filter):
    """Drops inductor's "aten.<op> is missing a c-shim implementation, using proxy executor as
    fallback": with ``cpp_wrapper`` (:func:`step_compile_options`) the QINN step's slogdet and
    lu_solve have no C++ shim and are called through the proxy (~0.1 ms of the step, measured; the
    benchmark reports the step as it is). Logged once per op and graph, in every notebook and
    Dask worker that compiles, it told the user nothing they could act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is missing a c-shim implementation" not in record.getMessage()


def _quiet_known_compile_notices() -> None:
    """Known, measured compile-time notices kept out of the user's output (once per process)."""
    logger = logging.getLogger("torch._inductor.ir")
    if not any(isinstance(f, _DropCShimNotice) for f in logger.filters):
        logger.addFilter(_DropCShimNotice())
    # torch 2.13's own inductor lowering calls its deprecated torch._prims_common.check: a notice
    # for torch's developers, printed on every compile of a graph with slogdet.
    warnings.filterwarnings("ignore", message=r"`torch\._prims_common\.check` is deprecated", category=FutureWarning)


def compiled(fn: F, *, label: str, **compile_kwargs: Any) -> F:
    """``torch.compile(fn)`` that falls back to ``fn`` itself, with one warning, if compiling or
    running the compiled function fails where the eager one succeeds.

    A failure of the eager function too (bad input, a real bug) is raised as the eager error, and
    compilation is tried again on the next call. ``label`` names the function in the warning.
    """
    _set_cache_dir()
    # The QINN's circuit simulation is complex-valued; inductor runs those ops one by one inside
    # the graph and says so on every compile. Known and measured (the bench reports the compiled
    # step as it is), so the warning is not repeated in every notebook.
    warnings.filterwarnings("ignore", message="Torchinductor does not support code generation for complex operators")
    _quiet_known_compile_notices()
    try:
        import torch._dynamo

        for name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), RECOMPILE_LIMIT))
    except Exception:  # configuration only; compiling still works with torch's defaults
        pass
    try:
        fast = torch.compile(fn, **compile_kwargs)
    except Exception as exc:  # torch.compile itself is lazy; this only catches e.g. an unsupported Python
        warnings.warn(f"torch.compile unavailable for {label} ({type(exc).__name__}: {exc}); running eager",
                      CompileFallbackWarning, stacklevel=2)
        return fn
    state = {"mode": "compiled"}

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if state["mode"] == "eager":
            return fn(*args, **kwargs)
        if not state.get("checked"):  # once, before the first compile (compile_cache: the ISA probe)
            state["checked"] = True
            _repair_cache(label, thorough=False)
        try:
            return fast(*args, **kwargs)
        except Exception as exc:
            error = exc
        # A corrupt cache entry (a truncated kernel library or module) fails every compile that
        # meets it, and eager arithmetic is not the compiled one (issue 24, case 10): remove what is
        # corrupt and compile again, so that the run's numbers do not depend on the cache's state.
        if _repair_cache(label, thorough=True):
            try:
                return fast(*args, **kwargs)
            except Exception as exc:
                error = exc
        result = fn(*args, **kwargs)  # raises the eager error if the input itself is bad
        state["mode"] = "eager"
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        warnings.warn(f"torch.compile failed for {label} ({type(error).__name__}: {first[:200]}); falling back to "
                      "eager for the rest of this process (slower; eager and compiled arithmetic agree only to float "
                      "rounding, so trained weights differ slightly from a compiled run's)",
                      CompileFallbackWarning, stacklevel=2)
        return result

    call.is_compiled = lambda: state["mode"] == "compiled"  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]


def _signature(obj: Any) -> tuple[Any, Any]:
    """``(static, shapes)`` of a call's arguments (nested lists/tuples): the non-tensor values
    (flags such as ``rev``, on which the compiler specialises anyway) and the tensors' shapes,
    dtypes and devices."""
    if isinstance(obj, torch.Tensor):
        return "tensor", (tuple(obj.shape), obj.dtype, obj.device)
    if isinstance(obj, (list, tuple)):
        pairs = [_signature(o) for o in obj]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return repr(obj), None


def compiled_step(fn: F, *, label: str, **compile_kwargs: Any) -> F:
    """:func:`compiled` ``fn``, used only for the calls of a training step: autograd recording
    and, for each value of the non-tensor arguments (e.g. a direction flag), the tensor shapes of
    the first such call. Every other call runs ``fn`` eagerly (same results).

    Why: each grad mode and each input shape is a graph of its own, i.e. another compile of
    minutes, and the other calls (validation and generation under ``no_grad``, the odd batch of
    another size) happen once per epoch or once per run, where eager costs far less than that.
    """
    fast = compiled(fn, label=label, **compile_kwargs)
    first_shapes: dict[Any, Any] = {}

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return fn(*args, **kwargs)
        static, shapes = _signature((args, sorted(kwargs.items())))
        if first_shapes.setdefault(static, shapes) == shapes:
            return fast(*args, **kwargs)
        return fn(*args, **kwargs)

    call.is_compiled = getattr(fast, "is_compiled", lambda: False)  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
