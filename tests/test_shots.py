"""Finite-shot sampling (qinn_lib.hardware.shots): the estimates follow the binomial law, shared shots
give the multinomial covariances, PennyLane's default.qubit with shots agrees, and the estimates
converge to the exact probabilities as the shot count grows.

Statistical tests use a fixed seed (so they are deterministic) and tolerances of 4 standard
errors of the tested quantity: a correct sampler would fail one check for a random seed with
probability below 1e-4, a wrong law (other variance, missing covariance) misses by far more.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qinn_lib.hardware import shots
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.simulator import ry_state

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("bad", [0, -5, 100.5, True, "100", float("nan"), float("inf"), None, 2.0**60])
def test_bad_shots_name_the_parameter(bad):
    with pytest.raises(ValueError, match="shots must be"):
        shots.check_shots(bad)


def test_integral_shots_are_accepted():
    assert shots.check_shots(1e6) == 1_000_000
    assert shots.check_shots(np.int64(7)) == 7
    with pytest.raises(ValueError, match="n_shots must be"):
        shots.check_shots(0.5, name="n_shots")


def test_bad_distributions_are_rejected():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="probability distributions"):
        shots.sample_counts(torch.tensor([[0.5, 0.6]], dtype=F64), 10, gen)
    with pytest.raises(ValueError, match="2\\^n outcome columns"):
        shots.estimate_marginals(torch.full((1, 3), 1 / 3, dtype=F64), 10, gen)


def _distribution(n: int = 3, seed: int = 2) -> torch.Tensor:
    """A generic distribution over 2^n outcomes with one impossible outcome and strongly correlated
    qubits (extra weight on |0...0> and |1...1>, as in a GHZ-like state)."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(1 << n, generator=gen, dtype=F64) ** 2
    p = p / p.sum()
    p[0] += 0.6
    p[-1] += 0.6
    p[3] = 0.0
    return p / p.sum()


def test_counts_are_whole_sum_to_the_shots_and_skip_impossible_outcomes():
    p = _distribution()
    counts = shots.sample_counts(p.expand(500, -1), 37, torch.Generator().manual_seed(1))
    assert torch.equal(counts, counts.round()) and bool((counts >= 0).all())
    assert bool((counts.sum(1) == 37).all())
    assert bool((counts[:, 3] == 0).all())
    certain = torch.zeros(1, 8, dtype=F64)
    certain[0, 5] = 1.0
    assert shots.sample_counts(certain, 10**6, torch.Generator().manual_seed(1))[0, 5] == 10**6


def test_marginal_estimates_follow_the_binomial_law_with_multinomial_covariances():
    n, n_shots, reps = 3, 50, 40_000
    p = _distribution(n)
    bits = shots.basis_bits(n)
    pk = p @ bits  # exact P(qubit k = 1)
    pkl = (p[:, None, None] * bits[:, :, None] * bits[:, None, :]).sum(0)  # P(k = 1 and l = 1)
    est = shots.estimate_marginals(p.expand(reps, -1), n_shots, torch.Generator().manual_seed(3))
    mean = est.mean(0)
    var = est.var(0)
    cov = torch.cov(est.T)
    for k in range(n):
        q = float(pk[k] * (1 - pk[k]))
        sigma2 = q / n_shots  # Var of Binomial(N, P) / N
        assert abs(float(mean[k] - pk[k])) < 4 * math.sqrt(sigma2 / reps)
        # sample variance: SE^2 = sigma^4 (2 / (R - 1) + kappa / R), kappa = excess kurtosis (1 - 6q) / (N q)
        kappa = (1 - 6 * q) / (n_shots * q)
        assert abs(float(var[k]) - sigma2) < 4 * sigma2 * math.sqrt(2 / (reps - 1) + kappa / reps)
        for l in range(k + 1, n):
            expected = float(pkl[k, l] - pk[k] * pk[l]) / n_shots  # shared shots: multinomial covariance
            se = math.sqrt((float(var[k]) * float(var[l]) + expected**2) / reps)
            assert abs(float(cov[k, l]) - expected) < 4 * se
            assert abs(expected) > 8 * se, "the distribution must make the covariance test meaningful"


def test_estimates_converge_to_the_exact_probabilities():
    """RMS error = sqrt(P(1 - P) / N): the shots -> infinity limit, at the binomial rate."""
    p = _distribution(seed=4).expand(2000, -1)
    pk = p[0] @ shots.basis_bits(3)
    expected = float(torch.sqrt((pk * (1 - pk)).mean()))
    for n_shots in (10**4, 10**8, 10**12):
        est = shots.estimate_marginals(p, n_shots, torch.Generator().manual_seed(5))
        rms = float(((est - pk) ** 2).mean().sqrt())
        assert rms * math.sqrt(n_shots) == pytest.approx(expected, rel=0.1)
    assert rms < 1e-5


def test_parameter_shift_rule_is_exact_for_the_encoding_gates():
    """With exact probabilities at the shifted angles, the parameter-shift dP/dx' is the analytic one."""
    model = QINN(seed=4, dtype=F64)
    x_prime = torch.rand((4, 5), generator=torch.Generator().manual_seed(6), dtype=F64) * math.pi
    angles = shots.shifted_angles(x_prime)
    assert angles.shape == (4, 11, 5)
    with torch.no_grad():
        u = model.unitary()
        y = ry_state(angles.reshape(-1, 5)).to(torch.complex128) @ u.T
        p = ((y.abs() ** 2) @ shots.basis_bits(5)).view(4, 11, 5)
        probs, dprobs = shots.parameter_shift_jacobian(p)
        a = torch.ones(5, dtype=F64)
        z, jac = model.forward_and_jacobian(x_prime)  # a = 1, b = 0 at init: x = x'
    assert torch.allclose(model.c * probs + model.d, z, atol=1e-12)
    assert torch.allclose(dprobs * (model.c[:, None] * a), jac, atol=1e-12)


def test_fast_sampler_agrees_with_pennylane_shots():
    """default.qubit with shots = N on a few events: both samplers' estimates have the exact mean
    and the binomial variance P(1 - P)/N (every broadcast copy of an event gets its own shots)."""
    model = QINN(seed=8, dtype=F64)
    events = torch.rand((3, 5), generator=torch.Generator().manual_seed(9), dtype=F64) * math.pi
    n_shots, reps = 200, 300
    x = events.repeat_interleave(reps, 0)
    with torch.no_grad():
        y = ry_state(events).to(torch.complex128) @ model.unitary().T
        dist = y.abs() ** 2
    pk = dist @ shots.basis_bits(5)
    ours = shots.estimate_marginals(dist.repeat_interleave(reps, 0), n_shots, torch.Generator().manual_seed(10))
    theirs = shots.reference_shot_marginals(model, x, n_shots, seed=11)
    for est in (ours, theirs):
        est = est.view(3, reps, 5)
        sigma2 = pk * (1 - pk) / n_shots
        assert bool(((est.mean(1) - pk).abs() < 4 * torch.sqrt(sigma2 / reps) + 1e-12).all())
        # sample variance within 4 SE (normal approximation; the kurtosis term is small here)
        kappa = (1 - 6 * pk * (1 - pk)) / (n_shots * pk * (1 - pk))
        tol = 4 * sigma2 * torch.sqrt(2 / (reps - 1) + kappa / reps)
        assert bool(((est.var(1) - sigma2).abs() < tol).all())
