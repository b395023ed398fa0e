"""Event generation, cuts, splits, cache, LHE and user files, CLI. Small samples keep this fast."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from qinn_lib.events import cache as cache_lib
from qinn_lib.events import sample
from qinn_lib.events.cache import load_events, load_lhe_events
from qinn_lib.events.cli import main
from qinn_lib.events.feature_files import load_features_file
from qinn_lib.events.lhe import read_lhe
from qinn_lib.events.observables import FEATURES, reconstruct
from qinn_lib.events.pythia import generate_events
from qinn_lib.events.sample import CUTS, SPLIT_FRACTIONS, DataError, EventSample, split_sizes

N, SEED = 2000, 7


@pytest.fixture(scope="module")
def generated():
    return generate_events(N, SEED)


@pytest.fixture
def fake_generator(monkeypatch, generated):
    """Replace Pythia by the module's sample (cache tests test caching, not Pythia) and count calls."""
    calls = []

    def fake(n_events, seed, progress=False):
        calls.append((n_events, seed))
        x, meta = generated
        return x[:n_events].copy(), dict(meta, n_requested=n_events, n_passed=n_events)

    monkeypatch.setattr(cache_lib, "generate_events", fake)
    return calls


# ------------------------------------------------------------------------------------------
# generation
# ------------------------------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_other_seed_differs(generated):
    x, _ = generated
    again, _ = generate_events(N, SEED)
    assert again.dtype == np.float64 and again.shape == (N, 5)
    assert again.tobytes() == x.tobytes()
    other, _ = generate_events(300, SEED + 1)
    assert not np.array_equal(other, x[:300])


def test_cuts_hold_on_every_event(generated):
    x, _ = generated
    obs = reconstruct(x)  # E_Z via the vector package: independent of data.passes_cuts
    for name in ("pt_lp", "pt_lm"):
        assert np.all((obs[name] > CUTS["pt_min"]) & (obs[name] < CUTS["pt_max"])), name
    for name in ("eta_lp", "eta_lm"):
        assert np.all(np.abs(obs[name]) < CUTS["abs_eta_max"]), name
    assert np.all(obs["e_z"] < CUTS["e_z_max"])
    assert np.all((x[:, 2] >= 0) & (x[:, 2] < 2 * math.pi))
    # the cuts are not vacuous: pT spans most of its window
    assert x[:, :2].min() < 20 and x[:, :2].max() > 120


def test_physics_sanity(generated):
    x, meta = generated
    m = reconstruct(x)["m_ll"]
    # pure Z: the dilepton mass peaks at M_Z (a wrong l+/l- assignment or units would not)
    assert 89.0 < np.median(m) < 93.0
    assert np.mean(np.abs(m - 91.19) < 5.0) > 0.8
    assert meta["n_ee"] + meta["n_mumu"] == N and min(meta["n_ee"], meta["n_mumu"]) > 0.4 * N


def test_meta_record(generated):
    _, meta = generated
    assert meta["generator"] == "Pythia 8" and meta["version"].startswith("8.3")
    assert meta["seed"] == SEED and f"Random:seed = {SEED}" in meta["settings"]
    assert meta["n_passed"] == N and meta["n_generated"] > N
    assert meta["cut_efficiency"] == pytest.approx(N / meta["n_generated"])
    assert 0 < meta["sigma_err_pb"] < meta["sigma_pb"]
    assert meta["sigma_fiducial_pb"] == pytest.approx(meta["sigma_pb"] * meta["cut_efficiency"])
    assert meta["seconds"] > 0
    json.dumps(meta)


def test_pythia_is_silent(capfd):
    generate_events(50, 11)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_events"):
        generate_events(0, 1)
    with pytest.raises(ValueError, match="clock"):
        generate_events(10, 0)
    with pytest.raises(ValueError, match="seed"):
        load_events(10, 900_000_001)


# ------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------
def test_split_sizes_and_order(generated):
    x, meta = generated
    s = EventSample.from_array(x, meta)
    assert (len(s.train), len(s.val), len(s.test)) == (750, 250, 1000)
    assert SPLIT_FRACTIONS == (0.375, 0.125, 0.5)
    np.testing.assert_array_equal(s.all(), x)
    np.testing.assert_array_equal(s.train, x[:750])
    np.testing.assert_array_equal(s.split("val"), x[750:1000])
    assert s.split("test") is s.test
    with pytest.raises(KeyError, match="validation"):
        s.split("validation")
    assert len(s.fingerprint) == 16
    assert s.fingerprint == sample.fingerprint(x)
    assert EventSample.from_array(x[::-1]).fingerprint != s.fingerprint
    for n in (1, 7, 1001, 99_999):
        sizes = split_sizes(n)
        assert sum(sizes) == n and min(sizes) >= 0
    assert split_sizes(100_000) == (37_500, 12_500, 50_000)


