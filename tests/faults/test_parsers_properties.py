"""Property-based tests (hypothesis) of the input parsers: the LHE reader, the runner's ``-p``
values and the run configurations. Each either accepts its input correctly or raises a one-line
QinnError naming the file, parameter or field -- never another exception."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qinn_lib.errors import QinnError, one_line
from qinn_lib.events.lhe import read_lhe
from qinn_lib.notebook import parameters
from qinn_lib.training import config as cfgmod
from qinn_lib.training.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lhe_sample  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# -- the LHE reader -----------------------------------------------------------------------------------------
_GOOD = lhe_sample.events(40, seed=11)


def _mutate(block: str, how: int, data) -> str:
    lines = block.splitlines(keepends=True)
    if how == 0:  # drop a line
        del lines[data.draw(st.integers(0, len(lines) - 1))]
    elif how == 1:  # replace a token by garbage
        i = data.draw(st.integers(1, len(lines) - 2))
        tokens = lines[i].split()
        if tokens:
            tokens[data.draw(st.integers(0, len(tokens) - 1))] = data.draw(
                st.sampled_from(["nan", "inf", "-1e400", "x", "", "1e5", "-3", "0", "<", "&"]))
        lines[i] = " " + " ".join(tokens) + "\n"
    elif how == 2:  # cut the block short
        text = "".join(lines)
        return text[: data.draw(st.integers(0, len(text)))]
    elif how == 3:  # duplicate a particle line
        i = data.draw(st.integers(2, len(lines) - 2))
        lines.insert(i, lines[i])
    return "".join(lines)


@SETTINGS
@given(data=st.data())
def test_the_lhe_reader_parses_or_names_the_file(tmp_path_factory, data):
    n = data.draw(st.integers(0, 12))
    picks = [data.draw(st.integers(0, len(_GOOD) - 1)) for _ in range(n)]
    blocks, damaged = [], False
    for i in picks:
        if data.draw(st.booleans()):
            blocks.append(_mutate(_GOOD[i], data.draw(st.integers(0, 3)), data))
            damaged = True
        else:
            blocks.append(_GOOD[i])
    head = lhe_sample.HEAD
    if data.draw(st.integers(0, 9)) == 0:
        head = head.replace("<init>", "").replace("</init>", "")  # missing <init>
        damaged = True
    tail = lhe_sample.TAIL if data.draw(st.integers(0, 5)) else ""
    path = tmp_path_factory.mktemp("lhe") / "f.lhe"
    path.write_text(head + "".join(blocks) + tail)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            features, meta = read_lhe(path)
    except QinnError as err:
        assert str(path) in str(err) and "\n" not in one_line(err)
        return
    assert features.ndim == 2 and features.shape[1] == 5 and np.isfinite(features).all()
    assert 1 <= len(features) <= meta["n_read"] and meta["n_passed"] == len(features)
    assert np.isfinite(meta["sigma_fiducial_pb"])
    if not damaged and tail:
        assert meta["n_read"] == n


# -- the runner's -p values -------------------------------------------------------------------------------
_NOTEBOOKS = parameters.discover_notebooks()
_NAMES = sorted({(nb.stem[:2], name) for nb in _NOTEBOOKS for name in parameters.config_class(nb).field_names()})
_TEXT = st.one_of(st.text(max_size=12), st.integers(-10**9, 10**9).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.lists(st.floats(-10, 10), min_size=0, max_size=4).map(lambda v: ",".join(map(str, v))),
                  st.sampled_from(["1e-3", "010", "1:30", "true", "False", "[0.1, 1]", "1_000", "", " 7 "]))


@SETTINGS
@given(target_name=st.sampled_from(_NAMES + [("99", "epochs"), ("03", "epocs"), ("all", "seed")]), value=_TEXT)
def test_p_values_parse_by_type_or_name_the_parameter(target_name, value):
    target, name = target_name
    try:
        parsed = parameters.parse_parameters([[target, name, value]], _NOTEBOOKS)
    except QinnError as err:
        text = one_line(err)
        assert name in text or target in text, text
        return
    for stem, values in parsed.items():
        nb = next(nb for nb in _NOTEBOOKS if nb.stem == stem)
        f = next(f for f in dataclasses.fields(parameters.config_class(nb)) if f.name == name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = bool if isinstance(default, bool) else int if isinstance(default, int) else type(default)
        assert isinstance(values[name], kind if kind is not float else (float,)), (name, values[name])


# -- run configurations -----------------------------------------------------------------------------------
_CONFIGS = [cls for cls in vars(cfgmod).values()
            if isinstance(cls, type) and issubclass(cls, cfgmod.RunConfig) and cls is not cfgmod.RunConfig]
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.floats(allow_nan=True), max_size=3),
                   st.sampled_from(["quick", "paper", "mse", "fidelity", "float32", "cpu", ""]))


@pytest.mark.parametrize("cls", _CONFIGS, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_a_run_configuration_is_valid_or_names_the_field(cls, data):
    fields = [f for f in dataclasses.fields(cls) if f.name != "lhe_file"]  # a path: checked on parsing
    chosen = data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique_by=lambda f: f.name))
    values = {f.name: data.draw(_VALUE) for f in chosen}
    try:
        cfg = cls(**values)
    except ConfigError as err:
        text = one_line(err)
        assert "\n" not in text and any(name in text for name in [*values, "n_events", "batch_size"]), text
        return
    again = cls(**cfg.to_dict()) if all(f.name in cfg.to_dict() for f in dataclasses.fields(cls)) else cfg
    assert again.fingerprint() == cfg.fingerprint()
