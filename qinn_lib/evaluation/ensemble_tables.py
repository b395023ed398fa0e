"""Seed ensembles as tables: mean and spread over seeds of every scalar metric (:func:`summarise`)
and markdown tables (:func:`format_table`). Whether two ensembles differ is decided by tests, in
:mod:`qinn_lib.evaluation.statistics` (which takes :func:`summarise`'s entries)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation.records import check_record

__all__ = ["summarise", "format_table", "present_metrics"]


def _scalar_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested dicts with '/' and keep the real numbers (bools and lists are skipped)."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_scalar_metrics(v, f"{name}/"))
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
            out[name] = float(v)
    return out


def summarise(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of every scalar metric, per model label.

    Returns one row per label (in order of first appearance)::

        {"label": str, "n_seeds": int, "seeds": [int, ...],
         "metrics": {name: {"mean": float, "std": float, "n": int, "values": [float, ...],
                            "seeds": [int, ...]}}}

    ``std`` is the sample standard deviation (ddof = 1) over the seeds, NaN for a single seed;
    ``values`` are the per-seed values and ``seeds`` their seeds (a metric some records lack has
    fewer values than the row has seeds).
    Nested metric dicts are flattened with '/'. Raises ``ValueError`` when one label holds two
    records with the same seed, or records whose configurations differ in anything but the seed
    (they would not be replicas of one model).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for i, r in enumerate(records):
        check_record(r, f"summarise: record {i}")
        groups.setdefault(str(r["label"]), []).append(r)
    rows = []
    for label, recs in groups.items():
        seeds = [r["seed"] for r in recs]
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            raise ValueError(f"summarise: label {label!r} has several records with seed(s) {dup}")
        base = {k: v for k, v in recs[0]["config"].items() if k != "seed"}
        for r in recs[1:]:
            other = {k: v for k, v in r["config"].items() if k != "seed"}
            if other != base:
                diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
                raise ValueError(
                    f"summarise: label {label!r} mixes configurations that differ in {diff} "
                    f"(seeds {recs[0]['seed']} and {r['seed']}); give them different labels"
                )
        values: dict[str, list[float]] = {}
        value_seeds: dict[str, list[int]] = {}
        for r in recs:
            for name, v in _scalar_metrics(r["metrics"]).items():
                values.setdefault(name, []).append(v)
                value_seeds.setdefault(name, []).append(r["seed"])
        stats = {}
        for name, vs in values.items():
            arr = np.asarray(vs, dtype=np.float64)
            std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
            if arr.size > 1 and np.all(arr == arr[0]):
                std = 0.0  # identical values: exactly no spread (not the rounding noise of the mean)
            stats[name] = {"mean": float(arr.mean()), "std": std, "n": int(arr.size), "values": [float(v) for v in vs],
                           "seeds": value_seeds[name]}
        rows.append({"label": label, "n_seeds": len(recs), "seeds": seeds, "metrics": stats})
    return rows


def _decimals_for(x: float, sig: int) -> int:
    """Decimal places that show ``sig`` significant digits of ``x`` (0 for large numbers)."""
    if x == 0 or not math.isfinite(x):
        return 0
    # The exponent of x *rounded* to sig digits (0.09999999 -> 1.0e-01), not floor(log10 |x|).
    exponent = int(f"{abs(x):.{sig - 1}e}".split("e")[1])
    return max(0, sig - 1 - exponent)


def _format_value(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    if abs(v) >= 1e6 or abs(v) < 1e-4:
        return f"{v:.3e}"
    return f"{v:.{_decimals_for(v, 4)}f}"


def _format_mean_std(mean: float, std: float) -> str:
    if std == 0 and math.isfinite(mean):
        # Every seed has the same value (a parameter count; the wall time that INN seeds trained
        # together in lockstep share): the value itself, not a "± 0" that reads like a measured spread.
        return _format_value(mean)
    if not (math.isfinite(mean) and math.isfinite(std)):
        return f"{_format_value(mean)} ± {_format_value(std)}"
    if (abs(std) < 1e-4 and abs(mean) < 1e-4) or abs(mean) >= 1e6:
        return f"{mean:.3e} ± {std:.1e}"
    d = min(_decimals_for(std, 2), 10)  # two significant digits of the spread
    return f"{mean:.{d}f} ± {std:.{d}f}"


def format_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None) -> str:
    """Markdown table of :func:`summarise` rows: one line per model, one column per metric.

    A cell reads ``mean ± std`` (precision set by two significant digits of the std) when the
    metric was averaged over more than one seed and varies, else the single value (4 significant
    digits, integers as integers): a metric equal for every seed (a parameter count; the wall time
    of INN seeds trained in lockstep, which share one job) shows no "± 0". ``metrics`` selects and orders the columns (default: all, in order of
    first appearance); a metric a model lacks shows as ``–``.
    """
    if metrics is None:
        metrics = []
        for r in rows:
            metrics += [m for m in r["metrics"] if m not in metrics]
    header = ["model", "seeds", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for r in rows:
        cells = [str(r["label"]), str(r["n_seeds"])]
        for m in metrics:
            s = r["metrics"].get(m)
            if s is None:
                cells.append("–")
            elif s["n"] > 1:
                cells.append(_format_mean_std(s["mean"], s["std"]))
            else:
                cells.append(_format_value(s["mean"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def present_metrics(rows: Sequence[Mapping[str, Any]], wanted: Sequence[str]) -> list[str]:
    """The metrics of ``wanted`` that at least one row has, in ``wanted``'s order: a table's columns
    when some metrics (e.g. FPD, KPD, the boosted-tree AUC, the normalised NLL) exist only in
    records written by a newer evaluation."""
    return [m for m in wanted if any(m in r["metrics"] for r in rows)]
