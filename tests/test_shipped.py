"""Shipped trained models: refresh writes files and a sha256 manifest, a matching run loads them
instead of training, an altered file or other events are clear errors, the same seed retrains to
the same weights, and the files are package data."""

import fnmatch
import json
import tomllib

import pytest
import torch

from qinn_lib import paths
from qinn_lib.experiments import one_model, publish, store
from qinn_lib.training.config import INNRunConfig, QINNRunConfig


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QINN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("QINN_SHIPPED_DIR", str(tmp_path / "shipped"))
    return tmp_path


def tiny_qinn(seed=5):
    return QINNRunConfig(profile="quick", n_events=1_000, epochs=1, n_layers=2, isp_layers=2, batch_size=64, seed=seed)


def tiny_inns():
    return [INNRunConfig(profile="quick", n_events=1_000, epochs=1, size="2k", batch_size=64, seed=s) for s in (3, 4)]


@pytest.fixture
def shipped_tiny(isolated):
    """A shipped set of one tiny QINN, trained from scratch by refresh."""
    written = publish.refresh({"tiny-qinn": [tiny_qinn()]}, progress=False, log=lambda *a: None)
    return isolated, written


def test_refresh_writes_files_and_manifest(shipped_tiny):
    tmp, written = shipped_tiny
    folder = tmp / "shipped"
    assert len(written) == 1 and (folder / written[0]).is_file()
    manifest = json.loads((folder / store.MANIFEST_NAME).read_text())
    entry = manifest["models"][written[0]]
    cfg = tiny_qinn()
    assert entry["key"] == f"qinn-{cfg.fingerprint()}" and entry["set"] == "tiny-qinn" and entry["epochs"] == 1
    assert entry["config"] == cfg.to_dict() and len(entry["sha256"]) == 64
    assert store.verify() == []
    ckpt = torch.load(folder / written[0], weights_only=True)
    assert ckpt["optimizer"] == {} and ckpt["shipped"] is True, "a shipped file carries no optimiser state"
    assert not (tmp / "runs").exists() or not any((tmp / "runs").iterdir()), "refresh trains in a temporary folder"


def test_a_matching_run_loads_the_shipped_model_instead_of_training(shipped_tiny):
    tmp, written = shipped_tiny
    loaded = one_model.train_qinn(tiny_qinn(), progress=False)
    assert loaded.shipped and loaded.result.epochs_run == 0
    assert loaded.result.checkpoint == tmp / "shipped" / written[0]
    assert not (tmp / "runs").exists() or not any((tmp / "runs").iterdir()), "nothing trained, nothing written"
    assert one_model.availability(tiny_qinn()) == "shipped"
    assert one_model.availability(tiny_qinn(seed=6)) is None, "another seed is another run"
    gen = loaded.generate(200, seed=1)
    assert gen.shape[1] == 5


def test_models_train_ignores_shipped_models(shipped_tiny, monkeypatch):
    monkeypatch.setenv("QINN_MODELS", "train")
    trained = one_model.train_qinn(tiny_qinn(), progress=False)
    assert not trained.shipped and trained.result.epochs_run == 1
    assert one_model.availability(tiny_qinn(), "train") == "trained"


def test_altered_shipped_file_is_a_clear_error(shipped_tiny):
    tmp, written = shipped_tiny
    path = tmp / "shipped" / written[0]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(store.ShippedModelError, match=rf"{written[0]} does not match its sha256"):
        one_model.train_qinn(tiny_qinn(), progress=False)
    assert [p for p in store.verify() if "sha256 differs" in p]
    assert publish.main(["verify"]) == 1


def test_shipped_model_for_other_events_is_a_clear_error(shipped_tiny):
    tmp, written = shipped_tiny
    manifest_path = tmp / "shipped" / store.MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["models"][written[0]]["data_fingerprint"] = "0123456789abcdef"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(store.ShippedModelError, match=r"trained on events with fingerprint 0123456789abcdef.*QINN_MODELS=train"):
        one_model.train_qinn(tiny_qinn(), progress=False)


def test_missing_shipped_file_is_a_clear_error(shipped_tiny):
    tmp, written = shipped_tiny
    (tmp / "shipped" / written[0]).unlink()
    with pytest.raises(store.ShippedModelError, match="listed in manifest.json but missing"):
        one_model.train_qinn(tiny_qinn(), progress=False)


