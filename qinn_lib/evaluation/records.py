"""Result records of trained models and the files that hold them (e.g. ``models_05.json``).

:func:`make_record` makes one record per trained model and seed: label, configuration and its
fingerprint, the fingerprint of the events it was trained on, the training seed and the metrics
(e.g. of :func:`qinn_lib.evaluation.evaluate.evaluate_model`). :func:`write_results` writes
records atomically with a schema version (:data:`RESULTS_SCHEMA_VERSION`). :func:`read_results`
reads them back and refuses, naming the file, unreadable JSON, another schema version, malformed
records and, unless told otherwise, records of models trained on different events, which could
not be compared.

The means and spreads over seeds of these records are :mod:`qinn_lib.evaluation.ensemble_tables`.

Metric names that tables rely on: :data:`MEASURED_METRICS`, the field's measures and the honest
likelihood of :func:`qinn_lib.evaluation.evaluate.evaluate_model`, each a value with its error
(``<name>_err``), and :data:`FOLD_METRICS`, the QINN's folds. A record need not hold them (records
written before them, models without a density), but where it holds one it holds a real number
(NaN allowed) and the value's error with it; :func:`check_record` refuses anything else.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from qinn_lib.atomic import atomic_write_text
from qinn_lib.evaluation.results import ResultsError

__all__ = ['RESULTS_SCHEMA_VERSION', 'MEASURED_METRICS', 'FOLD_METRICS', 'make_record', 'check_record',
           'write_results', 'read_results']


#: Version of the results-file layout written by :func:`write_results`; bump on any change.
RESULTS_SCHEMA_VERSION = 1
_RECORD_KEYS = ("label", "config", "config_fingerprint", "data_fingerprint", "seed", "metrics")

#: Metrics of evaluate_model that come with an error ``<name>_err``: FPD and KPD (Kansal et al.
#: 2023), the boosted-tree classifier AUC on the raw features and with M_ll and Delta R, the log of
#: the density's normalisation Z over the box and the NLL normalised by it (NLL + ln Z).
MEASURED_METRICS: tuple[str, ...] = ("fpd", "kpd", "auc_bdt", "auc_bdt_derived", "log_z", "nll_normalised")
#: The QINN's folds (models with forward_and_jacobian): share of test events on the minority sign of
#: det J, share of the box with det J < 0, share of the model's mass on the minority sign.
FOLD_METRICS: tuple[str, ...] = ("fold_fraction", "box_negative_fraction", "minority_mass")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- results files -------------------------------------------------------------------------------
def make_record(label: str, trained: Any, metrics: Mapping[str, Any], *, eval_seed: int | None = None) -> dict[str, Any]:
    """A results record for ``trained`` (a TrainedModel): label, config, fingerprints, training seed
    (``cfg.seed``) and the metrics (e.g. from :func:`evaluate_model`)."""
    cfg = trained.cfg
    rec = {"label": str(label), "kind": getattr(cfg, "kind", "?"), "config": cfg.to_dict(),
           "config_fingerprint": cfg.fingerprint(), "data_fingerprint": trained.data.fingerprint,
           "seed": int(cfg.seed), "metrics": dict(metrics)}
    if eval_seed is not None:
        rec["eval_seed"] = int(eval_seed)
    return rec


def check_record(rec: Any, where: str) -> None:
    if not isinstance(rec, Mapping):
        raise ResultsError(f"{where} is not a dict (got {type(rec).__name__})")
    missing = [k for k in _RECORD_KEYS if k not in rec]
    if missing:
        raise ResultsError(f"{where} lacks key(s) {missing}; a record needs {list(_RECORD_KEYS)}")
    if not isinstance(rec["metrics"], Mapping):
        raise ResultsError(f"{where}: 'metrics' must be a dict, got {type(rec['metrics']).__name__}")
    if not isinstance(rec["config"], Mapping):
        raise ResultsError(f"{where}: 'config' must be a dict, got {type(rec['config']).__name__}")
    metrics = rec["metrics"]
    for name in MEASURED_METRICS:
        for key in (name, f"{name}_err"):
            if key in metrics and not _is_number(metrics[key]):
                raise ResultsError(f"{where}: metric {key!r} must be a number, got {metrics[key]!r}")
        if (name in metrics) != (f"{name}_err" in metrics):
            have, lacks = (name, f"{name}_err") if name in metrics else (f"{name}_err", name)
            raise ResultsError(f"{where}: metric {have!r} comes without {lacks!r}")
    for key in FOLD_METRICS:
        if key in metrics and not _is_number(metrics[key]):
            raise ResultsError(f"{where}: metric {key!r} must be a number, got {metrics[key]!r}")


def write_results(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Write ``{"schema_version", "created", "records"}`` as JSON, atomically (temporary file in the
    same folder, then ``os.replace``: a reader never sees half a file). Returns None, so that a
    notebook cell ending in this call prints no absolute path into its report."""
    path = Path(path)
    records = [dict(r) for r in records]
    for i, r in enumerate(records):
        check_record(r, f"write_results({path}): record {i}")
    doc = {"schema_version": RESULTS_SCHEMA_VERSION,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "records": records}
    # NaN/inf are written as JSON's NaN/Infinity extensions (Python's json reads them back).
    text = json.dumps(doc, indent=2, allow_nan=True)
    atomic_write_text(path, text)


def read_results(path: str | os.PathLike, *, require_same_data: bool = True) -> list[dict[str, Any]]:
    """Records of a results file written by :func:`write_results`.

    Raises :class:`~qinn_lib.evaluation.results.ResultsError` (a ``ValueError`` naming the file) for unreadable
    JSON, a schema version other than :data:`RESULTS_SCHEMA_VERSION`, malformed records, and -- with ``require_same_data`` -- records
    whose models were trained on different data (different data fingerprints).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"results file {path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"results file {path}: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        raise ResultsError(
            f"results file {path} has schema_version {version!r}, but this code reads version "
            f"{RESULTS_SCHEMA_VERSION}; re-run the evaluation to regenerate it"
        )
    records = doc.get("records")
    if not isinstance(records, list):
        raise ResultsError(f"results file {path}: 'records' must be a list")
    for i, r in enumerate(records):
        check_record(r, f"results file {path}: record {i}")
    if require_same_data and records:
        first = records[0]
        for r in records[1:]:
            if r["data_fingerprint"] != first["data_fingerprint"]:
                raise ResultsError(
                    f"results file {path}: comparing models trained on different data: "
                    f"{first['label']!r} (seed {first['seed']}) has data fingerprint "
                    f"{first['data_fingerprint']}, {r['label']!r} (seed {r['seed']}) has "
                    f"{r['data_fingerprint']}; pass require_same_data=False to read them anyway"
                )
    return records
