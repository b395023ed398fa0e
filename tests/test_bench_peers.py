"""The benchmark's peers (qinn_lib.experiments.bench_peers, qinn_lib.experiments.peer_jax): the
PennyLane + JAX peer computes our model's function (when JAX, the optional extra, is installed),
and the benchmark runs without JAX, saying how to install it. No timing is asserted (performance
lives in the benchmark)."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.evaluation.results import SECTION_SCHEMAS, check_section_values
from qinn_lib.experiments import bench_peers, peer_jax
from qinn_lib.models.qinn.model import QINN


def test_without_jax_the_benchmark_says_how_to_install_it_and_times_the_rest(monkeypatch):
    monkeypatch.setattr(peer_jax, "jax_available", lambda: False)
    lines: list[str] = []
    out = bench_peers.run_peers(batch_size=3, repeats=1, rounds=1, reference_repeats=1, compile=False,
                                log=lines.append)
    assert peer_jax.INSTALL_HINT in lines and ".[jax]" in peer_jax.INSTALL_HINT
    assert out["jax"] is False and "jax_version" not in out
    assert {r["path"] for r in out["rows"].values()} == {"eager", "default.qubit"}
    assert set(out["ratios"]) == {"default.qubit fwd+logdet", "default.qubit step"}
    for row in out["rows"].values():
        assert row["ms_min"] > 0 and row["repeats"] == 1
    check_section_values(out, SECTION_SCHEMAS["bench_peers"], "bench_peers")
    assert any("target >= 100x" in line for line in lines)


def test_jax_available_asks_without_importing(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert peer_jax.jax_available() is False


def test_reference_piece_is_our_model_through_default_qubit():
    """The default.qubit piece timed against ours computes the same z and log det (float64)."""
    model = QINN(3, 2, 1, seed=1, dtype=torch.float64)
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * math.pi
    z_ref, logdet_ref = bench_peers._reference_fwd_logdet(model, x, create_graph=False)
    with torch.no_grad():
        z, logdet = model.forward_and_logdet(x)
    torch.testing.assert_close(z_ref.detach(), z, rtol=0, atol=1e-10)
    torch.testing.assert_close(logdet_ref.detach(), logdet, rtol=0, atol=1e-9)


@pytest.mark.parametrize("a_b", [None, ([0.9, 0.8, 0.7], [0.05, 0.1, 0.2]), ([1.2, 0.8, 0.7], [-0.1, 0.25, 0.3])],
                         ids=["at init, on the bounds", "inside", "outside (b above 1 - a) and on b's upper bound"])
def test_jax_peer_computes_our_models_logdet_and_nll_gradient(a_b):
    pytest.importorskip("jax", reason="JAX is the optional jax extra (pip install -e '.[jax]')")
    model = QINN(3, 2, 1, seed=2, dtype=torch.float64)
    if a_b is not None:  # a, b off their initial bounds (a = 1, b = 0): inside the feasible set, and outside
        with torch.no_grad():
            model.a.copy_(torch.tensor(a_b[0], dtype=torch.float64))
            model.b.copy_(torch.tensor(a_b[1], dtype=torch.float64))
    x = torch.rand(5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * math.pi
    peer = peer_jax.JaxPeer(model, threads=None)
    z_j, logdet_j = peer.forward_and_logdet(x)
    loss_j, grads_j = peer.nll_value_and_grad(x)

    z, logdet = model.forward_and_logdet(x)
    loss = (0.5 * z.square().sum(1) - logdet).mean()
    loss.backward()
    torch.testing.assert_close(torch.from_numpy(z_j.copy()), z.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(torch.from_numpy(logdet_j.copy()), logdet.detach(), rtol=0, atol=1e-9)
    assert loss_j == pytest.approx(float(loss.detach()), abs=1e-9)
    assert set(grads_j) == {"a", "b", "c", "d", "weights"}
    for name, grad in grads_j.items():
        torch.testing.assert_close(torch.from_numpy(grad.copy()), getattr(model, name).grad, rtol=0, atol=1e-8,
                                   msg=lambda m, name=name: f"d NLL / d {name}: {m}")
