"""Tests of qinn_lib.training.loop: schedule, determinism, exact resume, atomic checkpoints, strict
loading, divergence handling. Tiny test doubles keep every test fast; one integration test runs
the real QINN objective."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qinn_lib.training.checkpoints import (
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_trained,
    save_checkpoint,
)
from qinn_lib.training.config import QINNRunConfig
from qinn_lib.training.loop import TrainingDiverged, train
from qinn_lib.training.objectives import QINNObjective
from qinn_lib.training.optimiser import make_optimizer, make_scheduler


# -- test doubles ----------------------------------------------------------------------------------
class AffineFlow(torch.nn.Module):
    """z = (x - shift) * exp(log_scale) with analytic log|det|; a trainable bias makes the inverse
    inexact, and ``constrain_`` clips it to a box (like the QINN's a, b)."""

    def __init__(self, n: int = 5, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.log_scale = torch.nn.Parameter(0.3 * torch.randn(n, generator=g))
        self.shift = torch.nn.Parameter(torch.rand(n, generator=g) * math.pi)
        self.inv_bias = torch.nn.Parameter(0.05 * torch.randn(n, generator=g))
        self.constrain_calls = 0

    def forward(self, x):
        return (x - self.shift) * torch.exp(self.log_scale)

    def forward_and_logdet(self, x):
        return self.forward(x), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, z):
        return z * torch.exp(-self.log_scale) + self.shift + self.inv_bias

    @torch.no_grad()
    def constrain_(self):
        self.constrain_calls += 1
        self.inv_bias.clamp_(-0.02, 0.02)


class LinearScaler:
    def inverse_torch(self, u):
        return u * torch.tensor([20.0, 20.0, 1.0, 1.5, 1.5]) + torch.tensor([15.0, 15.0, 0.0, -2.0, -2.0])


def toy_mass(f):
    m2 = 2 * f[:, 0] * f[:, 1] * (torch.cosh(f[:, 3] - f[:, 4]) - torch.cos(f[:, 2]))
    return torch.sqrt(m2.clamp_min(1e-9))  # generated pT may come out negative


class CountingObjective:
    """Wraps an objective: counts calls and can poison the loss at a chosen global step."""

    def __init__(self, inner, nan_at_step=None, value=float("nan")):
        self.inner, self.nan_at_step, self.value = inner, nan_at_step, value
        self.calls = 0

    def __call__(self, model, x, generator):
        out = self.inner(model, x, generator)
        self.calls += 1
        if self.nan_at_step is not None and self.calls == self.nan_at_step:
            out = dict(out)
            out["nll"] = out["nll"] * self.value
            out["loss"] = out["loss"] + out["nll"]
        return out

    def evaluate(self, model, x, generator):
        return self.inner.evaluate(model, x, generator)


def make_cfg(**kw):
    base = dict(profile="quick", seed=7, epochs=3, batch_size=16, n_layers=1, isp_layers=1)
    base.update(kw)
    return QINNRunConfig(**base)


def make_data(n_train=80, n_val=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n_train, 5, generator=g) * math.pi, torch.rand(n_val, 5, generator=g) * math.pi)


def objective_for(cfg):
    return QINNObjective(cfg, LinearScaler(), mass_fn=toy_mass)


def run(tmp_path, name="run", cfg=None, seed_model=0, objective=None, **kw):
    cfg = cfg or make_cfg()
    train_x, val_x = make_data()
    model = AffineFlow(seed=seed_model)
    result = train(model, objective or objective_for(cfg), train_x, val_x, cfg, run_dir=tmp_path / name,
                   data_fingerprint="data-abc", progress=False, **kw)
    return model, result


def strip_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def params_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- schedule and optimiser ------------------------------------------------------------------------
def test_one_cycle_schedule_matches_table1_and_keeps_beta1():
    cfg = make_cfg()  # Table 1: max_lr 1e-3, start/final factors 4e-2 / 1e-4, betas 0.9, 0.9
    model = AffineFlow()
    opt = make_optimizer(model, cfg)
    total = 20  # 30 % warm-up ends exactly on step 5
    sched = make_scheduler(opt, cfg, total)
    lrs, beta1s = [], []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        beta1s.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3 * 4e-2, rel=1e-12)
    assert max(lrs) == pytest.approx(1e-3, rel=1e-12)
    assert lrs.index(max(lrs)) == 5
    assert lrs[-1] == pytest.approx(1e-3 * 1e-4, rel=1e-9)
    assert all(b == 0.9 for b in beta1s)
    assert opt.param_groups[0]["betas"] == (0.9, 0.9)


