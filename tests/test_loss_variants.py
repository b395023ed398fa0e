"""The readings of the paper that notebook 06 varies: eq. 20 averaged or summed over the features
(``mse_reduction``), joint or per-observable MMD (``mmd_mode``), the one-cycle warm-up share
(``warmup_fraction``); and the config fields that carry them, which must leave every earlier run's
fingerprint (run directory, checkpoint, records) unchanged at their defaults."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.training.config import ConfigError, INNRunConfig, QINNRunConfig
from qinn_lib.training.losses.invertibility import mse_invertibility
from qinn_lib.training.losses.mmd import gaussian_mmd
from qinn_lib.training.objectives import QINNObjective
from qinn_lib.training.optimiser import make_optimizer, make_scheduler

WIDTHS = (0.02, 0.1, 0.4, 1.0, 5.0)
NEW_FIELDS = {"mse_reduction": "sum", "mmd_mode": "per_observable", "warmup_fraction": 0.1}


class ShiftFlow(torch.nn.Module):
    """z = (x - shift) * scale with an inexact inverse (a bias), so every loss term is non-trivial."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.shift = torch.nn.Parameter(torch.rand(5, generator=g, dtype=torch.float64) * math.pi)
        self.scale = torch.nn.Parameter(1.0 + 0.2 * torch.rand(5, generator=g, dtype=torch.float64))
        self.bias = torch.nn.Parameter(0.05 * torch.randn(5, generator=g, dtype=torch.float64))

    def forward_and_logdet(self, x):
        return (x - self.shift) * self.scale, torch.log(self.scale).sum().expand(x.shape[0])

    def inverse(self, z):
        return z / self.scale + self.shift + self.bias


def data(n=24, seed=1):
    return torch.rand(n, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * math.pi


def terms(**cfg_fields):
    cfg = QINNRunConfig(profile="quick", lambda_mz=0.0, **cfg_fields)
    return QINNObjective(cfg)(ShiftFlow(), data(), torch.Generator().manual_seed(7))


def test_mse_sum_is_n_times_mean():
    x, y = data(), data(seed=2)
    torch.testing.assert_close(mse_invertibility(x, y, "sum"), 5 * mse_invertibility(x, y))
    torch.testing.assert_close(mse_invertibility(x, y, "sum"), (x - y).pow(2).sum(1).mean())
    with pytest.raises(ValueError, match="reduction"):
        mse_invertibility(x, y, "median")


def test_objective_mse_reduction():
    mean, summed = terms(), terms(mse_reduction="sum")
    torch.testing.assert_close(summed["inv"], 5 * mean["inv"], rtol=1e-12, atol=0)
    for name in ("nll", "mmd_latent", "mmd_input"):  # nothing else changes
        torch.testing.assert_close(summed[name], mean[name], rtol=0, atol=0)
    torch.testing.assert_close(summed["loss"] - mean["loss"], 10.0 * 4 * mean["inv"], rtol=1e-10, atol=0)


def test_objective_per_observable_mmd_is_the_sum_of_1d_mmds():
    model, x = ShiftFlow(), data()
    out = QINNObjective(QINNRunConfig(lambda_mz=0.0, mmd_mode="per_observable"))(model, x, torch.Generator().manual_seed(7))
    with torch.no_grad():
        z = model.forward_and_logdet(x)[0]
        z_s = torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=x.dtype)
        x_gen = model.inverse(z_s)
        lat = sum(gaussian_mmd(z[:, i], z_s[:, i], WIDTHS) for i in range(5))
        inp = sum(gaussian_mmd(x[:, i], x_gen[:, i], WIDTHS) for i in range(5))
    torch.testing.assert_close(out["mmd_latent"].detach(), lat, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(out["mmd_input"].detach(), inp, rtol=1e-12, atol=1e-15)
    joint = terms()
    assert not torch.allclose(out["mmd_input"], joint["mmd_input"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_objective_rejects_unknown_readings():
    class Cfg:
        lambda_mmd_latent = lambda_mmd_input = lambda_mz = lambda_inv = 0.0
        mmd_widths, invertibility, mse_reduction, mmd_mode = WIDTHS, "mse", "mean", "pairwise"

    with pytest.raises(ValueError, match="mmd_mode"):
        QINNObjective(Cfg())


def test_new_fields_keep_default_fingerprints():
    # Pinned from before the fields existed: the Table 1 run and notebook 05's quick-profile QINN run.
    assert QINNRunConfig().fingerprint() == "24f782f47a501bc9"
    assert QINNRunConfig(profile="quick", epochs=2, n_events=8000).fingerprint() == "fdd009b77c9992c0"
    assert INNRunConfig().fingerprint() == "cb4a507884379cd2"
    assert not set(NEW_FIELDS) & set(QINNRunConfig().to_dict())


@pytest.mark.parametrize("name", sorted(NEW_FIELDS))
def test_non_default_new_fields_are_recorded_and_change_the_fingerprint(name):
    cfg = QINNRunConfig(**{name: NEW_FIELDS[name]})
    assert cfg.to_dict()[name] == NEW_FIELDS[name]
    assert cfg.fingerprint() != QINNRunConfig().fingerprint()
    assert QINNRunConfig.from_dict(cfg.to_dict()) == cfg
    assert QINNRunConfig.from_dict(QINNRunConfig().to_dict()) == QINNRunConfig()  # absent = default


def test_field_validation():
    with pytest.raises(ConfigError, match="mse_reduction"):
        QINNRunConfig(mse_reduction="max")
    with pytest.raises(ConfigError, match="invertibility='mse' only"):
        QINNRunConfig(mse_reduction="sum", invertibility="fidelity")
    with pytest.raises(ConfigError, match="warmup_fraction"):
        QINNRunConfig(warmup_fraction=1.5)
    with pytest.raises(ConfigError, match="final_factor"):
        INNRunConfig(start_factor=1e-3, final_factor=1e-2)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_warmup_fraction_sets_the_step_of_the_peak(fraction):
    cfg = QINNRunConfig(warmup_fraction=fraction)
    opt = make_optimizer(torch.nn.Linear(2, 2), cfg)
    sched = make_scheduler(opt, cfg, 1000)
    lrs = []
    for _ in range(1000):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    peak = max(range(1000), key=lrs.__getitem__)
    assert abs(peak - fraction * 1000) <= 1
    assert lrs[0] == pytest.approx(cfg.max_lr * cfg.start_factor)
