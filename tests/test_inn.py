"""The classical spline-coupling INN (qinn_lib.models.inn.model): invertibility, log-determinants against
brute-force Jacobians, Table-1 parameter counts, seeding, errors and gradient flow.

Most numerical checks run on a *randomised* model: the subnets' last layers are redrawn at torch's
default Linear range (instead of the near-identity start), so the splines are genuinely curved
(log|det| per event between about -17 and +4) and the checks cannot pass trivially.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

from qinn_lib.models.inn.coupling import (
    DEFAULT_TAIL_BOUND,
    CubicSplineCoupling,
    SoftPermutation,
    mlp_subnet_constructor,
)
from qinn_lib.models.inn.model import INN, INNStack, build_inn
from qinn_lib.models.inn.sizes import INN_SIZES
from qinn_lib.training.config import INNRunConfig

SIZES = ("2k", "6k", "16k")
F64 = torch.float64
B = DEFAULT_TAIL_BOUND


# Thousands of tiny ops: one intra-op thread is faster (tests/conftest.py, one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


# -- helpers ----------------------------------------------------------------------------------------
def _couplings(model: INN) -> list[CubicSplineCoupling]:
    return [m for m in model.flow if isinstance(m, CubicSplineCoupling)]


def _randomise_last_layers(modules, *, scale: float, seed: int) -> None:
    """Redraw every subnet's last Linear uniformly in +-scale/sqrt(fan_in) (torch's range * scale)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in modules:
            for subnet in (mod.subnet1, mod.subnet2):
                if subnet is None:
                    continue
                lin = subnet[-1]
                bound = scale / math.sqrt(lin.in_features)
                for p in (lin.weight, lin.bias):
                    p.copy_(torch.empty(p.shape, dtype=F64).uniform_(-bound, bound, generator=gen).to(p.dtype))


def _random_inn(size: str, *, dtype=F64, seed: int = 0, two_sided: bool = False) -> INN:
    model = build_inn(size, seed=seed, dtype=dtype, two_sided=two_sided)
    _randomise_last_layers(_couplings(model), scale=1.0, seed=100 + seed)
    return model


def _test_inputs(n_random: int = 200, seed: int = 0) -> torch.Tensor:
    """[0, pi] events, the corners and edges of [0, pi]^5, and events far in the linear tails."""
    gen = torch.Generator().manual_seed(seed)
    inside = torch.rand(n_random, 5, generator=gen, dtype=F64) * math.pi
    corners = torch.tensor([[float(b) for b in np.binary_repr(k, 5)] for k in range(32)], dtype=F64) * math.pi
    edges = torch.rand(20, 5, generator=gen, dtype=F64) * math.pi
    edges[torch.arange(20), torch.arange(20) % 5] = torch.tensor([0.0, math.pi], dtype=F64).repeat(10)
    # centred values beyond +-B in every coordinate (and mixed): the spline's identity tails
    tails = torch.tensor([[-6.0, 9.0, -5.0, 12.0, 7.5], [15.0, -12.0, 20.0, -8.0, -30.0],
                          [math.pi / 2 + B + 0.5, 1.0, 2.0, -B, math.pi + B]], dtype=F64)
    far = torch.randn(40, 5, generator=gen, dtype=F64) * 10.0
    return torch.cat([inside, corners, edges, tails, far])


def _expected_count(size: str, n: int = 5, two_sided: bool = False) -> int:
    """Independent count: per half-step a ReLU MLP with `subnet_layers` linear maps."""
    a = INN_SIZES[size]
    k, h, layers = a["bins"], a["hidden"], a["subnet_layers"]

    def mlp(d_in: int, d_out: int) -> int:
        widths = [d_in] + [h] * (layers - 1) + [d_out]
        return sum((widths[i] + 1) * widths[i + 1] for i in range(layers))

    n_u, n_v = n // 2, n - n // 2
    per_block = mlp(n_v, n_u * (2 * k + 2))
    if two_sided:
        per_block += mlp(n_u, n_v * (2 * k + 2))
    return a["blocks"] * per_block


# -- parameter counts (Table 1) ---------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_parameter_counts_match_table_1(size):
    counts = build_inn(size).parameter_counts()
    print(f"INN {size}: {counts}")
    assert counts["quantum"] == 0
    assert counts["classical"] == counts["total"] == _expected_count(size)
    # Table 1 states 2k/6k/16k: the count rounded to thousands must give the label.
    assert round(counts["total"] / 1000) == int(size[:-1])