# ------------------------------------------------------------------------------------------
# cache
# ------------------------------------------------------------------------------------------
def test_cache_round_trip(tmp_path, fake_generator):
    cache = tmp_path / "new" / "dir"  # missing folders are created
    s1 = load_events(1500, 5, cache_dir=cache)
    npz, js = cache_lib.cache_paths(1500, 5, cache)
    assert npz.name == "zjets_pythia_n1500_seed5.npz" and npz.is_file() and js.is_file()
    assert not list(cache.glob("*.tmp"))
    s2 = load_events(1500, 5, cache_dir=cache)
    assert fake_generator == [(1500, 5)]  # second call read the cache
    assert s2.meta["loaded_from_cache"] and not s1.meta["loaded_from_cache"]
    assert s2.fingerprint == s1.fingerprint
    np.testing.assert_array_equal(s2.all(), s1.all())
    assert json.loads(js.read_text())["fingerprint"] == s1.fingerprint


def test_cache_uses_qinn_data_dir(tmp_path, monkeypatch, fake_generator):
    monkeypatch.setenv("QINN_DATA_DIR", str(tmp_path / "env"))
    load_events(200, 3)
    assert (tmp_path / "env" / "zjets_pythia_n200_seed3.npz").is_file()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape", "edited", "no_json"])
def test_corrupted_cache_raises_and_regenerate_repairs(tmp_path, fake_generator, damage):
    load_events(400, 9, cache_dir=tmp_path)
    npz, js = cache_lib.cache_paths(400, 9, tmp_path)
    if damage == "garbage":
        npz.write_bytes(b"this is not a zip file" * 10)
    elif damage == "truncated":
        npz.write_bytes(npz.read_bytes()[:1000])
    elif damage == "wrong_shape":
        with open(npz, "wb") as fh:
            np.savez(fh, features=np.zeros((10, 5)))
    elif damage == "edited":
        x = np.load(npz)["features"]
        x[17, 3] += 1e-9
        with open(npz, "wb") as fh:
            np.savez(fh, features=x)
    elif damage == "no_json":
        js.unlink()
    with pytest.raises(DataError) as err:
        load_events(400, 9, cache_dir=tmp_path)
    msg = str(err.value)
    assert npz.name in msg and "regenerate=True" in msg
    s = load_events(400, 9, cache_dir=tmp_path, regenerate=True)
    assert load_events(400, 9, cache_dir=tmp_path).fingerprint == s.fingerprint


def test_uncreatable_cache_dir(tmp_path, fake_generator):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="a_file"):
        load_events(100, 1, cache_dir=blocker / "sub")


# ------------------------------------------------------------------------------------------
# LHE files
# ------------------------------------------------------------------------------------------
from lhe_sample import HEAD as LHE_HEAD  # noqa: E402  (tests/ is on sys.path under pytest)
from lhe_sample import TAIL as LHE_TAIL  # noqa: E402


def _particle(pid, status, px, py, pz):
    e = math.sqrt(px * px + py * py + pz * pz)
    return f" {pid} {status} 1 2 0 0 {px!r} {py!r} {pz!r} {e!r} 0.0 0. 9.\n"


def _event(particles, weight=1.0):
    beams = [_particle(21, -1, 0.0, 0.0, 500.0), _particle(2, -1, 0.0, 0.0, -500.0)]
    lines = beams + [_particle(*p) for p in particles]
    return f"<event>\n {len(lines)} 1 {weight} 91.0 7.5e-03 1.2e-01\n" + "".join(lines) + "</event>\n"


