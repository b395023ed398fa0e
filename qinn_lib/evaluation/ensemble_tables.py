"""Seed ensembles as tables: mean and spread over seeds of every scalar metric (:func:`summarise`),
differences in units of the combined seed spread (:func:`compare_means`, :func:`claim_verdict`)
and markdown tables (:func:`format_table`)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qinn_lib.evaluation.records import check_record

__all__ = ["summarise", "compare_means", "claim_verdict", "format_table"]


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
         "metrics": {name: {"mean": float, "std": float, "n": int, "values": [float, ...]}}}

    ``std`` is the sample standard deviation (ddof = 1) over the seeds, NaN for a single seed;
    ``values`` are the per-seed values, in the order of ``seeds``.
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
        for r in recs:
            for name, v in _scalar_metrics(r["metrics"]).items():
                values.setdefault(name, []).append(v)
        stats = {}
        for name, vs in values.items():
            arr = np.asarray(vs, dtype=np.float64)
            std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
            if arr.size > 1 and np.all(arr == arr[0]):
                std = 0.0  # identical values: exactly no spread (not the rounding noise of the mean)
            stats[name] = {"mean": float(arr.mean()), "std": std, "n": int(arr.size), "values": [float(v) for v in vs]}
        rows.append({"label": label, "n_seeds": len(recs), "seeds": seeds, "metrics": stats})
    return rows


def compare_means(a: Mapping[str, Any], b: Mapping[str, Any], *, n_spreads: float = 2.0) -> dict[str, Any]:
    """Is metric ``b`` really different from metric ``a``? Both are entries of
    :func:`summarise`'s ``row["metrics"]`` (``mean``, ``std`` over seeds, ``n``).

    Returns ``diff = b.mean - a.mean``, the combined seed spread ``spread = sqrt(std_a² + std_b²)``,
    ``significance = diff / spread`` and ``order``: ``"b>a"`` or ``"b<a"`` when ``|diff|`` exceeds
    ``n_spreads`` spreads, ``"tied"`` when it does not, and ``"undecided"`` when either side has a
    single seed (no spread, so no difference can be called real).

    When both sides carry their per-seed ``values`` (as :func:`summarise` gives them), also
    ``pairs`` (number of seed pairs (a_i, b_j)), ``pairs_b_lower`` and ``pairs_b_higher``: how
    often b's seed is below / above a's. This does not change ``order``; it shows a reader whether
    a "tied" hides two sets of seeds that never overlap (one side's spread can be large).
    """
    for name, m in (("a", a), ("b", b)):
        missing = {"mean", "std", "n"} - set(m)
        if missing:
            raise ValueError(f"compare_means: {name} lacks {sorted(missing)} (pass summarise(...)[i]['metrics'][name])")
    if not n_spreads > 0:
        raise ValueError(f"compare_means: n_spreads must be > 0, got {n_spreads!r}")
    diff = float(b["mean"]) - float(a["mean"])
    pairs: dict[str, int] = {}
    if "values" in a and "values" in b:
        va, vb = np.asarray(a["values"], dtype=np.float64), np.asarray(b["values"], dtype=np.float64)
        pairs = {"pairs": int(va.size * vb.size), "pairs_b_lower": int((vb[None, :] < va[:, None]).sum()),
                 "pairs_b_higher": int((vb[None, :] > va[:, None]).sum())}
    if int(a["n"]) < 2 or int(b["n"]) < 2:
        return {"diff": diff, "spread": float("nan"), "significance": float("nan"), "order": "undecided", **pairs}
    spread = math.hypot(float(a["std"]), float(b["std"]))
    significance = diff / spread if spread > 0 else math.copysign(math.inf, diff) if diff else 0.0
    order = "tied" if abs(diff) <= n_spreads * spread else ("b>a" if diff > 0 else "b<a")
    return {"diff": diff, "spread": spread, "significance": significance, "order": order, **pairs}


_ORDER_WORDS = {"b>a": "higher", "b<a": "lower", "tied": "tied"}


def claim_verdict(a: Mapping[str, Any], b: Mapping[str, Any], expected: str, *,
                  n_spreads: float = 2.0) -> dict[str, Any]:
    """Check a paper statement of the form "metric ``b`` is higher than / lower than / the same as
    metric ``a``" (``expected`` = ``"b>a"``, ``"b<a"`` or ``"tied"``) against the seed means, with
    :func:`compare_means`.

    Returns compare_means' fields plus ``verdict``: ``"reproduced"`` when the measured order is the
    expected one, ``"not reproduced"`` when it is another (``found`` says which: ``"higher"``,
    ``"lower"`` or ``"tied"``; ``expected_word`` is the expected order in the same words),
    ``"undecided"`` with a single seed; and
    ``text``, one line: the difference ``b - a``, in seed spreads, and the verdict.
    """
    if expected not in _ORDER_WORDS:
        raise ValueError(f"claim_verdict: expected must be one of {sorted(_ORDER_WORDS)}, got {expected!r}")
    c = compare_means(a, b, n_spreads=n_spreads)
    if c["order"] == "undecided":
        verdict, found = "undecided", "undecided"
        text = f"{c['diff']:+.4g} (one seed: no spread) -> undecided"
    else:
        found = _ORDER_WORDS[c["order"]]
        verdict = "reproduced" if c["order"] == expected else "not reproduced"
        text = f"{c['diff']:+.4g} = {c['significance']:+.1f} seed spreads ({found}) -> {verdict}"
    return {**c, "verdict": verdict, "found": found, "expected_word": _ORDER_WORDS[expected], "text": text}


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
    metric was averaged over more than one seed, else the single value (4 significant digits,
    integers as integers); a metric equal in every seed (std 0) shows as that value alone. ``metrics`` selects and orders the columns (default: all, in order of
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
