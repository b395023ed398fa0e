"""The floor of the QINN step (qinn_lib.experiments.bench_floor) computes the step's own function.

The benchmark compares the library's compiled step with the floor; that comparison means something
only if both compute the same loss and gradient. Here, in float64 and eager, the floor's loss of
one flat parameter tensor equals QINNObjective's loss of the QINN with those parameters (Table 1
configuration), and so does every parameter's gradient.
"""

from __future__ import annotations

import math

import torch

from qinn_lib.experiments import bench_floor
from qinn_lib.models.qinn.model import QINN
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.objectives import QINNObjective


class _Scaler:
    """An AngleScaler's inverse map (lo + u / pi (hi - lo)) on made-up ranges."""

    lo = [20.0, 20.0, 0.0, -2.5, -2.5]
    hi = [80.0, 80.0, math.pi, 2.5, 2.5]


def test_floor_loss_and_gradient_equal_the_objective():
    cfg = QINNRunConfig(profile="quick", n_layers=3, isp_layers=2, dtype="float64")
    model = QINN.from_config(cfg)
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(24, 5, generator=gen, dtype=torch.float64) * math.pi
    flat = bench_floor._Flat(model)
    lo = torch.tensor(_Scaler.lo, dtype=torch.float64)
    width = torch.tensor(_Scaler.hi, dtype=torch.float64) - lo
    loss = bench_floor._floor_loss(flat, cfg, lo, width, bench_floor._constants(5, torch.float64))
    z_s = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    floor = loss(flat.theta, x, z_s)
    floor.backward()
    terms = QINNObjective(cfg, _Scaler())(model, x, torch.Generator().manual_seed(5))
    assert set(terms) == {"loss", "nll", "mmd_latent", "mmd_input", "mmd_mz", "inv"}  # every term is in the floor
    terms["loss"].backward()
    torch.testing.assert_close(floor.detach(), terms["loss"].detach(), rtol=1e-12, atol=0.0)
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    torch.testing.assert_close(flat.theta.grad, grads, rtol=1e-9, atol=1e-9 * float(grads.abs().max()))
