"""qinn_lib.models.qinn.reuploading: one upload is the QINN's forward map; the hand-propagated Jacobian agrees
with autograd and with a PennyLane QNode of the same circuit; NLL-only training goes through the
ordinary trainer (and through Dask), and one upload trains exactly like the NLL-only QINN."""

from __future__ import annotations

import math

import pytest
import torch

from qinn_lib.experiments.plans import reuploading_configs
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.reuploading import ReuploadingFlow, pennylane_reference
from qinn_lib.training.config import ConfigError, QINNRunConfig, ReuploadingRunConfig
from qinn_lib.training.loop import train
from qinn_lib.training.objectives import NLLObjective, QINNObjective

torch.set_num_threads(1)
F64 = torch.float64


def events(n=16, seed=0):
    return torch.rand(n, 5, generator=torch.Generator().manual_seed(seed), dtype=F64) * math.pi


def with_ab(model):
    with torch.no_grad():  # a state preparation away from the identity, so a and b matter
        model.a.copy_(torch.linspace(0.6, 0.9, model.n_features))
        model.b.copy_(torch.linspace(0.05, 0.1, model.n_features))
    return model


def test_one_upload_is_the_qinn_forward_map():
    q = with_ab(QINN(5, 4, seed=7, dtype=F64))
    r = with_ab(ReuploadingFlow(5, 4, 1, seed=7, dtype=F64))
    torch.testing.assert_close(r.weights, q.weights)  # same seeded initialisation
    x = events()
    zq, jq = q.forward_and_jacobian(x)
    zr, jr = r.forward_and_jacobian(x)
    torch.testing.assert_close(zr, zq, rtol=0, atol=1e-13)
    torch.testing.assert_close(jr, jq, rtol=0, atol=1e-12)
    torch.testing.assert_close(r.forward_and_logdet(x)[1], q.forward_and_logdet(x)[1], rtol=0, atol=1e-11)


@pytest.mark.parametrize("uploads", [2, 3])
def test_jacobian_matches_autograd(uploads):
    model = with_ab(ReuploadingFlow(5, 6, uploads, seed=uploads, dtype=F64))
    x = events(4)
    _, jac = model.forward_and_jacobian(x)
    for b in range(x.shape[0]):
        ref = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x[b])
        torch.testing.assert_close(jac[b], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("uploads", [2, 3])
def test_values_and_jacobian_match_pennylane(uploads):
    model = with_ab(ReuploadingFlow(5, 6, uploads, seed=10 + uploads, dtype=F64))
    ref = pennylane_reference(model)
    x = events(3, seed=1)
    x_prime = model.encode(x).detach()
    z, jac = model.forward_and_jacobian(x)
    a = model.clamped_ab()[0].detach()
    for b in range(x.shape[0]):
        torch.testing.assert_close(z[b].detach(), ref(x_prime[b]), rtol=0, atol=1e-12)
        jac_ref = torch.autograd.functional.jacobian(ref, x_prime[b]) * a  # dz/dx = dz/dx' diag(a)
        torch.testing.assert_close(jac[b].detach(), jac_ref, rtol=0, atol=1e-12)


def test_parameter_gradients_flow_to_every_parameter():
    model = with_ab(ReuploadingFlow(5, 4, 2, seed=1, dtype=F64))
    out = NLLObjective()(model, events(), None)
    out["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_same_parameter_count_for_every_upload_count():
    counts = {u: ReuploadingFlow(5, 12, u).parameter_counts() for u in (1, 2, 3)}
    assert counts[1] == counts[2] == counts[3] == {"quantum": 180, "classical": 20, "total": 200}
    assert ReuploadingFlow(5, 12, 3).blocks == [4, 4, 4] and ReuploadingFlow(5, 7, 3).blocks == [3, 2, 2]
    with pytest.raises(ValueError, match="uploads"):
        ReuploadingFlow(5, 2, 3)
    with pytest.raises(ConfigError, match="uploads"):
        ReuploadingRunConfig(n_layers=2, uploads=3)


def test_one_upload_trains_exactly_like_the_nll_only_qinn(tmp_path):
    """The same seed, data, schedule and NLL: the QINN (whose ISP gets no gradient) and the
    one-upload flow must follow the same trajectory."""
    common = dict(profile="quick", seed=5, epochs=2, batch_size=32, n_layers=3, dtype="float64")
    q_cfg = QINNRunConfig(**common, lambda_inv=0.0, lambda_mmd_input=0.0, lambda_mmd_latent=0.0, lambda_mz=0.0)
    r_cfg = ReuploadingRunConfig(**common, uploads=1)
    x_train, x_val = events(128, seed=1), events(64, seed=2)
    hist = {}
    for name, model, obj, cfg in (("qinn", QINN.from_config(q_cfg), QINNObjective(q_cfg), q_cfg),
                                  ("flow", ReuploadingFlow.from_config(r_cfg), NLLObjective(), r_cfg)):
        hist[name] = train(model, obj, x_train, x_val, cfg, run_dir=tmp_path / name, data_fingerprint="d",
                           progress=False).history
    for hq, hf in zip(hist["qinn"], hist["flow"]):
        assert hf["train_nll"] == pytest.approx(hq["train_nll"], rel=1e-10)
        assert hf["val_nll"] == pytest.approx(hq["val_nll"], rel=1e-10)
    assert hist["flow"][-1]["train_nll"] < hist["flow"][0]["train_nll"] + 1.0  # it trains, finitely


def test_reuploading_configs_share_the_base_run_settings():
    base = QINNRunConfig(profile="quick", epochs=3, n_events=8000, max_lr=2e-3, n_layers=6)
    cfgs = reuploading_configs(base, [1, 2], [4, 5])
    assert [c.seed for c in cfgs[2]] == [4, 5] and all(c.uploads == 2 for c in cfgs[2])
    c = cfgs[1][0]
    assert (c.epochs, c.n_events, c.max_lr, c.n_layers, c.profile) == (3, 8000, 2e-3, 6, "quick")


def test_reuploading_runs_train_through_dask_and_reload(tmp_path, monkeypatch):
    """One short run as a Dask job (in-process cluster, the runner of the QINN and INN runs), then
    reloaded without retraining."""
    distributed = pytest.importorskip("distributed")
    from qinn_lib.experiments import ensembles, one_model

    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    data = one_model.prepare_data(8000, 1234)
    cfg = ReuploadingRunConfig(profile="quick", n_events=8000, epochs=1, uploads=2, n_layers=2)
    logs: list[str] = []
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        (trained,) = ensembles.train_runs([cfg], client=client, log=logs.append, data=data)
        assert len(trained.history) == 1 and any("Dask" in m for m in logs)
        assert any(f"reuploading-u2-{cfg.fingerprint()[:8]}-seeds-1234" in m for m in logs)
        logs.clear()
        (again,) = ensembles.train_runs([cfg], client=client, log=logs.append, data=data)
    assert logs == []  # finished: nothing submitted
    assert again.history == trained.history
    for p, q in zip(again.model.parameters(), trained.model.parameters()):
        assert torch.equal(p, q)
