"""``figures/results.json``: what the notebooks and the benchmark measured, one section each, from
which :func:`qinn_lib.notebook.readme.render_results` writes the README's results table.

The file is a JSON object ``{"schema_version": 1, "<section>": {...}, ...}``. Several processes
may update it at once (a report run and ``python -m qinn_lib.bench --record``), so every
read-modify-write holds a file lock (``filelock``) on ``.results.json.lock`` beside it; without it
one writer's section would silently vanish.

Every section the README shows has a schema (:data:`SECTION_SCHEMAS`: key -> type). A section is
checked when it is recorded (so a notebook that records a wrong type fails at once, naming the
key) and when the file is read for the README (so a section written by an older notebook, a
hand-edited value or a file that is a list or ``null`` gives one clear error naming the section and
the key, not a ``KeyError`` halfway through rendering). A file without ``schema_version`` predates
the version field; its layout is that of version 1 and it is read as such.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qinn_lib import paths
from qinn_lib.atomic import atomic_write_text, check_writable
from qinn_lib.errors import QinnError

RESULTS_FILE = "results.json"
#: Layout version of the results file; bump on an incompatible change (and say how to migrate).
RESULTS_SCHEMA_VERSION = 1
#: Seconds a writer waits for another writer's lock before giving up with a clear error.
LOCK_TIMEOUT = 120.0

_NUMBER = "number"
#: Keys every verdict stored in a section carries (a decided statement of
#: :func:`qinn_lib.evaluation.statistics.decide`: its test, p raw and Holm-adjusted, effect and
#: interval, verdict and sentence); checked when a section is recorded and when it is read.
VERDICT_KEYS = ("metric", "a_label", "b_label", "n_a", "n_b", "transform", "test", "statistic", "p", "p_holm",
                "robust_test", "p_robust", "effect_kind", "effect", "effect_ci", "family", "family_size", "found",
                "verdict", "word", "text")
#: Key -> type of every section the README renders ("number": int or float; "int"; "str"; "list";
#: "dict"; "verdicts": a list of decided statements, each carrying :data:`VERDICT_KEYS`; a nested
#: dict: a mapping whose every value has those keys). A key ending in "?" may be absent: sections
#: written before the verdicts existed still read (layout version 1 is unchanged; the verdicts are
#: optional keys), and the README then shows their older text. tests/test_results.py renders a
#: section built from its schema alone, so a key used by render_results but missing here fails that test.
SECTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "01_data_exploration": {
        "seed": "int", "fingerprint?": "str", "n_events": "int", "n_train": "int", "n_val": "int",
        "n_test": "int", "n_generated": "int", "cut_efficiency": _NUMBER, "sigma_pb": _NUMBER,
        "sigma_err_pb": _NUMBER, "sigma_fiducial_pb": _NUMBER, "fit_mass": _NUMBER, "fit_mass_err": _NUMBER,
        "pdg_mass": _NUMBER, "fit_width": _NUMBER, "fit_width_err": _NUMBER, "pdg_width": _NUMBER,
        "generation_seconds": _NUMBER,
    },
    "03_isp_training": {
        "seed": "int", "data_fingerprint?": "str", "params_quantum": "int", "params_classical": "int",
        "params_total": "int", "epochs": "int", "steps_per_epoch": "int", "train_seconds": _NUMBER,
        "device": "str", "threads": "int", "val_loss": _NUMBER, "val_nll": _NUMBER, "test_nll": _NUMBER,
        "test_nll_sem": _NUMBER, "n_test": "int", "recon_mean": _NUMBER, "recon_median": _NUMBER,
        "test_nll_normalised?": _NUMBER, "test_nll_normalised_err?": _NUMBER, "log_z?": _NUMBER, "log_z_err?": _NUMBER,
        "fpd?": _NUMBER, "fpd_err?": _NUMBER, "kpd?": _NUMBER, "kpd_err?": _NUMBER, "auc_bdt?": _NUMBER,
        "auc_bdt_err?": _NUMBER, "auc_bdt_derived?": _NUMBER, "auc_bdt_derived_err?": _NUMBER,
    },
    "04_fidelity_vs_mse": {"seeds": "list", "table": "str", "verdict": "str", "verdicts?": "verdicts"},
    "05_qinn_vs_inn": {"seeds": "list", "table": "str", "conclusion": "str", "claims?": "str", "verdicts?": "verdicts"},
    "06_why_the_gap": {"seeds": "list", "epochs": "int", "claims": "str", "search_answer": "str", "closing": "str",
                       "verdicts?": "verdicts", "screen_verdicts?": "verdicts"},
    "07_hardware_realism": {"seeds": "list", "statement": "str", "shots_table": "str", "noise_table": "str",
                            "resources_table": "str", "cost_table": "str", "field_statement?": "str",
                            "field_shots_table?": "str", "field_noise_table?": "str"},
    "07_hardware_device": {"backends": "list", "shots": "int", "n_generate": "int", "n_test": "int",
                           "statement": "str", "results_table": "str", "resources_table": "str",
                           "field_table?": "str", "field_statement?": "str"},
    "bench": {
        "batch_size": "int", "threads": "int", "machine": "str", "fast_ms": _NUMBER, "fast_ms_min": _NUMBER,
        "paper_fast_minutes": _NUMBER, "reference_ms": _NUMBER, "paper_reference_hours": _NUMBER,
        "speedup": _NUMBER, "wall_seconds?": _NUMBER, "wall_load_average?": "str", "wall_options?": "str",
    },
    "bench_projection": {"jobs": "int", "runs": "int", "core_hours": _NUMBER, "wall_minutes": _NUMBER,
                         "n_workers": "int"},
    "bench_floor": {"batch_size": "int", "step_ms": _NUMBER, "floor_ms": _NUMBER, "step_vs_floor": _NUMBER},
    "bench_lockstep": {
        "ks": "list", "batch_size": "int",
        "rows": {"mode": "str", "k": "int", "ms_min": _NUMBER, "per_model_ms_min": _NUMBER,
                 "per_model_cpu_ms": _NUMBER, "per_model_vs_k1": _NUMBER, "per_model_cpu_vs_k1": _NUMBER},
    },
    "bench_scaling": {
        "qubits": "list", "batch_size": "int", "n_layers": "int", "threads": "int",
        "rows": {"n_qubits": "int", "preferred": "str", "gate step cpu_ms": _NUMBER, "gate fwd+J cpu_ms": _NUMBER},
    },
    "bench_peers": {
        "batch_size": "int", "threads": "int", "n_qubits": "int", "n_layers": "int", "load_average": _NUMBER,
        "compile_seconds": "dict",
        "rows": {"path": "str", "piece": "str", "ms_min": _NUMBER, "ms_median": _NUMBER, "cpu_ms_min": _NUMBER},
        "ratios": {"peer": "str", "piece": "str", "ours": "str", "ratio": _NUMBER, "ratio_cpu": _NUMBER,
                   "target": _NUMBER},
    },
    "bench_projection_scenarios": {
        "scenarios": {"jobs": "int", "runs": "int", "core_hours": _NUMBER, "wall_minutes": _NUMBER, "n_workers": "int",
                      "n_seeds": "int"},
    },
    "report_durations": {
        "notebooks": {"seconds": _NUMBER, "models": "str", "trained_runs": "int", "date": "str", "load_average": "str"},
        "training?": "dict",
    },
    "bench_inn": {
        "batch_size": "int", "members": "int", "threads": "int",
        "sizes": {"params": "int", "single_ms": _NUMBER, "lockstep_ms_per_seed": _NUMBER,
                  "speedup_per_seed": _NUMBER, "paper_hours_3_seeds_single": _NUMBER,
                  "paper_hours_3_seeds_lockstep": _NUMBER},
    },
}

_VERSION_KEY = "schema_version"


class ResultsError(QinnError, ValueError):
    """The results file (or a section recorded into it) is unusable; names the file, section, key."""


def results_path(profile: str | None = None) -> Path:
    """``figures/results.json`` (paper) or ``figures/quick/results.json``: what the published
    notebooks measured. Without a profile: the running notebook's results file, in its output
    folder (:func:`qinn_lib.paths.output_dir`; ``build/interactive/`` for a notebook run by hand)."""
    if profile is None:
        return paths.output_dir() / RESULTS_FILE
    return paths.figures_dir(profile) / RESULTS_FILE


def how_to_remake(section: str, profile: str | None = "paper") -> str:
    """The command that records ``section`` again."""
    profile = profile or "paper"
    if section.startswith("bench"):
        return "python -m qinn_lib.bench --record"
    return f"python -m qinn_lib.reports --profile {profile} --only {section[:2]}"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


#: Schema type -> (its name in an error message, its test). bool is no number here.
_TYPES = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    _NUMBER: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "dict": ("an object", lambda v: isinstance(v, dict)),
}


def _check_verdicts(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise ResultsError(f"{where} must be a list of verdicts, got {_type_name(value)}")
    for i, v in enumerate(value):
        if not isinstance(v, dict):
            raise ResultsError(f"{where}[{i}] must be a verdict object, got {_type_name(v)}")
        missing = [k for k in VERDICT_KEYS if k not in v]
        if missing:
            raise ResultsError(f"{where}[{i}] ({v.get('words') or v.get('metric')!r}) lacks {missing}: store the "
                               "statements as qinn_lib.evaluation.statistics.decide returns them")


def _check_value(value: Any, spec: Any, where: str) -> None:
    if spec == "verdicts":
        _check_verdicts(value, where)
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ResultsError(f"{where} must be an object of rows, got {_type_name(value)}")
        for row_name, row in value.items():
            check_section_values(row, spec, f"{where}[{row_name!r}]")
        return
    wanted, ok = _TYPES[spec]
    if not ok(value):
        raise ResultsError(f"{where} must be {wanted}, got {value!r} ({_type_name(value)})")
    if spec == _NUMBER and not math.isfinite(value):  # the README shows it: never a NaN or inf (issue 24)
        raise ResultsError(f"{where} must be a finite number, got {value!r}")


def check_section_values(values: Any, schema: dict[str, Any], where: str) -> None:
    """Raise :class:`ResultsError` naming ``where`` and the key if ``values`` does not fit ``schema``."""
    if not isinstance(values, dict):
        raise ResultsError(f"{where} must be a JSON object, got {_type_name(values)}")
    for key, spec in schema.items():
        name = key.rstrip("?")
        if name not in values:
            if key.endswith("?"):
                continue
            raise ResultsError(f"{where} lacks key {name!r}")
        _check_value(values[name], spec, f"{where}, key {name!r}")


def check_section(section: str, values: Any, path: Path, profile: str | None = "paper") -> None:
    """Check one section against :data:`SECTION_SCHEMAS` (sections without a schema need only be
    objects); the error names the file, the section and the key, and how to record it again."""
    try:
        check_section_values(values, SECTION_SCHEMAS.get(section, {}), f"section {section!r}")
    except ResultsError as err:
        raise ResultsError(f"{path}: {err} (written by an older version, or edited by hand?); "
                           f"record it again with `{how_to_remake(section, profile)}`") from None


def _restore_hint(path: Path) -> str:
    try:
        name = path.relative_to(paths.repo_root())
    except ValueError:
        name = path
    return f"restore it (git checkout {name}) or delete it and record the results again"


def _read(path: Path) -> dict[str, Any]:
    """The parsed file (``{}`` if it does not exist), checked to be a results object of a version
    this code reads; sections are not checked here."""
    if path.is_dir():
        raise ResultsError(f"{path} is a folder, not a results file; remove it")
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ResultsError(f"{path}: not valid JSON ({err}); {_restore_hint(path)}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path} must hold a JSON object of sections, got {_type_name(data)}; {_restore_hint(path)}")
    version = data.get(_VERSION_KEY, RESULTS_SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ResultsError(f"{path}: {_VERSION_KEY} must be an integer, got {version!r}")
    if version > RESULTS_SCHEMA_VERSION:
        raise ResultsError(f"{path} has {_VERSION_KEY} {version}, written by a newer qinn; this code reads "
                           f"version {RESULTS_SCHEMA_VERSION}: update qinn (git pull)")
    if version < RESULTS_SCHEMA_VERSION:
        raise ResultsError(f"{path} has {_VERSION_KEY} {version}, an older layout than this code's "
                           f"{RESULTS_SCHEMA_VERSION}; record the results again")
    return data


def load_results(profile: str | None = None) -> dict[str, Any]:
    """The sections of the profile's results file (``{}`` if there is none), every section checked
    against its schema. Raises :class:`ResultsError` naming the file, section and key."""
    path = results_path(profile)
    data = _read(path)
    data.pop(_VERSION_KEY, None)
    for section, values in data.items():
        check_section(section, values, path, profile)
    return data


def results_lock(profile: str | None = None):
    """The inter-process lock of the profile's results file (a ``filelock.FileLock``)."""
    from filelock import FileLock

    path = results_path(profile)
    return FileLock(path.with_name(f".{path.name}.lock"), timeout=LOCK_TIMEOUT)