EE = [(-11, 1, 30.0, 40.0, 10.0), (11, 1, -20.0, 0.0, -30.0), (2, 1, -10.0, -40.0, 20.0)]
MUMU = [(-13, 1, 0.0, 25.0, 5.0), (13, 1, 30.0, -10.0, 100.0), (21, 1, -30.0, -15.0, 0.0)]
NO_LEPTONS = [(2, 1, 30.0, 0.0, 10.0), (-2, 1, -30.0, 0.0, 10.0)]
SOFT = [(-11, 1, 10.0, 0.0, 10.0), (11, 1, -10.0, 0.0, 10.0), (21, 1, 0.0, 0.0, 0.0001)]
MIXED = [(-11, 1, 30.0, 0.0, 10.0), (13, 1, -30.0, 0.0, 10.0)]
DECAYED = [(23, 2, 10.0, 0.0, 10.0), (-11, 2, 30.0, 0.0, 1.0), (11, 2, -30.0, 0.0, 1.0)]


def _write(tmp_path, name, events, tail=LHE_TAIL):
    path = tmp_path / name
    path.write_text(LHE_HEAD + "".join(_event(e) for e in events) + tail)
    return path


def test_read_lhe_hand_made_events(tmp_path):
    path = _write(tmp_path, "sample.lhe", [EE, NO_LEPTONS, MUMU, SOFT, MIXED])
    with pytest.warns(UserWarning, match="2 of 5 events"):
        x, meta = read_lhe(path)
    expect = np.array([
        [50.0, 20.0, math.pi - math.atan2(40, 30), math.asinh(10 / 50), math.asinh(-30 / 20)],
        [25.0, math.hypot(30, 10), 2 * math.pi + math.atan2(-10, 30) - math.pi / 2,
         math.asinh(5 / 25), math.asinh(100 / math.hypot(30, 10))],
    ])
    np.testing.assert_allclose(x, expect, rtol=1e-12, atol=1e-12)
    assert (meta["n_read"], meta["n_no_lepton_pair"], meta["n_failed_cuts"], meta["n_passed"]) == (5, 2, 1, 2)
    assert (meta["n_ee"], meta["n_mumu"]) == (1, 1)
    assert meta["sigma_pb"] == 750.0 and meta["cut_efficiency"] == pytest.approx(2 / 5)
    assert meta["weights_uniform"]


def test_lhe_status_2_leptons_are_ignored_and_no_pair_is_an_error(tmp_path):
    path = _write(tmp_path, "nopair.lhe", [NO_LEPTONS, DECAYED, MIXED])
    with pytest.raises(DataError, match=r"nopair\.lhe.*none of its 3 events"):
        read_lhe(path)


def test_lhe_truncated_file(tmp_path):
    full = _write(tmp_path, "full.lhe", [EE] * 5).read_text()
    cut = tmp_path / "truncated.lhe"
    cut.write_text(full[: len(full) - 200])  # ends inside the last event
    with pytest.raises(DataError, match=r"truncated\.lhe.*(malformed|truncated)"):
        read_lhe(cut)


@pytest.mark.parametrize("content, pattern", [
    (LHE_HEAD + LHE_TAIL, "no <event>"),
    ("definitely not xml", "malformed"),
    (LHE_HEAD + "<event>\n 3 1 1.0 91 0.0075 0.12\n 11 1 0 0\n</event>\n" + LHE_TAIL, "malformed"),
    ("", "malformed"),
])
def test_lhe_malformed_files(tmp_path, content, pattern):
    path = tmp_path / "bad.lhe"
    path.write_text(content)
    with pytest.raises(DataError, match=pattern) as err:
        read_lhe(path)
    assert "bad.lhe" in str(err.value)


def test_lhe_missing_file(tmp_path):
    with pytest.raises(DataError, match="missing.lhe"):
        read_lhe(tmp_path / "missing.lhe")


def test_load_lhe_events_splits(tmp_path):
    path = _write(tmp_path, "many.lhe", [EE] * 8)
    s = load_lhe_events(path)
    assert (len(s.train), len(s.val), len(s.test)) == (3, 1, 4)
    assert s.meta["generator"] == "LHE file"


# ------------------------------------------------------------------------------------------
# users' own feature files
# ------------------------------------------------------------------------------------------
def test_load_features_file_formats(tmp_path, generated):
    x = generated[0][:50]
    np.save(tmp_path / "f.npy", x)
    np.testing.assert_array_equal(load_features_file(tmp_path / "f.npy"), x)
    np.savez(tmp_path / "f.npz", features=x, other=np.zeros(3))
    np.testing.assert_array_equal(load_features_file(tmp_path / "f.npz"), x)
    np.savetxt(tmp_path / "f.csv", x, delimiter=",", header=",".join(FEATURES), comments="")
    np.testing.assert_allclose(load_features_file(tmp_path / "f.csv"), x, rtol=1e-15)


