"""Run configurations validate themselves; the quick/paper helper caps counts only in quick."""

import pytest

from qinn_lib.training.budget import QUICK_CAPS, QUICK_GRID_POINTS, budget, grid, quick_value
from qinn_lib.training.config import ConfigError, QINNRunConfig


def test_defaults_are_table_1():
    cfg = QINNRunConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.max_lr) == (200, 128, 1e-3)
    assert (cfg.start_factor, cfg.final_factor, cfg.beta1, cfg.beta2) == (4e-2, 1e-4, 0.9, 0.9)
    assert (cfg.n_layers, cfg.isp_layers, cfg.isp_nn_layers, cfg.isp_hidden) == (12, 8, 3, 32)
    assert (cfg.lambda_mmd_input, cfg.lambda_mmd_latent, cfg.lambda_mz, cfg.lambda_inv) == (1.0, 0.5, 0.375, 10.0)
    assert cfg.mmd_widths == (0.02, 0.1, 0.4, 1.0, 5.0)


@pytest.mark.parametrize("name,value,match", [
    ("n_layers", 0, "n_layers must be >= 1"),
    ("isp_hidden", -3, "isp_hidden must be >= 1"),
    ("invertibility", "fid", "invertibility must be one of"),
    ("max_lr", float("nan"), "max_lr must be finite"),
    ("epochs", 2.5, "epochs must be an integer"),
    ("mmd_widths", [], "mmd_widths must be a non-empty list"),
    ("mmd_widths", [0.1, -1.0], "mmd_widths must be >= "),
])
def test_bad_values_name_the_field(name, value, match):
    with pytest.raises(ConfigError, match=f"QINNRunConfig.{match}"):
        QINNRunConfig(**{name: value})


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="'n_layer' \\(did you mean 'n_layers'\\?\\)"):
        QINNRunConfig.from_dict({"n_layer": 3})


def test_cross_field_check():
    with pytest.raises(ConfigError, match="final_factor"):
        QINNRunConfig(start_factor=1e-3, final_factor=1e-2)


def test_dict_round_trip_and_fingerprint():
    cfg = QINNRunConfig(epochs=3, mmd_widths=[0.5, 1])
    again = QINNRunConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.fingerprint() == cfg.fingerprint()
    assert cfg.replace(epochs=4).fingerprint() != cfg.fingerprint()


def test_budget():
    assert budget("paper", "epochs", 200) == 200
    assert budget("quick", "epochs", 200) == QUICK_CAPS["epochs"]
    assert budget("quick", "epochs", 1) == 1
    with pytest.raises(ValueError, match="profile"):
        budget("full", "epochs", 10)
    with pytest.raises(KeyError, match="no quick-profile cap"):
        budget("quick", "layers", 10)