def test_train_uses_schedule_end_and_betas(tmp_path):
    cfg = make_cfg(beta1=0.5, beta2=0.8)
    model, result = run(tmp_path, cfg=cfg)
    assert result.history[-1]["lr"] == pytest.approx(cfg.max_lr * cfg.final_factor, rel=1e-9)
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["optimizer"]["param_groups"][0]["betas"] == (0.5, 0.8)
    assert ckpt["scheduler"]["last_epoch"] == 3 * (80 // 16)


# -- the loop --------------------------------------------------------------------------------------
def test_history_contents_drop_last_and_constrain(tmp_path):
    cfg = make_cfg(batch_size=24)  # 80 events -> 3 full batches per epoch, 8 events dropped
    obj = CountingObjective(objective_for(cfg))
    model, result = run(tmp_path, cfg=cfg, objective=obj)
    assert obj.calls == 3 * 3
    assert model.constrain_calls == 9
    assert float(model.inv_bias.detach().abs().max()) <= 0.02
    assert result.epochs_run == 3 and result.resumed_from is None
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    for h in result.history:
        for term in ("loss", "nll", "mmd_latent", "mmd_input", "mmd_mz", "inv"):
            assert math.isfinite(h[f"train_{term}"]) and math.isfinite(h[f"val_{term}"])
        assert h["seconds"] > 0
    # the loss goes down on this easy problem
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_too_little_training_data_is_refused(tmp_path):
    cfg = make_cfg(batch_size=128)
    with pytest.raises(ValueError, match="fewer than batch_size=128"):
        run(tmp_path, cfg=cfg)


def test_same_seed_gives_identical_runs_and_other_seed_differs(tmp_path):
    m1, r1 = run(tmp_path, "a")
    m2, r2 = run(tmp_path, "b")
    assert params_equal(m1, m2)
    assert strip_seconds(r1.history) == strip_seconds(r2.history)
    m3, r3 = run(tmp_path, "c", cfg=make_cfg(seed=8))
    assert not params_equal(m1, m3)


def test_train_does_not_touch_global_rng(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_resume_reproduces_uninterrupted_run_bitwise(tmp_path):
    full_model, full = run(tmp_path, "full")

    part_model, part = run(tmp_path, "split", stop_after_epoch=1)
    assert part.epochs_run == 1 and len(part.history) == 1
    assert load_checkpoint(part.checkpoint)["epoch"] == 1

    fresh = AffineFlow(seed=0)  # as a new process would build it, then train() resumes
    train_x, val_x = make_data()
    cfg = make_cfg()
    resumed = train(fresh, objective_for(cfg), train_x, val_x, cfg, run_dir=tmp_path / "split",
                    data_fingerprint="data-abc", progress=False)
    assert resumed.resumed_from == 1 and resumed.epochs_run == 2
    assert params_equal(fresh, full_model)
    assert strip_seconds(resumed.history) == strip_seconds(full.history)


def test_complete_run_returns_immediately_with_weights_loaded(tmp_path):
    trained, first = run(tmp_path)
    obj = CountingObjective(objective_for(make_cfg()))
    again, second = run(tmp_path, objective=obj)
    assert obj.calls == 0 and second.epochs_run == 0 and second.resumed_from == 3
    assert params_equal(again, trained)
    assert strip_seconds(second.history) == strip_seconds(first.history)


def test_resume_false_starts_afresh(tmp_path):
    run(tmp_path, stop_after_epoch=1)
    _, result = run(tmp_path, resume=False)
    assert result.resumed_from is None and result.epochs_run == 3


# -- checkpoints -----------------------------------------------------------------------------------
def test_checkpoint_loads_with_weights_only_and_holds_the_record(tmp_path):
    cfg = make_cfg()
    _, result = run(tmp_path, extra_state={"scaler": {"lo": [0.0, 1.0], "hi": [2.0, 3.0]}})
    assert result.checkpoint == tmp_path / "run" / CHECKPOINT_NAME
    raw = torch.load(result.checkpoint, weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION
    assert raw["cfg"] == cfg.to_dict() and raw["cfg_kind"] == "qinn"
    assert raw["data_fingerprint"] == "data-abc"
    assert raw["extra_state"] == {"scaler": {"lo": [0.0, 1.0], "hi": [2.0, 3.0]}}
    assert raw["epoch"] == 3 and len(raw["history"]) == 3
    assert set(raw["model"]) == {"log_scale", "shift", "inv_bias"}
    # no temp files: the checkpoint, its sha256 and the run folder's lock file
    assert sorted(p.name for p in result.checkpoint.parent.iterdir()) == [".lock", CHECKPOINT_NAME, CHECKPOINT_NAME + ".sha256"]


def test_load_trained_restores_weights(tmp_path):
    trained, result = run(tmp_path)
    other = AffineFlow(seed=99)
    ckpt = load_trained(other, result.checkpoint, expected_cfg=make_cfg(), expected_fingerprint="data-abc")
    assert params_equal(other, trained) and ckpt["epoch"] == 3


def test_extra_state_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match=r"extra_state\['lo'\].*numpy"):
        run(tmp_path, extra_state={"lo": np.zeros(3)})


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    run(tmp_path, stop_after_epoch=1)
    path = tmp_path / "run" / CHECKPOINT_NAME
    before = path.read_bytes()
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial checkpoint bytes")  # half-written file, then the "crash"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        run(tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", CHECKPOINT_NAME, CHECKPOINT_NAME + ".sha256"]


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path / "nope.pt")):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupted_checkpoint_raises_checkpoint_error_naming_file(tmp_path, damage):
    _, result = run(tmp_path, stop_after_epoch=1)
    path = result.checkpoint
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=f"{path}.*corrupted"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=str(path)):  # train() refuses to resume from it
        run(tmp_path)


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    torch.save({"format_version": FORMAT_VERSION, "evil": AffineFlow()}, path)
    with pytest.raises(CheckpointError, match="corrupted or not a plain checkpoint"):
        load_checkpoint(path)