def test_same_seed_retrains_to_the_same_weights(isolated):
    sets = {"tiny-qinn": [tiny_qinn()], "tiny-inn": tiny_inns()}  # the INN seeds train in lockstep, as in notebook 05
    publish.refresh(sets, progress=False, log=lambda *a: None)
    rows = publish.compare(sets, progress=False, log=lambda *a: None)
    assert [(r["set"], r["seed"]) for r in rows] == [("tiny-qinn", 5), ("tiny-inn", 3), ("tiny-inn", 4)]
    assert all(r["identical"] and r["max_abs_diff"] == 0.0 and not r["note"] for r in rows), rows


def test_refresh_of_one_set_keeps_the_others(isolated):
    publish.refresh({"a": [tiny_qinn(5)], "b": [tiny_qinn(6)]}, progress=False, log=lambda *a: None)
    publish.refresh({"a": [tiny_qinn(7)]}, progress=False, log=lambda *a: None)
    models = store.read_manifest()["models"]
    assert sorted((e["set"], e["seed"]) for e in models.values()) == [("a", 7), ("b", 6)]
    assert store.verify() == [], "the replaced file is gone, no unlisted file is left"


def test_default_sets_are_the_notebooks_paper_runs():
    sets = publish.default_sets()
    assert sorted(s for s in sets if not s.startswith("06-")) == ["inn-16k", "inn-2k", "inn-6k", "qinn-fidelity", "qinn-mse"]
    # notebook 06's ensembles (its baseline is qinn-mse), each under its own set name
    assert {"06-mse-sum", "06-nll-only", "06-lambda-mz-x-10", "06-24-layers", "06-1-upload", "06-2-uploads"} <= set(sets)
    assert len({c.fingerprint() for cfgs in sets.values() for c in cfgs}) == sum(len(c) for c in sets.values())
    assert all(all(c.profile == "paper" and c.epochs == 200 for c in cfgs) for cfgs in sets.values())
    # 6 seeds for notebooks 04/05's ensembles, 3 for notebook 06's (its baseline: the first 3 MSE runs)
    assert {name: len(cfgs) for name, cfgs in sets.items() if not name.startswith("06-")} == dict.fromkeys(
        ["qinn-mse", "qinn-fidelity", "inn-2k", "inn-6k", "inn-16k"], 6)
    assert all(len(cfgs) == 6 for name, cfgs in sets.items() if name.startswith("06-"))
    # notebook 03's run (the parameters cell = QINNRunConfig's defaults) is the first MSE seed
    assert sets["qinn-mse"][0].fingerprint() == QINNRunConfig().fingerprint()
    assert {c.invertibility for c in sets["qinn-fidelity"]} == {"fidelity"}


def test_shipped_files_are_package_data():
    config = tomllib.loads((paths.repo_root() / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["qinn_lib"]
    folder = paths.repo_root() / "qinn_lib" / "shipped_models"
    files = [p.relative_to(folder.parent).as_posix() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    assert "shipped_models/manifest.json" in files
    files += [f"shipped_models/search/{p.name}" for p in (folder / "search").glob("*")]
    for f in files + ["shipped_models/qinn-0123-4567.pt", "shipped_models/search/qinn2k-paper-0123-s1.journal"]:
        assert any(fnmatch.fnmatch(f, pat) for pat in patterns), f"{f} would not be installed"
    assert store.verify(folder) == [], "the committed shipped set matches its manifest"


def test_the_store_finds_the_package_data_by_default(monkeypatch):
    """Regression: after the store moved into qinn_lib/experiments/, it looked for shipped_models/
    beside itself and found nothing (`shipped verify`: "0 shipped model(s) ... all match")."""
    monkeypatch.delenv(store.SHIPPED_DIR_ENV, raising=False)
    assert store.shipped_dir() == paths.repo_root() / "qinn_lib" / "shipped_models"
    entries = store.read_manifest()["models"]
    assert len(entries) >= 15 + 33, "notebooks 03-05's 15 runs and notebook 06's 33 ship"
    assert store.find(QINNRunConfig()) is not None, "notebook 03's run (Table 1 defaults) is shipped"
    assert store.verify() == []


def test_cli_list_and_unknown_set(shipped_tiny, capsys):
    assert publish.main(["list"]) == 0
    assert "tiny-qinn" in capsys.readouterr().out
    # issue 24 case 11: a user error of this command is one line and exit 2, like every other command's
    assert publish.main(["refresh", "--only", "inn-32k"]) == 2
    err = capsys.readouterr().err
    assert "unknown set" in err and len(err.strip().splitlines()) == 1