def test_grid_keeps_both_ends_and_spreads_the_rest():
    levels = [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert grid("paper", "noise_levels", levels) == levels
    assert grid("quick", "noise_levels", levels) == [1e-6, 1e-5, 1e-3, 1e-1]
    assert grid("quick", "shots", [1e2, 1e3, 1e4, 1e5, 1e6]) == [1e2, 1e4, 1e6]
    for n in range(1, 30):  # distinct, in order, first and last kept, never more than the cap
        out = grid("quick", "noise_levels", list(range(n)))
        assert out == sorted(set(out)) and out[0] == 0 and out[-1] == n - 1
        assert len(out) == min(n, QUICK_GRID_POINTS["noise_levels"])
    assert quick_value("noise_levels", levels) == [1e-6, 1e-5, 1e-3, 1e-1]
    assert quick_value("n_eval_seeds", 3) == 2 and quick_value("seed", 1234) is None
    with pytest.raises(KeyError, match="no quick-profile grid"):
        grid("quick", "depths", [1, 2])
    with pytest.raises(ValueError, match="noise_levels must have at least one point"):
        grid("quick", "noise_levels", [])
    with pytest.raises(ValueError, match="profile"):
        grid("full", "shots", [1, 2])


# -- -p NAME VALUE: strict parsing by the field's type (not YAML) -------------------------------------
@pytest.mark.parametrize("name,text,value", [
    ("max_lr", "1e-3", 1e-3),          # YAML: the string '1e-3', then "not a number"
    ("epochs", "010", 10),             # YAML 1.1: octal 8
    ("epochs", "1e3", 1000),           # an integer written as a float literal
    ("n_events", "100_000", 100_000),
    ("lambda_mz", "2", 2.0),
    ("invertibility", "fidelity", "fidelity"),
    ("mmd_widths", "0.1,0.4", (0.1, 0.4)),
    ("mmd_widths", "[0.1, 0.4, 1]", (0.1, 0.4, 1.0)),
])
def test_parse_text_by_field_type(name, text, value):
    parsed = QINNRunConfig.parse_text(name, text)
    assert parsed == value and type(parsed) is type(value)
    assert getattr(QINNRunConfig(**{name: parsed}), name) == value


@pytest.mark.parametrize("name,text,match", [
    ("epochs", "1:30", r"QINNRunConfig.epochs must be an integer, got '1:30'"),  # YAML: sexagesimal 90
    ("epochs", "2.5", "epochs must be an integer"),
    ("epochs", "ten", "epochs must be an integer"),
    ("max_lr", "fast", r"max_lr must be a number, got 'fast'"),
    ("mmd_widths", "0.1;0.4", "mmd_widths must be comma-separated numbers"),
    ("epoch", "3", r"'epoch' \(did you mean 'epochs'\?\)"),
])
def test_parse_text_errors_name_the_parameter(name, text, match):
    with pytest.raises(ConfigError, match=match):
        QINNRunConfig.parse_text(name, text, where="03_isp_training.ipynb")


def test_path_parameter_is_resolved_against_the_current_directory(tmp_path, monkeypatch):
    from qinn_lib.training.config import DataConfig

    (tmp_path / "mine.lhe").write_text("<LesHouchesEvents/>")
    monkeypatch.chdir(tmp_path)
    assert DataConfig.parse_text("lhe_file", "mine.lhe") == str(tmp_path / "mine.lhe")
    with pytest.raises(ConfigError, match=rf"DataConfig.lhe_file: file {tmp_path / 'absent.lhe'} does not exist"):
        DataConfig.parse_text("lhe_file", "absent.lhe")
    assert DataConfig.parse_text("lhe_file", "") == ""


def test_lhe_file_is_resolved_alike_for_every_notebook(tmp_path, monkeypatch):
    """``-p all lhe_file events.lhe`` must name the same file in every notebook: the kernels run in
    notebooks/, so a name left relative in one config would point elsewhere there."""
    from qinn_lib.notebook.parameters import NOTEBOOK_CONFIGS

    (tmp_path / "mine.lhe").write_text("<LesHouchesEvents/>")
    monkeypatch.chdir(tmp_path)
    for cls in {*NOTEBOOK_CONFIGS.values(), QINNRunConfig}:
        assert cls.parse_text("lhe_file", "mine.lhe") == str(tmp_path / "mine.lhe"), cls.__name__


def test_batch_larger_than_the_training_split_is_refused_before_any_data():
    with pytest.raises(ConfigError, match=r"batch_size \(128\) exceeds the 75 training events of n_events=200"):
        QINNRunConfig(n_events=200)
    from qinn_lib.training.config import INNRunConfig

    with pytest.raises(ConfigError, match="INNRunConfig.batch_size"):
        INNRunConfig(n_events=1000, batch_size=512)
    QINNRunConfig(n_events=1000, batch_size=375)  # exactly one batch is fine
    # notebook configs without a batch size: refused by their own name, not later by a run's
    from qinn_lib.notebook.parameters import NOTEBOOK_CONFIGS

    for cls in NOTEBOOK_CONFIGS.values():
        if cls.kind not in ("data", "circuit_demo"):  # they train no runs
            with pytest.raises(ConfigError, match=rf"{cls.__name__}\.(n_events is too small|batch_size)"):
                cls(n_events=300)
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        QINNRunConfig.from_dict(QINNRunConfig.from_text({"batch_size": "0"}))