def test_wrong_format_version(tmp_path):
    _, result = run(tmp_path, stop_after_epoch=1)
    ckpt = torch.load(result.checkpoint, weights_only=True)
    ckpt["format_version"] = FORMAT_VERSION + 1
    save_checkpoint(result.checkpoint, ckpt)  # (a consistent file of another version, with its sha256)
    with pytest.raises(CheckpointError, match=f"{result.checkpoint}.*format version {FORMAT_VERSION + 1}"):
        load_checkpoint(result.checkpoint)


def test_config_mismatch_names_fields_and_values(tmp_path):
    _, result = run(tmp_path, stop_after_epoch=1)
    other = make_cfg(batch_size=8, max_lr=2e-3)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(result.checkpoint, expected_cfg=other)
    msg = str(err.value)
    assert str(result.checkpoint) in msg
    assert "batch_size: checkpoint 16 vs requested 8" in msg
    assert "max_lr: checkpoint 0.001 vs requested 0.002" in msg
    assert msg.count(" vs requested ") == 2  # only the differing fields are listed
    # epochs counts: a run cannot be silently extended
    with pytest.raises(CheckpointError, match="epochs: checkpoint 3 vs requested 5"):
        run(tmp_path, cfg=make_cfg(epochs=5))
    # profile does not
    load_checkpoint(result.checkpoint, expected_cfg=make_cfg(profile="paper"))


def test_fingerprint_mismatch(tmp_path):
    _, result = run(tmp_path, stop_after_epoch=1)
    with pytest.raises(CheckpointError, match=f"{result.checkpoint}.*'data-abc' vs requested 'other'"):
        load_checkpoint(result.checkpoint, expected_fingerprint="other")
    train_x, val_x = make_data()
    with pytest.raises(CheckpointError, match="different data"):
        train(AffineFlow(), objective_for(make_cfg()), train_x, val_x, make_cfg(),
              run_dir=tmp_path / "run", data_fingerprint="other", progress=False)