def test_two_sided_counts_are_about_double_and_miss_table_1():
    counts = build_inn("16k", two_sided=True).parameter_counts()
    assert counts["total"] == _expected_count("16k", two_sided=True) == 36_180
    assert round(counts["total"] / 1000) != 16


# -- invertibility -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_float64(size):
    model = _random_inn(size)
    x = _test_inputs()
    with torch.no_grad():
        z = model(x)
        x_hat = model.inverse(z)
        # generation direction, latents incl. 5 sigma
        zs = torch.randn(300, 5, generator=torch.Generator().manual_seed(1), dtype=F64) * 1.7
        z_hat = model(model.inverse(zs))
    torch.testing.assert_close(x_hat, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(z_hat, zs, atol=1e-6, rtol=0)
    assert not torch.allclose(z, x - math.pi / 2, atol=1e-2)  # the model is far from the identity


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_float32_training_precision(size):
    # float32: rounding of ~1e-7 amplified by the inverse's conditioning; data in [0, pi] and
    # N(0, 1) latents only (far-tail events of a random INN can be ill-conditioned beyond float32).
    model = _random_inn(size, dtype=torch.float32)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(500, 5, generator=gen) * math.pi
    zs = torch.randn(500, 5, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(model.inverse(model(x)), x, atol=1e-4, rtol=0)
        torch.testing.assert_close(model(model.inverse(zs)), zs, atol=1e-4, rtol=0)


def test_double_of_a_float32_model_is_exact_in_float64():
    # Regression: a float32 permutation matrix cast to float64 is orthogonal only to ~1e-7.
    model = _random_inn("6k", dtype=torch.float32).double()
    x = _test_inputs(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(model.inverse(model(x)), x, atol=1e-9, rtol=0)


@pytest.mark.parametrize("bins", [5, 8])
@pytest.mark.parametrize("two_sided", [False, True])
def test_coupling_round_trip_tails_and_bounds(bins, two_sided):
    gen = torch.Generator().manual_seed(bins)
    block = CubicSplineCoupling([(5,)], subnet_constructor=mlp_subnet_constructor(3, 12, generator=gen, dtype=F64),
                                bins=bins, tail_bound=B, two_sided=two_sided)
    _randomise_last_layers([block], scale=3.0, seed=bins)  # sharper splines than the INN tests
    x = torch.cat([
        (torch.rand(300, 5, generator=gen, dtype=F64) * 2 - 1) * B,
        torch.tensor([[B, -B, B, -B, 0.0], [-B, B, 0.5, B, -B],
                      [B + 1e-9, -B - 1e-9, B - 1e-9, -B + 1e-9, 0.0],
                      [7.0, -9.0, 1.0, 2.0, -3.0], [0.3, -0.2, 50.0, -60.0, 5.0]], dtype=F64),
    ])
    with torch.no_grad():
        (y,), ld = block([x])
        (x_hat,), ld_rev = block([y], rev=True)
    torch.testing.assert_close(x_hat, x, atol=1e-9, rtol=0)
    # log-dets agree except on events with a coordinate exactly at +-B (rows 300, 301): the map has
    # a kink there (spline end slope vs tail slope 1), and y = B may round to just outside.
    keep = torch.ones(len(x), dtype=torch.bool)
    keep[300:302] = False
    torch.testing.assert_close(ld_rev[keep], -ld[keep], atol=1e-9, rtol=0)
    # the spline maps [-B, B] onto itself, and the endpoints onto the endpoints
    with torch.no_grad():
        assert float(block([x[:300]])[0][0].abs().max()) <= B + 1e-12
        (edge,), _ = block([torch.tensor([[B, -B, 0.1, 0.2, 0.3]], dtype=F64)])
    torch.testing.assert_close(edge[0, :2], torch.tensor([B, -B], dtype=F64), atol=1e-12, rtol=0)


def test_linear_tails_are_the_identity():
    gen = torch.Generator().manual_seed(0)
    block = CubicSplineCoupling([(5,)], subnet_constructor=mlp_subnet_constructor(3, 8, generator=gen, dtype=F64),
                                bins=5, tail_bound=B)
    _randomise_last_layers([block], scale=3.0, seed=0)
    u = torch.tensor([[B + 0.01, -B - 0.01], [9.0, -20.0], [1e3, -1e3]], dtype=F64)
    v = torch.rand(3, 3, generator=gen, dtype=F64)
    with torch.no_grad():
        (y,), ld = block([torch.cat([u, v], 1)])
        (y_in,), ld_in = block([torch.cat([u * 0.5 / B, v], 1)])  # same v, u inside: not identity
    assert torch.equal(y, torch.cat([u, v], 1))
    assert torch.equal(ld, torch.zeros(3, dtype=F64))
    assert not torch.allclose(y_in[:, :2], u * 0.5 / B, atol=1e-3)


# -- log-determinants against brute-force Jacobians -------------------------------------------------
def _per_event_jacobian_logdet(f, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    signs, logs = [], []
    for row in x:
        jac = jacobian(lambda r: f(r.unsqueeze(0)).squeeze(0), row)
        s, l = torch.linalg.slogdet(jac)
        signs.append(s)
        logs.append(l)
    return torch.stack(signs), torch.stack(logs)


@pytest.mark.parametrize("bins", [5, 8])
@pytest.mark.parametrize("two_sided", [False, True])
def test_coupling_logdet_matches_bruteforce_jacobian(bins, two_sided):
    gen = torch.Generator().manual_seed(10 + bins)
    block = CubicSplineCoupling([(5,)], subnet_constructor=mlp_subnet_constructor(3, 12, generator=gen, dtype=F64),
                                bins=bins, tail_bound=B, two_sided=two_sided)
    _randomise_last_layers([block], scale=3.0, seed=bins)
    x = torch.cat([(torch.rand(12, 5, generator=gen, dtype=F64) * 2 - 1) * B,
                   torch.tensor([[B + 0.5, -0.3, 0.2, -0.1, 1.0], [-B + 1e-3, B - 1e-3, 2.0, -2.0, 0.0],
                                 [-7.0, 0.4, 3.0, 1.0, -1.0]], dtype=F64)])
    with torch.no_grad():
        (y,), ld = block([x])
        (_,), ld_rev = block([y], rev=True)
    sign, ref = _per_event_jacobian_logdet(lambda t: block([t])[0][0], x)
    assert bool((sign > 0).all())  # monotone increasing splines: orientation preserved
    torch.testing.assert_close(ld, ref, atol=1e-9, rtol=1e-9)
    assert float(ld.abs().max()) > 0.5  # the check is not on a near-identity map
    # inverse direction: FrEIA returns log|det dx/dy|
    _, ref_rev = _per_event_jacobian_logdet(lambda t: block([t], rev=True)[0][0], y)
    torch.testing.assert_close(ld_rev, ref_rev, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("size", SIZES)
def test_inn_logdet_matches_bruteforce_jacobian(size):
    model = _random_inn(size)
    x = _test_inputs(n_random=10, seed=4)[::4]  # random, corners, edges and tail events
    with torch.no_grad():
        _, ld = model.forward_and_logdet(x)
    sign, ref = _per_event_jacobian_logdet(model.forward, x)
    torch.testing.assert_close(ld, ref, atol=1e-8, rtol=1e-8)
    assert float(ld.abs().max()) > 1.0
    assert ld.shape == (x.shape[0],)


def test_init_is_close_to_identity_up_to_the_permutations():
    model = build_inn("16k", seed=0, dtype=F64)
    x = _test_inputs(seed=5)[:232]  # [0, pi] events, corners and edges
    rot = torch.eye(5, dtype=F64)
    for mod in model.flow:
        if isinstance(mod, SoftPermutation):
            rot = mod.matrix @ rot
    with torch.no_grad():
        z, ld = model.forward_and_logdet(x)
    # last layers start at 1e-2 of torch's range -> spline knots ~1e-3 from the identity
    assert float(ld.abs().max()) < 0.1
    assert float((z - (x - math.pi / 2) @ rot.T).abs().max()) < 0.1
    assert float(ld.abs().max()) > 0.0  # deliberately not exactly zero (see module docstring)


# -- soft permutation --------------------------------------------------------------------------------
def test_soft_permutation_is_orthogonal_seeded_and_round_trips():
    perm = SoftPermutation([(5,)], seed=7)
    q = perm.matrix
    torch.testing.assert_close(q @ q.T, torch.eye(5, dtype=F64), atol=1e-14, rtol=0)
    assert abs(abs(float(torch.linalg.det(q))) - 1.0) < 1e-14
    assert float(q.abs().max()) < 0.999  # a soft permutation, not a hard one
    torch.testing.assert_close(SoftPermutation([(5,)], seed=7).matrix, q, atol=0, rtol=0)
    assert not torch.allclose(SoftPermutation([(5,)], seed=8).matrix, q)
    # nothing trainable, nothing saved: the seed rebuilds it
    assert list(perm.parameters()) == [] and perm.state_dict() == {}
    for dtype, tol in ((F64, 1e-14), (torch.float32, 1e-6)):
        x = torch.randn(64, 5, dtype=dtype, generator=torch.Generator().manual_seed(0))
        (y,), ld = perm([x])
        (x_hat,), ld_rev = perm([y], rev=True)
        torch.testing.assert_close(y, x @ q.to(dtype).T, atol=tol, rtol=0)
        torch.testing.assert_close(x_hat, x, atol=tol, rtol=0)
        assert torch.equal(ld, torch.zeros(64, dtype=dtype)) and torch.equal(ld_rev, ld)
        # norms are preserved (orthogonal)
        torch.testing.assert_close(y.norm(dim=1), x.norm(dim=1), atol=10 * tol, rtol=0)


def test_soft_permutation_of_seed_0_is_pinned():
    # Q is rebuilt from the seed (not saved in checkpoints), so the seed -> Q map must not drift
    # with numpy versions; this snapshot (numpy 2.4) catches such a drift.
    expected = torch.tensor([0.1205512689601711, -0.11102391329747976, 0.2049326970655585,
                             0.11889288350684264, -0.9576054271739854], dtype=F64)
    torch.testing.assert_close(SoftPermutation([(5,)], seed=0).matrix[0], expected, atol=1e-12, rtol=0)


def test_inn_permutations_differ_between_blocks():
    mats = [m.matrix for m in build_inn("2k").flow if isinstance(m, SoftPermutation)]
    assert len(mats) == INN_SIZES["2k"]["blocks"]
    for i in range(len(mats)):
        for j in range(i):
            assert not torch.allclose(mats[i], mats[j])


# -- seeding -----------------------------------------------------------------------------------------
def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_inn("6k", seed=3), build_inn("6k", seed=3), build_inn("6k", seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not any(torch.equal(sa[k], sc[k]) for k in sa)
    x = torch.rand(16, 5, generator=torch.Generator().manual_seed(0)) * math.pi
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and not torch.allclose(a(x), c(x))
    # float32 and float64 builds start from the same (rounded) values
    d = build_inn("6k", seed=3, dtype=F64)
    assert all(torch.equal(d.state_dict()[k].float(), sa[k]) for k in sa)


def test_from_config():
    cfg = INNRunConfig(size="2k", seed=11, dtype="float64")
    model = INN.from_config(cfg)
    ref = build_inn("2k", seed=11, dtype=F64)
    assert model.dtype == F64 and model.size == "2k"
    assert model.architecture == cfg.architecture
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ref.state_dict().items())
    assert INN.from_config(INNRunConfig(size="16k")).dtype == torch.float32


# -- errors ------------------------------------------------------------------------------------------
def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"unknown size '4k'.*\['16k', '2k', '6k'\]"):
        build_inn("4k")
    with pytest.raises(ValueError, match="n_features"):
        build_inn("2k", n_features=1)
    with pytest.raises(ValueError, match="seed"):
        build_inn("2k", seed=-1)
    with pytest.raises(ValueError, match="dtype"):
        build_inn("2k", dtype=torch.float16)
    model = build_inn("2k")
    with pytest.raises(ValueError, match=r"INN: x must have shape \(batch, 5\), got \(3, 4\)"):
        model.forward_and_logdet(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"INN: x must have shape"):
        model(torch.zeros(5))
    with pytest.raises(ValueError, match=r"INN: z must have shape \(batch, 5\)"):
        model.inverse(torch.zeros(2, 6))
    bad = torch.full((4, 5), 1.0)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"INN: x .* 1 non-finite"):
        model(bad)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match=r"INN: z .* non-finite"):
        model.inverse(bad)
    with pytest.raises(ValueError, match="bins"):
        CubicSplineCoupling([(5,)], subnet_constructor=mlp_subnet_constructor(3, 8), bins=0)
    with pytest.raises(ValueError, match="tail_bound"):
        CubicSplineCoupling([(5,)], subnet_constructor=mlp_subnet_constructor(3, 8), tail_bound=0.0)
    with pytest.raises(ValueError, match="conditions"):
        CubicSplineCoupling([(5,)], [(2,)], subnet_constructor=mlp_subnet_constructor(3, 8))
    with pytest.raises(ValueError, match="subnet_constructor"):
        CubicSplineCoupling([(5,)])
    with pytest.raises(ValueError, match="last_layer_scale"):
        mlp_subnet_constructor(3, 8, last_layer_scale=0.0)


# -- gradients ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["2k", "16k"])
def test_gradient_reaches_every_parameter(size):
    model = build_inn(size, seed=0)  # float32, as trained; from the near-identity init
    x = torch.rand(128, 5, generator=torch.Generator().manual_seed(0)) * math.pi
    z, logdet = model.forward_and_logdet(x)
    (0.5 * z.pow(2).sum(dim=1) - logdet).mean().backward()  # eq. 7 with tau = 0
    params = dict(model.named_parameters())
    assert len(params) == 2 * 3 * INN_SIZES[size]["blocks"]  # 3 Linear (weight, bias) per block
    for name, p in params.items():
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0.0, name
    # the generation path (used by the M_Z MMD) is differentiable and finite too
    model.zero_grad()
    x_gen = model.inverse(torch.randn(128, 5, generator=torch.Generator().manual_seed(1)))
    x_gen.pow(2).mean().backward()
    for name, p in params.items():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().max()) > 0.0, name


# -- INNStack: the lockstep performance path ---------------------------------------------------------
def test_stack_matches_its_members_forward_logdet_and_inverse():
    members = [_random_inn("6k", seed=s) for s in (11, 12, 13)]
    stack = INNStack(members)
    g = torch.Generator().manual_seed(5)
    # different batch sizes per member, data in [0, pi] plus a few events outside (linear tails)
    xs = [torch.rand(40 + 9 * i, 5, generator=g, dtype=F64) * 3.6 - 0.2 for i in range(3)]
    zs = [torch.randn(30 + 4 * i, 5, generator=g, dtype=F64) * 1.5 for i in range(3)]
    with torch.no_grad():
        stacked = stack.forward_and_logdet(xs)
        inverted = stack.inverse(zs)
        for m, x, (z, logdet), zz, x_gen in zip(members, xs, stacked, zs, inverted):
            z_ref, logdet_ref = m.forward_and_logdet(x)
            torch.testing.assert_close(z, z_ref, atol=1e-12, rtol=0)
            torch.testing.assert_close(logdet, logdet_ref, atol=1e-12, rtol=0)
            torch.testing.assert_close(x_gen, m.inverse(zz), atol=1e-12, rtol=0)
    # the members really differ (else the test could not tell them apart)
    assert not torch.allclose(stacked[0][0], members[1](xs[0]), atol=1e-3)


def test_stack_gradients_match_member_gradients():
    members = [_random_inn("2k", seed=s) for s in (1, 2)]
    x = torch.rand(32, 5, generator=torch.Generator().manual_seed(0), dtype=F64) * math.pi
    stack = INNStack(members)
    total = sum((z.pow(2).sum() - ld.sum()) for z, ld in stack.forward_and_logdet([x, x]))
    total.backward()
    stacked_grads = [[p.grad.clone() for p in m.parameters()] for m in members]
    for m, grads in zip(members, stacked_grads):
        m.zero_grad()
        z, ld = m.forward_and_logdet(x)
        (z.pow(2).sum() - ld.sum()).backward()
        for p, g in zip(m.parameters(), grads):
            torch.testing.assert_close(g, p.grad, atol=1e-10, rtol=1e-10)


def test_stack_rejects_mixed_architectures_and_wrong_inputs():
    with pytest.raises(ValueError, match="size"):
        INNStack([build_inn("2k"), build_inn("6k")])
    with pytest.raises(ValueError, match="dtype"):
        INNStack([build_inn("2k"), build_inn("2k", dtype=F64)])
    with pytest.raises(ValueError, match="at least one"):
        INNStack([])
    with pytest.raises(ValueError, match="not an INN"):
        INNStack([build_inn("2k"), torch.nn.Linear(5, 5)])
    stack = INNStack([build_inn("2k", seed=0), build_inn("2k", seed=1)])
    with pytest.raises(ValueError, match="expected 2 x tensors"):
        stack.forward_and_logdet([torch.zeros(3, 5)])
    with pytest.raises(ValueError, match=r"x\[1\]"):
        stack.forward_and_logdet([torch.zeros(3, 5), torch.zeros(3, 4)])
