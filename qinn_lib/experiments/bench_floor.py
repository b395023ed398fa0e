"""The QINN training step against its floor: the same arithmetic as one minimal fused computation.

Part of ``python -m qinn_lib.bench`` (issue 20). The library's compiled step
(:meth:`qinn_lib.training.objectives.QINNObjective.compiled_terms`, an Adam step over the model's
parameters, the projection of a, b) carries structure the arithmetic does not need: a module with
fourteen parameter tensors (each one guarded by dynamo and updated by Adam), the circuits as custom
autograd Functions, the loss terms as separate functions. The floor here is one step's arithmetic
written once, flat: every parameter a view of ONE tensor, the Table 1 objective (NLL with the
log-determinant of the full Jacobian, the latent, input and M_Z MMDs, the MSE round trip through
the learned ISP) in real arithmetic as one differentiable function compiled with the step's own
inductor options, its gradient by autograd (the circuits) and by the MMDs' own hand-written
gradient (:mod:`qinn_lib.training.losses.mmd`: each pair once, the cheapest form known here; a
naive full-matrix MMD under autograd made this "floor" slower than the library's step), Adam as
one fused update of that one tensor. It is what this torch and this CPU do with the step's
arithmetic when nothing else is in the way, so step / floor is today's distance from it (the
issue's target: at most 2). A ratio below 1 says the library's formulation beats this one.

Both are timed in the same run, interleaved round by round (a shared machine loads both alike);
the floor starts from the same parameters as the library's model, and the benchmark prints the
difference of their first losses as the check that both compute the same function. No number is
asserted: a measurement.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Callable

import torch

from qinn_lib.compiling import compiled, step_compile_options
from qinn_lib.events.observables import invariant_mass_torch
from qinn_lib.experiments.one_model import prepare_data
from qinn_lib.experiments.timing import interleaved_times
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.simulator import cnot_ring_permutation
from qinn_lib.threads import torch_threads
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.losses.mmd import breit_wigner_mmd, gaussian_mmd
from qinn_lib.training.losses.nll import LOGDET_FLOOR
from qinn_lib.training.objectives import QINNObjective
from qinn_lib.training.optimiser import make_optimizer, tune_allocator

__all__ = ["run_floor"]


class _Flat:
    """The QINN's parameters as views of one flat tensor (names and shapes of ``QINN.named_parameters``)."""

    def __init__(self, model: QINN) -> None:
        self.names = [name for name, _ in model.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in model.named_parameters()]
        self.theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_(True)

    def views(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = math.prod(shape)
            out[name] = theta[start:start + size].view(shape)
            start += size
        return out


def _constants(n: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    dim = 1 << n
    bits = ((torch.arange(dim)[:, None] >> torch.arange(n - 1, -1, -1)) & 1).to(dtype)  # wire 0 most significant
    return {"bits": bits, "ring": cnot_ring_permutation(n), # row 0 the state, row 1 + i its derivative by x'_i (factor i differentiated)
            "tangent": torch.arange(n + 1)[:, None] - 1 == torch.arange(n)[None, :]}


def _product(f_re: torch.Tensor, f_im: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Product state of per-qubit factors (..., n, 2) -> (..., 2^n), complex as (re, im) (im None: real)."""
    out_re, out_im = f_re[..., 0, :], None if f_im is None else f_im[..., 0, :]
    for i in range(1, f_re.shape[-2]):
        a_re, b_re = out_re[..., :, None], f_re[..., i, None, :]
        if f_im is None:
            out_re = (a_re * b_re).flatten(-2)
            continue
        a_im, b_im = out_im[..., :, None], f_im[..., i, None, :]
        out_re, out_im = (a_re * b_re - a_im * b_im).flatten(-2), (a_re * b_im + a_im * b_re).flatten(-2)
    return out_re, out_im


def _unitary(w: torch.Tensor, ring: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U = K_{L-1} ... K_0, K_l = C (Rot x ... x Rot) from weights (L, n, 3), as (re, im)."""
    phi, theta, omega = w.unbind(-1)
    c, s = torch.cos(0.5 * theta), torch.sin(0.5 * theta)
    al, be = 0.5 * (phi + omega), 0.5 * (phi - omega)
    # Rot = [[e^{-i al} c, -e^{i be} s], [e^{-i be} s, e^{i al} c]]
    re = torch.stack([torch.cos(al) * c, -torch.cos(be) * s, torch.cos(be) * s, torch.cos(al) * c], -1)
    im = torch.stack([-torch.sin(al) * c, -torch.sin(be) * s, -torch.sin(be) * s, torch.sin(al) * c], -1)
    re, im = re.unflatten(-1, (2, 2)), im.unflatten(-1, (2, 2))  # (L, n, 2, 2)
    k_re, k_im = re[:, 0], im[:, 0]
    for i in range(1, w.shape[-2]):
        d = k_re.shape[-1]
        a_re, a_im = k_re[:, :, None, :, None], k_im[:, :, None, :, None]
        b_re, b_im = re[:, i, None, :, None, :], im[:, i, None, :, None, :]
        k_re = (a_re * b_re - a_im * b_im).reshape(-1, 2 * d, 2 * d)
        k_im = (a_re * b_im + a_im * b_re).reshape(-1, 2 * d, 2 * d)
    k_re, k_im = k_re[:, ring], k_im[:, ring]
    u_re, u_im = k_re[-1], k_im[-1]
    for layer in range(w.shape[0] - 2, -1, -1):
        u_re, u_im = u_re @ k_re[layer] - u_im @ k_im[layer], u_re @ k_im[layer] + u_im @ k_re[layer]
    return u_re, u_im


def _floor_loss(flat: _Flat, cfg: QINNRunConfig, lo: torch.Tensor, width: torch.Tensor, consts: dict) -> Callable:
    """The Table 1 loss (mse invertibility, joint MMDs, the defaults of QINNRunConfig) of the flat parameters."""
    if (cfg.invertibility, cfg.mse_reduction, cfg.mmd_mode) != ("mse", "mean", "joint"):
        raise ValueError("the floor is written for Table 1's objective: invertibility 'mse', mse_reduction 'mean', "
                         f"mmd_mode 'joint'; got {cfg.invertibility!r}, {cfg.mse_reduction!r}, {cfg.mmd_mode!r}")
    lam = (cfg.lambda_mmd_latent, cfg.lambda_mmd_input, cfg.lambda_mz, cfg.lambda_inv)
    widths = tuple(float(s) for s in cfg.mmd_widths)
    bits, ring, tangent = consts["bits"], consts["ring"], consts["tangent"]

    def mass(u: torch.Tensor) -> torch.Tensor:
        return invariant_mass_torch(lo + (u / math.pi) * width)

    def loss(theta: torch.Tensor, x: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
        p = flat.views(theta)
        a = torch.clamp(p["a"], 0.0, 1.0)
        b = torch.clamp(p["b"], min=torch.zeros_like(a), max=1.0 - a)
        u_re, u_im = _unitary(p["weights"], ring)
        g_re, g_im = _unitary(p["isp_weights"], ring)
        # forward, z = c P + d with the full Jacobian: the state and its n tangents through U at once
        half = 0.5 * (a * x + math.pi * b)
        f = torch.stack([torch.cos(half), torch.sin(half)], -1)[:, None]  # (B, 1, n, 2)
        df = 0.5 * torch.stack([-torch.sin(half), torch.cos(half)], -1)[:, None]
        states, _ = _product(torch.where(tangent[None, :, :, None], df, f), None)  # (B, n + 1, dim)
        y_re, y_im = states @ u_re.T, states @ u_im.T
        probs = (y_re[:, 0].square() + y_im[:, 0].square()) @ bits
        dprobs = 2.0 * ((y_re[:, :1] * y_re[:, 1:] + y_im[:, :1] * y_im[:, 1:]) @ bits).transpose(1, 2)
        z = p["c"] * probs + p["d"]
        logdet = torch.linalg.slogdet(dprobs * (p["c"][:, None] * a)).logabsdet
        nll = (0.5 * z.square().sum(1) - logdet.clamp(min=LOGDET_FLOOR)).mean()
        # inverse of the round trip and of the latent sample: ISP network, Rot(psi)|0>, g_Q, U^dagger
        h = (torch.cat([z, z_s]) - p["d"]) / p["c"]
        n_lin = sum(1 for name in flat.names if name.endswith(".weight"))
        for j in range(n_lin):
            h = h @ p[f"isp_net.{2 * j}.weight"].T + p[f"isp_net.{2 * j}.bias"]
            if j < n_lin - 1:
                h = torch.nn.functional.silu(h)
        phi, th, om = h.unflatten(-1, (-1, 3)).unbind(-1)
        mags = torch.stack([torch.cos(0.5 * th), torch.sin(0.5 * th)], -1)
        phases = -0.5 * torch.stack([phi + om, phi - om], -1)
        s_re, s_im = _product(mags * torch.cos(phases), mags * torch.sin(phases))
        v_re, v_im = u_re.T @ g_re + u_im.T @ g_im, u_re.T @ g_im - u_im.T @ g_re  # U^dagger g_Q
        back2 = (s_re @ v_re.T - s_im @ v_im.T).square() + (s_re @ v_im.T + s_im @ v_re.T).square()
        p1 = torch.clamp(back2 @ bits, min=1e-30)
        p0 = torch.clamp(back2 @ (1.0 - bits), min=1e-30)
        x_rec, x_gen = ((2.0 * torch.atan2(p1.sqrt(), p0.sqrt()) - math.pi * b) / a).split(len(x))
        terms = (gaussian_mmd(z, z_s, widths), gaussian_mmd(x, x_gen, widths),
                 breit_wigner_mmd(mass(x), mass(x_gen), widths), (x - x_rec).square().mean())
        return nll + sum(w * t for w, t in zip(lam, terms))

    return loss


def _floor_step(model: QINN, cfg: QINNRunConfig, data, x: torch.Tensor, seed: int) -> tuple[Callable, Callable]:
    flat = _Flat(model)
    n = model.n_features
    lo = torch.as_tensor(data.scaler.lo, dtype=x.dtype)
    width = torch.as_tensor(data.scaler.hi, dtype=x.dtype) - lo
    loss_fn = compiled(_floor_loss(flat, cfg, lo, width, _constants(n, x.dtype)), label="the floor", dynamic=False,
                       options=step_compile_options())
    opt = torch.optim.Adam([flat.theta], lr=cfg.max_lr, betas=(cfg.beta1, cfg.beta2), fused=True)
    views = flat.views(flat.theta)
    gen = torch.Generator().manual_seed(seed)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        z_s = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        loss = loss_fn(flat.theta, x, z_s)
        loss.backward()
        opt.step()
        with torch.no_grad():  # the projection of a, b (QINN.constrain_)
            views["a"].clamp_(0.0, 1.0)
            views["b"].copy_(torch.clamp(views["b"], min=torch.zeros_like(views["a"]), max=1.0 - views["a"]))
        return loss.item()

    return step, getattr(loss_fn, "is_compiled", lambda: False)


def _library_step(model: QINN, cfg: QINNRunConfig, data, x: torch.Tensor, seed: int) -> tuple[Callable, Callable]:
    objective = QINNObjective(cfg, data.scaler)
    terms = objective.compiled_terms(model)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(seed)

    def step() -> float:  # what qinn_lib.training.loop.train does per batch (as bench._step_fn)
        opt.zero_grad(set_to_none=True)
        loss = terms(x, gen)["loss"]
        loss.backward()
        opt.step()
        model.constrain_()
        return loss.item()

    return step, terms.is_compiled


def run_floor(*, repeats: int = 50, rounds: int = 5, batch_size: int = 128, seed: int = 0,
              threads: int | None = 1, log=print) -> dict:
    """ms per step of the library's compiled QINN step and of its floor (module docstring), in
    the same process on ``threads`` torch threads, interleaved in ``rounds``."""
    with torch_threads(threads):
        return _run_floor(repeats=repeats, rounds=rounds, batch_size=batch_size, seed=seed, log=log)


def _run_floor(*, repeats: int, rounds: int, batch_size: int, seed: int, log) -> dict:
    tune_allocator()
    if rounds < 1 or repeats < rounds:
        raise ValueError(f"need 1 <= rounds <= repeats, got rounds={rounds}, repeats={repeats}")
    cfg = QINNRunConfig(batch_size=batch_size, seed=seed)
    data = prepare_data(8_000, cfg.data_seed, "float32")
    x = data.train[:batch_size]
    steps, first_loss, compile_s, ok = {}, {}, {}, {}
    for key, build in (("step", _library_step), ("floor", _floor_step)):
        steps[key], is_compiled = build(QINN.from_config(cfg), cfg, data, x, seed)
        t0 = time.perf_counter()
        first_loss[key] = steps[key]()  # compiles (the step's graph may already be in this process)
        compile_s[key] = time.perf_counter() - t0
        ok[key] = is_compiled()
    times, cpu = interleaved_times(steps, repeats, rounds)
    per_round = repeats // rounds
    out = {"batch_size": batch_size, "repeats": per_round * rounds,
           "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
           "first_loss_difference": abs(first_loss["step"] - first_loss["floor"]),
           "first_loss": first_loss["step"]}
    for key in steps:
        out[f"{key}_ms"] = 1e3 * min(times[key])
        out[f"{key}_ms_median"] = 1e3 * statistics.median(times[key])
        out[f"{key}_cpu_ms"] = 1e3 * statistics.median(cpu[key])
        out[f"{key}_compile_seconds"] = compile_s[key]
        out[f"{key}_compiled"] = ok[key]
    out["step_vs_floor"] = out["step_ms"] / out["floor_ms"]
    out["step_vs_floor_median"] = out["step_ms_median"] / out["floor_ms_median"]
    out["step_vs_floor_cpu"] = out["step_cpu_ms"] / out["floor_cpu_ms"]
    failed = [key for key in steps if not ok[key]]
    log(f"QINN step against its floor (batch {batch_size}, float32, {torch.get_num_threads()} thread(s), load average "
        f"{out['load_average']:.1f}; wall ms: min of {out['repeats']} steps, median in brackets; median CPU ms; "
        f"interleaved in {rounds} rounds):")
    log(f"  library, compiled step    : {out['step_ms']:8.2f} ms ({out['step_ms_median']:.2f}), CPU {out['step_cpu_ms']:.2f} ms")
    log(f"  floor (one fused function): {out['floor_ms']:8.2f} ms ({out['floor_ms_median']:.2f}), CPU {out['floor_cpu_ms']:.2f} ms; "
        f"compile {compile_s['floor']:.0f} s")
    log(f"  step / floor: {out['step_vs_floor']:.2f} (min), {out['step_vs_floor_median']:.2f} (median), "
        f"{out['step_vs_floor_cpu']:.2f} (CPU); target <= 2; "
        f"first losses {first_loss['step']:.6g} vs {first_loss['floor']:.6g} (same function: "
        f"difference {out['first_loss_difference']:.1e})" + (f"  [NOT COMPILED: {', '.join(failed)}]" if failed else ""))
    return out