# -- divergence ------------------------------------------------------------------------------------
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = make_cfg()
    run(tmp_path, stop_after_epoch=1)
    path = tmp_path / "run" / CHECKPOINT_NAME
    before = path.read_bytes()
    obj = CountingObjective(objective_for(cfg), nan_at_step=3)  # epoch 2, batch 3 of 5
    with pytest.raises(TrainingDiverged) as err:
        run(tmp_path, objective=obj)
    msg = str(err.value)
    assert "epoch 2, batch 3/5" in msg
    assert "nll=nan" in msg and "non-finite: ['loss', 'nll']" in msg
    assert str(path) in msg and "epoch 1" in msg
    assert path.read_bytes() == before


def test_loss_above_max_loss_stops_in_first_epoch(tmp_path):
    cfg = make_cfg(max_loss=1e3)
    obj = CountingObjective(objective_for(cfg), nan_at_step=2, value=1e6)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 2/5: loss .* \(max_loss 1000\).*No checkpoint"):
        run(tmp_path, cfg=cfg, objective=obj)
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()


# -- integration with the real QINN ----------------------------------------------------------------
def test_two_epochs_of_the_real_qinn_objective(tmp_path):
    qinn = pytest.importorskip("qinn_lib.models.qinn.model", reason="qinn_lib.models.qinn.model not written yet")
    preprocessing = pytest.importorskip("qinn_lib.events.scaling")
    cfg = make_cfg(epochs=2, batch_size=16, n_layers=2, isp_layers=2, isp_nn_layers=2, isp_hidden=8)
    g = torch.Generator().manual_seed(1)
    # physical-looking features: pT in 15-150 GeV, dphi in [0, 2pi), eta in [-4.5, 4.5]
    lo, hi = torch.tensor([15.0, 15.0, 0.0, -4.5, -4.5]), torch.tensor([150.0, 150.0, 2 * math.pi, 4.5, 4.5])
    physical = lo + (hi - lo) * torch.rand(64 + 32, 5, generator=g, dtype=torch.float64)
    scaler = preprocessing.AngleScaler.fit(physical[:64].numpy())
    data = torch.as_tensor(scaler.transform(physical.numpy()), dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    model = qinn.QINN.from_config(cfg)
    result = train(model, QINNObjective(cfg, scaler), data[:64], data[64:], cfg, run_dir=tmp_path,
                   data_fingerprint="random", extra_state={"scaler": scaler.to_dict()}, progress=False)
    assert result.epochs_run == 2
    for h in result.history:
        assert all(math.isfinite(v) for v in h.values()), h
        assert {"train_nll", "train_mmd_latent", "train_mmd_input", "train_mmd_mz", "train_inv"} <= set(h)
    ckpt = load_checkpoint(result.checkpoint, expected_cfg=cfg, expected_fingerprint="random")
    assert preprocessing.AngleScaler.from_dict(ckpt["extra_state"]["scaler"]).to_dict() == scaler.to_dict()


# -- lockstep training of a seed ensemble (INNStack) ---------------------------------------------------
def _inn_setup(seeds=(3, 4), **kw):
    from qinn_lib.models.inn.model import INN, INNStack
    from qinn_lib.training.config import INNRunConfig
    from qinn_lib.training.objectives import INNObjective

    base = dict(profile="quick", size="2k", epochs=2, batch_size=32, dtype="float64")
    base.update(kw)
    cfgs = [INNRunConfig(seed=s, **base) for s in seeds]
    models = [INN.from_config(c).double() if c.dtype == "float64" else INN.from_config(c) for c in cfgs]
    objective = INNObjective(cfgs[0], LinearScaler(), mass_fn=toy_mass)
    train_x, val_x = make_data(n_train=96, n_val=40)
    return cfgs, models, INNStack(models), objective, train_x.double(), val_x.double()


def _lockstep(tmp_path, cfgs, stack, objective, train_x, val_x, tag="lock", **kw):
    from qinn_lib.training.loop import train_lockstep

    return train_lockstep(stack, objective, train_x, val_x, cfgs,
                          run_dirs=[tmp_path / f"{tag}{c.seed}" for c in cfgs],
                          data_fingerprint="data-abc", progress=False, **kw)


def test_lockstep_training_matches_training_each_seed_alone(tmp_path):
    cfgs, models, stack, objective, train_x, val_x = _inn_setup()
    results = _lockstep(tmp_path, cfgs, stack, objective, train_x, val_x)
    _, alone, _, _, _, _ = _inn_setup()
    for cfg, m_stack, m_alone, res in zip(cfgs, models, alone, results):
        ref = train(m_alone, objective, train_x, val_x, cfg, run_dir=tmp_path / f"alone{cfg.seed}",
                    data_fingerprint="data-abc", progress=False)
        assert res.epochs_run == 2 and len(res.history) == 2
        for a, b in zip(m_stack.state_dict().values(), m_alone.state_dict().values()):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
        for h_s, h_a in zip(res.history, ref.history):
            assert h_s["lockstep_members"] == 2
            for k, v in h_a.items():
                if k != "seconds":
                    assert h_s[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
    # the two seeds really are different runs
    assert not torch.allclose(next(models[0].parameters()), next(models[1].parameters()))


def test_lockstep_resume_is_exact_and_checkpoints_reload_with_train(tmp_path):
    cfgs, models, stack, objective, train_x, val_x = _inn_setup(epochs=3)
    _lockstep(tmp_path, cfgs, stack, objective, train_x, val_x, tag="full")
    cfgs2, models2, stack2, _, _, _ = _inn_setup(epochs=3)
    first = _lockstep(tmp_path, cfgs2, stack2, objective, train_x, val_x, tag="part", stop_after_epoch=1)
    assert [r.epochs_run for r in first] == [1, 1]
    cfgs3, models3, stack3, _, _, _ = _inn_setup(epochs=3)
    resumed = _lockstep(tmp_path, cfgs3, stack3, objective, train_x, val_x, tag="part")
    assert [r.resumed_from for r in resumed] == [1, 1] and [r.epochs_run for r in resumed] == [2, 2]
    for a, b in zip(models, models3):
        assert params_equal(a, b)
    # each member's checkpoint is an ordinary run: train() reloads it without training
    _, fresh, _, _, _, _ = _inn_setup(epochs=3)
    again = train(fresh[1], objective, train_x, val_x, cfgs[1], run_dir=tmp_path / f"full{cfgs[1].seed}",
                  data_fingerprint="data-abc", progress=False)
    assert again.epochs_run == 0 and params_equal(fresh[1], models[1])
    assert load_checkpoint(tmp_path / f"full{cfgs[0].seed}" / CHECKPOINT_NAME)["lockstep_seeds"] == [3, 4]


def test_lockstep_errors_name_the_problem(tmp_path):
    from qinn_lib.training.config import INNRunConfig

    cfgs, models, stack, objective, train_x, val_x = _inn_setup()
    bad = [cfgs[0], INNRunConfig(**{**cfgs[1].to_dict(), "max_lr": 2e-3})]
    with pytest.raises(ValueError, match=r"differ only in seed; cfgs\[1\] differs in \['max_lr'\]"):
        _lockstep(tmp_path, bad, stack, objective, train_x, val_x)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        _lockstep(tmp_path, [cfgs[0], cfgs[0]], stack, objective, train_x, val_x)
    with pytest.raises(ValueError, match="2 stack members, 1 configs"):
        _lockstep(tmp_path, cfgs[:1], stack, objective, train_x, val_x)
    # members at different epochs cannot resume together
    train(models[0], objective, train_x, val_x, cfgs[0], run_dir=tmp_path / f"lock{cfgs[0].seed}",
          data_fingerprint="data-abc", progress=False, stop_after_epoch=1)
    with pytest.raises(CheckpointError, match=r"different epochs \{3: 1, 4: 0\}"):
        _lockstep(tmp_path, cfgs, stack, objective, train_x, val_x)


def test_lockstep_divergence_names_the_seed(tmp_path):
    cfgs, models, stack, objective, train_x, val_x = _inn_setup()
    with torch.no_grad():  # poison seed 4's model: its loss becomes NaN, seed 3's stays finite
        next(models[1].parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"^seed 4: training diverged in epoch 1, batch 1/3"):
        _lockstep(tmp_path, cfgs, stack, objective, train_x, val_x)


def test_lockstep_validation_of_all_chunks_at_once_matches_chunk_by_chunk():
    import contextlib

    from qinn_lib.training.loop import _validate

    for dtype in ("float64", "float32"):
        cfgs, models, stack, objective, _, _ = _inn_setup(seeds=(3, 4, 5), dtype=dtype)
        val_x = make_data(n_train=8, n_val=200, seed=3)[1].to(next(models[0].parameters()).dtype)
        args = (val_x, 32, [3, 4, 5], contextlib.nullcontext)
        loop = _validate(models, lambda xs, gens: objective.evaluate_stacked(stack, xs, gens), *args)
        at_once = _validate(models, None, *args,
                            evaluate_all=lambda chunks, gens: objective.evaluate_stacked_chunks(stack, chunks, gens))
        assert len(loop) == len(at_once) == 3
        for a, b in zip(loop, at_once):
            assert a.keys() == b.keys() == {"loss", "nll", "mmd_mz"}
            for k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-6 if dtype == "float32" else 1e-12, abs=1e-9), (dtype, k)
        assert loop[0]["loss"] != loop[1]["loss"]  # the members differ


class NaNGradientObjective(CountingObjective):
    """Finite loss, non-finite gradient at the chosen global steps: sqrt'(0) * 0 = inf * 0 = NaN."""

    def __init__(self, inner, nan_grad_steps):
        super().__init__(inner)
        self.nan_grad_steps = set(nan_grad_steps)

    def __call__(self, model, x, generator):
        out = dict(self.inner(model, x, generator))
        self.calls += 1
        if self.calls in self.nan_grad_steps:
            out["loss"] = out["loss"] + torch.sqrt(model.shift.sum() * 0.0)
        return out


def test_a_non_finite_gradient_skips_that_update_and_is_counted(tmp_path):
    cfg = make_cfg(batch_size=16)  # 5 batches per epoch -> at most max(1, 0.05) = 1 skipped batch per epoch
    model, result = run(tmp_path, cfg=cfg, objective=NaNGradientObjective(objective_for(cfg), {3}))
    assert [h["skipped_steps"] for h in result.history] == [1, 0, 0]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    reference, ref_result = run(tmp_path, name="ref", cfg=cfg)
    assert not params_equal(model, reference)  # the skipped update made a difference ...
    assert [h["skipped_steps"] for h in ref_result.history] == [0, 0, 0]


def test_repeated_non_finite_gradients_stop_the_run(tmp_path):
    cfg = make_cfg(batch_size=16)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 4/5: non-finite gradients in 2 batches of this "
                                               r"epoch \(at most 1 are skipped\)"):
        run(tmp_path, cfg=cfg, objective=NaNGradientObjective(objective_for(cfg), {7, 9}))
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert ckpt["epoch"] == 1, "the last good checkpoint (epoch 1) is kept"