@contextmanager
def locked(lock, what: str):
    """``with locked(lock, "..."):`` -- hold ``lock``; a timeout is a :class:`ResultsError` naming
    the lock file and what was being done."""
    from filelock import Timeout

    try:
        lock.acquire()
    except Timeout:
        raise ResultsError(
            f"{what}: another process has held {lock.lock_file} for over {lock.timeout:.0f} s; wait for it "
            "(a report run or `bench --record`) to finish, or delete that file if no qinn process is running"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _plain_json(values: Any, where: str) -> None:
    try:
        json.dumps(values, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise ResultsError(f"{where}: not plain JSON ({err}); convert numpy values with float()/int()/.tolist()") from None


def record(section: str, values: dict[str, Any], profile: str | None = None) -> None:
    """Store ``values`` (plain JSON types) under ``section`` in the profile's results file
    (:func:`results_path`), under the file lock. Notebooks call this with what they measured;
    :func:`qinn_lib.notebook.readme.render_results` turns it into the README table. The section is
    checked against its schema first. Returns None: a notebook cell ending in this call must not
    print the file's absolute path into the report."""
    path = results_path(profile)
    if not isinstance(section, str) or not section or section == _VERSION_KEY:
        raise ResultsError(f"{path}: invalid section name {section!r}")
    _plain_json(values, f"{path}: section {section!r}")
    check_section(section, values, path, profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(results_lock(profile), f"recording section {section!r} in {path}"):
        data = _read(path)
        data[section] = values
        data[_VERSION_KEY] = RESULTS_SCHEMA_VERSION
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def check_recordable(profile: str | None = None, *, folder: Path | None = None) -> Path:
    """Before a long computation that ends in :func:`record`: the results folder (the profile's,
    or ``folder``) must be writable and an existing results file readable (else the computed
    numbers could not be stored)."""
    path = results_path(profile) if folder is None else Path(folder) / RESULTS_FILE
    check_writable(path.parent, "figures folder")
    _read(path)
    return path


def data_fingerprints(results: dict[str, Any], folder: Path) -> dict[str, str]:
    """Where each data fingerprint behind the README's numbers comes from: ``{source: fingerprint}``
    from the sections that record one and from the per-model records (``models_*.json``) beside
    the results file. More than one distinct value means the README would mix event samples."""
    found: dict[str, str] = {}
    for section, values in results.items():
        for key in ("fingerprint", "data_fingerprint"):
            if isinstance(values, dict) and isinstance(values.get(key), str):
                found[f"section {section!r}"] = values[key]
    for models in sorted(Path(folder).glob("models_*.json")):
        try:
            records = json.loads(models.read_text(encoding="utf-8")).get("records", [])
        except (OSError, ValueError, AttributeError):
            continue  # not ours to judge here; metrics.read_results names its problems
        per_record = {f"{models.name} ({rec.get('label')}, seed {rec.get('seed')})": rec["data_fingerprint"]
                      for rec in (records if isinstance(records, list) else [])
                      if isinstance(rec, dict) and isinstance(rec.get("data_fingerprint"), str)}
        if len(set(per_record.values())) == 1:  # the usual case: name the file once
            found[models.name] = next(iter(per_record.values()))
        else:
            found.update(per_record)
    return found


__all__ = [
    "RESULTS_FILE", "RESULTS_SCHEMA_VERSION", "SECTION_SCHEMAS", "VERDICT_KEYS", "ResultsError", "results_path",
    "load_results", "record", "check_recordable", "results_lock", "locked", "check_section", "data_fingerprints", "how_to_remake",
]
