"""The training objectives (sec. 4, Table 1): the paper's loss terms weighted into one loss per model.

- :class:`NLLObjective`: eq. 7 alone (tau = 0);
- :class:`QINNObjective`: the QINN's loss, NLL plus the latent, input and M_Z MMDs plus the
  invertibility loss, with the weights of Table 1; also as one ``torch.compile`` graph
  (:meth:`QINNObjective.compiled_terms`) and for a stack of models at once;
- :class:`INNObjective`: the classical INN's loss, NLL plus the M_Z MMD.

Each follows the trainer's objective protocol (:mod:`qinn_lib.training.loop`) and returns the
minimised ``"loss"`` with its unweighted terms (:data:`LOSS_TERMS`). Features ``x`` are the scaled
features in ``[0, pi]`` of shape ``(B, n)``; latents ``z`` have the same shape.

The terms themselves are pure functions of tensors in :mod:`qinn_lib.training.losses`:
:mod:`~qinn_lib.training.losses.nll` (sec. 2.1), :mod:`~qinn_lib.training.losses.mmd` (sec. 2.2;
its docstring says why the MMDs are V-statistics) and
:mod:`~qinn_lib.training.losses.invertibility` (sec. 3.1).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from qinn_lib.compiling import compiled, step_compile_options
from qinn_lib.events.observables import invariant_mass_torch
from qinn_lib.training.losses.invertibility import fidelity_invertibility, mse_invertibility
from qinn_lib.training.losses.mmd import breit_wigner_mmd, gaussian_mmd, kernel_widths
from qinn_lib.training.losses.nll import nll
from qinn_lib.training.stacked_terms import stacked_terms

__all__ = ['NLLObjective', 'LOSS_TERMS', 'QINNObjective', 'INNObjective']


class NLLObjective:
    """Eq. 7 alone (tau = 0), in the trainer's objective protocol (:mod:`qinn_lib.training.loop`)."""

    def __call__(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        value = nll(*model.forward_and_logdet(x))
        return {"loss": value, "nll": value}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        return self(model, x, generator)

#: Names of the unweighted terms :class:`QINNObjective` may return (besides ``"loss"``).
LOSS_TERMS = ("nll", "mmd_latent", "mmd_input", "mmd_mz", "inv")


# -- one training step as a traceable function (QINNObjective.compiled_terms) ---------------------
def _lean_terms(objective: "QINNObjective", model: torch.nn.Module, x: torch.Tensor,
                z_s: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The objective's terms on ``x`` with the latent sample ``z_s`` already drawn: nothing in here
    breaks a ``torch.compile`` graph for a model with ``step_maps()``."""
    step_maps = getattr(model, "step_maps", None)
    if step_maps is not None:
        fwd, inv, fid = step_maps()
    else:
        fwd, inv, fid = model.forward_and_logdet, model.inverse, getattr(model, "fidelity", None)
    return objective._terms(lambda xs: [fwd(xs[0])], lambda zs: [inv(zs[0])], [x],
                            [] if z_s is None else [z_s], fidelity=_one(fid))[0]


def _one(fidelity: Callable | None) -> Callable | None:
    """A single model's ``fidelity(x)`` in the list protocol of :meth:`QINNObjective._terms`."""
    return None if fidelity is None else (lambda xs: [fidelity(x) for x in xs])


def _stacked_lean_terms(objective: "QINNObjective", stack: torch.nn.Module, x: torch.Tensor,
                        z_s: torch.Tensor | None) -> list[dict[str, torch.Tensor]]:
    """The terms of every member of a stack with ``step_maps()`` (:class:`qinn_lib.models.qinn.stack.QINNStack`)
    on stacked batches ``x`` ``(K, B, n)`` and latent samples ``z_s``: every circuit evaluation and
    every loss term of the step is one batched computation for all members
    (:func:`qinn_lib.training.stacked_terms.stacked_terms`). Traceable into one ``torch.compile``
    graph, like :func:`_lean_terms`."""
    return stacked_terms(objective, stack.step_maps(), x, z_s)


_COMPILED: dict[str, Callable] = {}  # the process's compiled step functions, made on first use


def _compiled_lean_terms(stacked: bool = False) -> Callable:
    name = "QINNObjective.compiled_stacked" if stacked else "QINNObjective.compiled_terms"
    if name not in _COMPILED:
        # Inductor options: compiling.step_compile_options (C++ wrapper, no per-op asserts).
        # dynamic=False: a second architecture (another n_layers in a scan) gets its own static
        # graph instead of turning the first into a slower dynamic-shape one.
        _COMPILED[name] = compiled(_stacked_lean_terms if stacked else _lean_terms, label=name, dynamic=False,
                                   options=step_compile_options())
    return _COMPILED[name]


# -- the training objectives (sec. 4, Table 1) ----------------------------------------------------
class QINNObjective:
    """The weighted QINN training loss of sec. 4 with the weights of Table 1.

    ``loss = nll + lambda_mmd_latent * mmd_latent + lambda_mmd_input * mmd_input
    + lambda_mz * mmd_mz + lambda_inv * inv`` where

    * ``nll``: eq. 7 (tau = 0) on ``z, logdet = model.forward_and_logdet(x)``;
    * ``mmd_latent``: Gaussian MMD (eq. 9-10) between ``z`` and a fresh ``N(0, 1)`` sample
      ``z_s`` of the same size (sec. 2.2: "MMD on both the latent and input sides");
    * ``mmd_input``: Gaussian MMD between ``x`` and ``x_gen = model.inverse(z_s)``;
    * ``mmd_mz``: Breit-Wigner MMD (eq. 9, 11) between ``M_ll`` of the data and of ``x_gen``, both
      mapped back to physical units with the scaler, widths in GeV;
    * ``inv``: eq. 20 between ``x`` and ``model.inverse(z)`` (``cfg.invertibility == "mse"``) or
      eq. 17-18 on ``model.fidelity(x)`` (``"fidelity"``).

    Terms whose weight is 0 are not computed and do not appear in the returned dict. The same
    kernel widths ``cfg.mmd_widths`` serve every MMD (Table 1 lists one set).

    Two readings of the paper are configurable (notebook 06's ablations): ``cfg.mse_reduction``
    (eq. 20 averaged or summed over the features, :func:`mse_invertibility`) and ``cfg.mmd_mode``
    (the latent and input MMDs as one joint n-d MMD, or as the sum of n 1-d MMDs, one per
    observable). A cfg without these fields gets "mean" and "joint", the readings used so far.

    Parameters
    ----------
    cfg : QINNRunConfig (any object with the ``lambda_*``, ``mmd_widths`` and ``invertibility``
        fields).
    scaler : AngleScaler (needed only when ``lambda_mz > 0``). Its inverse is converted to torch
        tensors once per dtype/device and cached, so no numpy -> torch conversion (and no NaN
        check that would pre-empt the trainer's divergence report) happens per step. Any other
        object with ``inverse_torch(u)`` also works (called as is).
    mass_fn : maps physical features ``(B, 5)`` to ``M_ll`` in GeV ``(B,)``; defaults to
        :func:`qinn_lib.events.observables.invariant_mass_torch`.
    """

    def __init__(self, cfg: Any, scaler: Any = None, *,
                 mass_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._setup(
            weights={
                "mmd_latent": float(cfg.lambda_mmd_latent),
                "mmd_input": float(cfg.lambda_mmd_input),
                "mmd_mz": float(cfg.lambda_mz),
                "inv": float(cfg.lambda_inv),
            },
            widths=cfg.mmd_widths, invertibility=cfg.invertibility, scaler=scaler, mass_fn=mass_fn,
        )
        self.mse_reduction = getattr(cfg, "mse_reduction", "mean")
        self.mmd_mode = getattr(cfg, "mmd_mode", "joint")
        if self.mse_reduction not in ("mean", "sum"):
            raise ValueError(f"mse_reduction must be 'mean' or 'sum', got {self.mse_reduction!r}")
        if self.mmd_mode not in ("joint", "per_observable"):
            raise ValueError(f"mmd_mode must be 'joint' or 'per_observable', got {self.mmd_mode!r}")

    #: Readings of eq. 20 and of sec. 2.2's MMD (see the class docstring); INNObjective keeps these.
    mse_reduction = "mean"
    mmd_mode = "joint"

    def _feature_mmd(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Gaussian MMD (eq. 9-10) between two samples of the n features: one joint n-d MMD, or
        (``mmd_mode="per_observable"``) the sum over features of the 1-d MMDs."""
        if self.mmd_mode == "joint":
            return gaussian_mmd(a, b, self.widths)
        return sum(gaussian_mmd(a[:, i], b[:, i], self.widths) for i in range(a.shape[1]))

    def _setup(self, *, weights: dict[str, float], widths: Any, invertibility: str, scaler: Any,
               mass_fn: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        if invertibility not in ("mse", "fidelity"):
            raise ValueError(f"invertibility must be 'mse' or 'fidelity', got {invertibility!r}")
        self.invertibility = invertibility
        self.widths = kernel_widths(widths)
        self.weights = weights
        if self.weights["mmd_mz"] > 0.0 and scaler is None:
            raise ValueError(f"{type(self).__name__} needs the AngleScaler (scaler=...) when lambda_mz > 0")
        self.scaler = scaler
        self._mass_fn = mass_fn
        self._inverse_cache: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _to_physical(self, u: torch.Tensor) -> torch.Tensor:
        cached = self._inverse_constants(u.dtype, u.device)
        if cached is None:
            return self.scaler.inverse_torch(u)
        lo_t, width = cached
        if u.shape[-1] != lo_t.shape[0]:
            raise ValueError(f"expected {lo_t.shape[0]} features to map back to physical units, got shape {tuple(u.shape)}")
        return lo_t + (u / math.pi) * width

    def _inverse_constants(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(lo, hi - lo) of an AngleScaler as tensors, converted once per dtype/device (None for any
        other scaler)."""
        lo, hi = getattr(self.scaler, "lo", None), getattr(self.scaler, "hi", None)
        if lo is None or hi is None:
            return None
        key = (dtype, device)
        cached = self._inverse_cache.get(key)
        if cached is None:
            # AngleScaler's inverse map x = lo + (u / pi) (hi - lo) with the constants converted
            # once, in the input's dtype (agrees with AngleScaler.inverse_torch to rounding; tested).
            lo_t = torch.as_tensor(lo, dtype=dtype, device=device)
            width = torch.as_tensor(hi, dtype=dtype, device=device) - lo_t
            cached = self._inverse_cache[key] = (lo_t, width)
        return cached

    def _mass(self, features_physical: torch.Tensor) -> torch.Tensor:
        return self._mass_function()(features_physical)

    def _mass_function(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self._mass_fn is None:

            self._mass_fn = invariant_mass_torch
        return self._mass_fn

    def __call__(self, model: torch.nn.Module, x: torch.Tensor,
                 generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Loss terms on the batch ``x`` (scaled features, ``(B, n)``).

        ``generator`` drives the latent sample (``torch.randn`` on the CPU, then moved to
        ``x.device``), so a run is reproducible from its seed.
        """
        if x.ndim != 2:
            raise ValueError(f"x must have shape (B, n), got {tuple(x.shape)}")
        return self._terms(lambda xs: [model.forward_and_logdet(xs[0])], lambda zs: [model.inverse(zs[0])],
                           [x], self._latent_samples([x], [generator]), fidelity=_one(getattr(model, "fidelity", None)))[0]

    def compiled_terms(self, model: torch.nn.Module, *, compile: bool = True
                       ) -> Callable[[torch.Tensor, torch.Generator | None], dict[str, torch.Tensor]]:
        """``terms(x, generator)``: the training terms of ``self(model, x, generator)`` from one
        ``torch.compile`` graph (the same values to float rounding, the same gradients: tested).

        Why: a QINN step is a few hundred tiny tensor ops, so its cost is dispatch; compiled into
        one forward and one backward graph it runs ~1.8x faster (``python -m qinn_lib.bench``).
        One graph needs a model whose whole step can be traced: a model with ``step_maps()``
        (:meth:`qinn_lib.models.qinn.model.QINN.step_maps`: no value checks on the input, both circuit
        unitaries built once per call) is traced through those maps; any other model through its
        ``forward_and_logdet`` / ``inverse`` / ``fidelity`` (compiled as far as they trace).

        One compiled function serves the whole process: the objective and the model are its
        arguments, so models of one architecture, dtype and batch shape (every seed of an
        ensemble, every run of a scan) share one graph and compile once; a new architecture or
        loss configuration compiles again.

        For training steps: call with grad enabled and ``.backward()`` the ``"loss"``; the
        parameters are read at every call, so optimiser steps in between are seen. The latent
        sample is drawn from ``generator`` outside the graph, exactly as :meth:`__call__` draws
        it. Batches must have the model's dtype and device (as the trainer's do). ``compile=False``
        returns the same traceable function uncompiled; ``compile=True`` goes through
        :func:`qinn_lib.compiling.compiled` (on-disk cache; a failing compiler falls back to eager
        with one warning). Whether compiling pays for a run is
        :func:`qinn_lib.compiling.should_compile`'s decision, the caller's.
        """
        fn = _compiled_lean_terms(stacked=False) if compile else _lean_terms
        warm = [False]

        def terms(x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
            if x.ndim != 2:
                raise ValueError(f"x must have shape (B, n), got {tuple(x.shape)}")
            if not warm[0]:
                # Constant tables and lazy imports are filled here, outside the graph, so that
                # tracing reads them instead of tracing their construction.
                if self.weights["mmd_mz"] > 0:
                    self._inverse_constants(x.dtype, x.device)
                    self._mass_function()
                if hasattr(model, "step_maps"):
                    with torch.no_grad():
                        model.step_maps()
                warm[0] = True
            (z_s,) = self._latent_samples([x], [generator]) or [None]
            return fn(self, model, x, z_s)

        # True while the compiled graph is in use (False uncompiled, or after an eager fallback).
        terms.is_compiled = getattr(fn, "is_compiled", lambda: False)  # type: ignore[attr-defined]
        return terms

    def stacked(self, stack: torch.nn.Module, xs: list[torch.Tensor],
                generators: list[torch.Generator | None]) -> list[dict[str, torch.Tensor]]:
        """:meth:`__call__` for every member of ``stack`` (e.g. :class:`qinn_lib.models.inn.model.INNStack`) at
        once: ``xs[i]`` and ``generators[i]`` belong to member ``i``, which draws exactly the latent
        sample it would draw alone. The members' forward and inverse passes each go through one
        ``stack`` call."""
        if len(xs) != len(generators):
            raise ValueError(f"stacked: {len(xs)} batches but {len(generators)} generators")
        for i, x in enumerate(xs):
            if x.ndim != 2:
                raise ValueError(f"xs[{i}] must have shape (B, n), got {tuple(x.shape)}")
        z_ss = self._latent_samples(xs, generators)
        if hasattr(stack, "step_maps"):  # a QINNStack: one batched call per circuit map
            return _stacked_lean_terms(self, stack, torch.stack(list(xs)), torch.stack(z_ss) if z_ss else None)
        return self._terms(stack.forward_and_logdet, stack.inverse, list(xs), z_ss, fidelity=None)

    def compiled_stacked(self, stack: torch.nn.Module, *, compile: bool = True
                         ) -> Callable[[list[torch.Tensor], list[torch.Generator | None]], list[dict[str, torch.Tensor]]]:
        """``terms(xs, generators)``: :meth:`stacked` for a stack with ``step_maps()`` (a
        :class:`~qinn_lib.models.qinn.stack.QINNStack`) from one ``torch.compile`` graph, as
        :meth:`compiled_terms` is for one model (same values to float rounding; tested). The
        latent samples are drawn outside the graph from each member's generator."""
        fn = _compiled_lean_terms(stacked=True) if compile else _stacked_lean_terms
        warm = [False]

        def terms(xs: list[torch.Tensor], generators: list[torch.Generator | None]) -> list[dict[str, torch.Tensor]]:
            if not warm[0]:  # constant tables and lazy imports filled outside the graph (see compiled_terms)
                if self.weights["mmd_mz"] > 0:
                    self._inverse_constants(xs[0].dtype, xs[0].device)
                    self._mass_function()
                with torch.no_grad():
                    stack.step_maps()
                warm[0] = True
            z_ss = self._latent_samples(xs, generators)
            return fn(self, stack, torch.stack(list(xs)), torch.stack(z_ss) if z_ss else None)

        terms.is_compiled = getattr(fn, "is_compiled", lambda: False)  # type: ignore[attr-defined]
        return terms

    def _latent_samples(self, xs: list[torch.Tensor], generators: list[torch.Generator | None]) -> list[torch.Tensor]:
        """One N(0, 1) sample z_s per batch, the shape of the batch, when an MMD term needs one
        (else ``[]``): drawn on the CPU from the batch's generator, then moved to its device."""
        w = self.weights
        if not (w["mmd_latent"] > 0 or w["mmd_input"] > 0 or w["mmd_mz"] > 0):
            return []
        return [torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device) for x, g in zip(xs, generators)]

    def _total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The minimised loss: ``nll`` plus every other term times its weight (in ``terms``' order)."""
        loss = terms["nll"]
        for name, value in terms.items():
            if name != "nll":
                loss = loss + self.weights[name] * value
        return loss

    def _terms(self, forward: Callable, inverse: Callable, xs: list[torch.Tensor],
               z_ss: list[torch.Tensor], *, fidelity: Callable | None) -> list[dict[str, torch.Tensor]]:
        """The loss terms of one or several models: ``forward(xs) -> [(z, logdet)]`` and
        ``inverse(zs) -> [x]`` evaluate every model on its own batch, and so does
        ``fidelity(xs) -> [F]`` (eq. 17) where the fidelity loss needs it; ``z_ss`` are the latent
        samples of :meth:`_latent_samples`."""
        w = self.weights
        out: list[dict[str, torch.Tensor]] = [{} for _ in xs]

        # One forward pass serves the NLL, the latent MMD and the MSE inverse.
        zl = forward(xs)
        for terms, (z, logdet) in zip(out, zl):
            terms["nll"] = nll(z, logdet)

        if w["mmd_latent"] > 0:
            for terms, (z, _), z_s in zip(out, zl, z_ss):
                terms["mmd_latent"] = self._feature_mmd(z, z_s)
        need_gen = w["mmd_input"] > 0 or w["mmd_mz"] > 0
        need_rec = w["inv"] > 0 and self.invertibility == "mse"
        # The generated sample and the MSE round trip both go through the inverse: one call on
        # the stacked batch instead of two halves the per-call overhead of the circuits.
        x_gens: list[torch.Tensor] = []
        x_recs: list[torch.Tensor] = []
        if need_gen and need_rec:
            both = inverse([torch.cat([z, z_s], dim=0) for (z, _), z_s in zip(zl, z_ss)])
            for x, xb in zip(xs, both):
                x_rec, x_gen = xb.split(x.shape[0], dim=0)
                x_recs.append(x_rec)
                x_gens.append(x_gen)
        elif need_gen:
            x_gens = inverse(z_ss)
        elif need_rec:
            x_recs = inverse([z for z, _ in zl])
        if need_gen:
            for terms, x, x_gen in zip(out, xs, x_gens):
                if w["mmd_input"] > 0:
                    terms["mmd_input"] = self._feature_mmd(x, x_gen)
                if w["mmd_mz"] > 0:
                    m_data = self._mass(self._to_physical(x))
                    m_gen = self._mass(self._to_physical(x_gen))
                    terms["mmd_mz"] = breit_wigner_mmd(m_data, m_gen, self.widths)
        if w["inv"] > 0:
            if self.invertibility == "mse":
                for terms, x, x_rec in zip(out, xs, x_recs):
                    terms["inv"] = mse_invertibility(x, x_rec, self.mse_reduction)  # eq. 20
            else:
                if fidelity is None:
                    raise ValueError("the fidelity loss needs a model (or stack) with a fidelity() method")
                for terms, fid in zip(out, fidelity(xs)):
                    terms["inv"] = fidelity_invertibility(fid)  # eq. 17-18

        results = []
        for terms in out:
            results.append({"loss": self._total(terms), **terms})
        return results

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, x_val: torch.Tensor,
                 generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """The same terms as :meth:`__call__`, without building a graph (validation)."""
        return self(model, x_val, generator)

    @torch.no_grad()
    def evaluate_stacked(self, stack: torch.nn.Module, xs: list[torch.Tensor],
                         generators: list[torch.Generator | None]) -> list[dict[str, torch.Tensor]]:
        """:meth:`stacked` without building a graph (validation)."""
        return self.stacked(stack, xs, generators)


class INNObjective(QINNObjective):
    """The classical INN's loss (sec. 4, Table 1 INN column): ``nll + lambda_mz * mmd_mz``.

    The INN is exactly invertible, and the paper uses the input/latent MMDs for the QINN only
    ("The MMD loss on input and latent observables for the QINN ..."), so those weights are 0.
    ``cfg`` is an INNRunConfig (``lambda_mz``, ``mmd_widths``); the model needs
    ``forward_and_logdet`` and ``inverse``.
    """

    def __init__(self, cfg: Any, scaler: Any = None, *,
                 mass_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self._setup(
            weights={"mmd_latent": 0.0, "mmd_input": 0.0, "mmd_mz": float(cfg.lambda_mz), "inv": 0.0},
            widths=cfg.mmd_widths, invertibility="mse", scaler=scaler, mass_fn=mass_fn,
        )

    @torch.no_grad()
    def evaluate_stacked_chunks(self, stack: torch.nn.Module, chunks: list[torch.Tensor],
                                generators: list[torch.Generator | None]) -> list[dict[str, float]]:
        """Validation of every member of ``stack`` on the same equal-size ``chunks``: per member,
        the mean over chunks of :meth:`evaluate_stacked`'s terms on each chunk (each chunk's NLL
        and its own M_Z MMD, with the latent sample drawn chunk after chunk from the member's
        generator, so the draws are the ones the chunk-by-chunk loop makes). All chunks go through
        ONE forward and ONE inverse stack call instead of one per chunk: validation of a stack is
        ~100 chunks of tiny ops, so this cuts its cost several-fold (the MMDs stay per chunk, as
        their bias depends on the batch size). Only the terms of the INN objective (NLL, M_Z MMD)
        are supported."""
        w = self.weights
        if w["mmd_latent"] > 0 or w["mmd_input"] > 0 or w["inv"] > 0:
            raise ValueError("evaluate_stacked_chunks supports the NLL and M_Z MMD terms only (the INN objective)")
        sizes = {tuple(c.shape) for c in chunks}
        if len(sizes) != 1:
            raise ValueError(f"evaluate_stacked_chunks: chunks must have equal shapes, got {sorted(sizes)}")
        b = chunks[0].shape[0]
        x_all = torch.cat(chunks)
        zl = stack.forward_and_logdet([x_all] * len(generators))
        need_gen = w["mmd_mz"] > 0
        if need_gen:
            z_ss = [torch.cat([torch.randn(c.shape, generator=g, dtype=c.dtype).to(c.device) for c in chunks])
                    for g in generators]
            x_gens = stack.inverse(z_ss)
            m_data = self._mass(self._to_physical(x_all))
        out = []
        for k, (z, logdet) in enumerate(zl):
            sums: dict[str, float] = {}
            for i in range(len(chunks)):
                rows = slice(i * b, (i + 1) * b)
                terms = {"nll": nll(z[rows], logdet[rows])}
                if need_gen:
                    m_gen = self._mass(self._to_physical(x_gens[k][rows]))
                    terms["mmd_mz"] = breit_wigner_mmd(m_data[rows], m_gen, self.widths)
                for name, value in {"loss": self._total(terms), **terms}.items():
                    sums[name] = sums.get(name, 0.0) + float(value)
            out.append({name: v / len(chunks) for name, v in sums.items()})
        return out