# -- the models' input domain ------------------------------------------------------------------------
def test_unscaled_features_are_refused_naming_them(tmp_path):
    from qinn_lib.training.inputs import TrainingInputError

    g = torch.Generator().manual_seed(0)
    lo, hi = torch.tensor([15.0, 15.0, 0.0, -4.5, -4.5]), torch.tensor([150.0, 150.0, math.pi, 4.5, 4.5])
    physical = lo + (hi - lo) * torch.rand(120, 5, generator=g)  # pT in GeV: what the issue trained on (loss 16160)
    cfg = make_cfg()
    with pytest.raises(TrainingInputError, match=r"train_x is outside the models' input domain \[0, pi\]: pt_lp in "
                                                 r"\[17.*pt_lm in .*eta_lp in \[-4.*AngleScaler.fit\(train\)"):
        train(AffineFlow(), objective_for(cfg), physical[:80], physical[80:], cfg, run_dir=tmp_path,
              data_fingerprint="d", progress=False)
    assert not (tmp_path / CHECKPOINT_NAME).exists()
    train_x, val_x = make_data()
    with pytest.raises(TrainingInputError, match=r"val_x is outside .*widened by 3.14.*pt_lp"):
        train(AffineFlow(), objective_for(cfg), train_x, physical[80:], cfg, run_dir=tmp_path,
              data_fingerprint="d", progress=False)


def test_validation_events_a_little_outside_the_training_range_are_fine(tmp_path):
    train_x, val_x = make_data()
    val_x = val_x.clone()
    val_x[0, 0], val_x[1, 3] = -0.3, math.pi + 0.5  # tails beyond the training split's min/max
    train_x[0, 2] = math.pi + 1e-6  # float rounding of the scaler's maximum
    cfg = make_cfg(epochs=1)
    assert train(AffineFlow(), objective_for(cfg), train_x, val_x, cfg, run_dir=tmp_path,
                 data_fingerprint="d", progress=False).epochs_run == 1