def test_load_features_file_errors(tmp_path):
    np.save(tmp_path / "narrow.npy", np.zeros((7, 4)))
    with pytest.raises(DataError, match=r"narrow\.npy.*\(7, 4\)"):
        load_features_file(tmp_path / "narrow.npy")
    bad = np.ones((6, 5))
    bad[4, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"nan\.npy.*1 rows.*\(6, 5\).*dphi_ll"):
        load_features_file(tmp_path / "nan.npy")
    np.savez(tmp_path / "two.npz", a=bad, b=bad)
    with pytest.raises(DataError, match="'features'"):
        load_features_file(tmp_path / "two.npz")
    (tmp_path / "hdr.csv").write_text("pt_lm,pt_lp,dphi_ll,eta_lp,eta_lm\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"hdr\.csv.*header"):
        load_features_file(tmp_path / "hdr.csv")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.npy"):
        load_features_file(tmp_path / "junk.npy")
    with pytest.raises(DataError, match="does not exist"):
        load_features_file(tmp_path / "nope.npy")


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------
def test_cli_generates_then_loads(tmp_path, capsys):
    argv = ["--n-events", "1000", "--seed", "3", "--cache-dir", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1000 (train 375, val 125, test 500)" in out
    assert "efficiency" in out and "pb" in out and "zjets_pythia_n1000_seed3.npz" in out
    assert main(argv) == 0
    assert "loaded from cache" in capsys.readouterr().out


def test_cli_lhe(tmp_path, capsys):
    path = _write(tmp_path, "cli.lhe", [EE, MUMU])
    assert main(["--lhe", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 (train 0, val 0, test 2)" in out and "LHE file" in out


@pytest.mark.parametrize("argv, pattern", [
    (["--n-events", "-5"], "positive integer"),
    (["--n-events", "many"], "positive integer"),
    (["--seed", "0"], "seed must be in"),
    (["--lhe", "x.lhe", "--seed", "3"], "--seed"),
])
def test_cli_bad_arguments(argv, pattern, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert pattern in capsys.readouterr().err


def test_cli_data_error_is_a_clean_exit(tmp_path, capsys):
    assert main(["--lhe", str(tmp_path / "absent.lhe")]) == 2  # a user error: exit 2, one line
    err = capsys.readouterr().err
    assert err == f"python -m qinn_lib.events: error: LHE file {tmp_path / 'absent.lhe'} does not exist\n"
    assert main(["--lhe", str(tmp_path)]) == 2
    assert f"LHE file {tmp_path} is a folder" in capsys.readouterr().err


def test_lhe_event_missing_a_lepton_is_skipped_with_a_warning(tmp_path):
    one_lepton = [(-11, 1, 30.0, 40.0, 10.0), (2, 1, -10.0, -40.0, 20.0)]  # the l- is missing
    path = _write(tmp_path, "missing.lhe", [EE, one_lepton, MUMU])
    with pytest.warns(UserWarning, match=r"missing\.lhe: 1 of 3 events have no final-state l\+ l- pair"):
        x, meta = read_lhe(path)
    assert len(x) == 2 and meta["n_no_lepton_pair"] == 1


def test_cli_truncated_cache_is_one_line(tmp_path, capsys):
    from qinn_lib.events.cache import cache_paths

    features = np.tile(np.array([[40.0, 30.0, 2.0, 0.5, -0.5]]), (200, 1))
    npz, js = cache_paths(200, 5, tmp_path)
    cache_lib._write_cache(npz, js, features, {"generator": "test"}, EventSample.from_array(features).fingerprint)
    npz.write_bytes(npz.read_bytes()[:300])
    assert main(["--n-events", "200", "--seed", "5", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"event cache {npz} is corrupted or truncated" in err and "--regenerate" in err


def test_unwritable_cache_is_found_before_generating(tmp_path, monkeypatch):
    def must_not_run(*a, **k):
        raise AssertionError("events were generated before the cache folder was checked")

    monkeypatch.setattr(cache_lib, "generate_events", must_not_run)
    (tmp_path / "cache").write_text("a file")
    with pytest.raises(DataError, match=r"cannot write in the event cache folder .*cache/sub: Not a directory; pass cache_dir"):
        load_events(200, 5, cache_dir=tmp_path / "cache" / "sub")


def test_cli_module_entry_point_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "qinn_lib.events", "--n-events", "zero"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "positive integer" in proc.stderr and "Traceback" not in proc.stderr
