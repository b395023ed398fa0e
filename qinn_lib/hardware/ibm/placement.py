"""Where a calibrated device sits on notebook 07's uniform-noise axis, and the verdict in words.

Notebook 07 scans one noise channel of strength p after every gate (exact expectation values) and
measures, among others, ``angle_error``: the RMS difference of the generated angles from the exact
ones, event by event from the same latent points. It grows as a clean power of p (about
proportional to p below 1e-3), so it makes a ruler: a device whose generated angles are off by A
(its noise-only part, shot noise removed, :mod:`qinn_lib.hardware.ibm.study`) sits where the scan
reaches A -- its *effective* p, interpolated linearly in log A against log p between scan points,
with the interval from A +- 2 standard errors. The scan also says up to which p the generated
distributions stay as good as exact simulation (``sweeps.thresholds``); the ratio of the two is
how much less noise the device would need, and, if every error rate scaled alike, the calibrated
two-qubit error divided by it is the error rate it would need. Usable means: the whole interval
of the effective p lies at or below that threshold; not usable: all of it above; else undecided.

Nothing here imports Qiskit: it reads the studies' plain-JSON summaries.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qinn_lib.hardware.sweeps import PM, nowrap

__all__ = ["json_safe", "REFERENCE_CHANNEL", "scan_curve", "effective_p", "place", "verdict", "results_table",
           "resources_table", "NBSP_PM"]

#: The channel whose scan places the devices (their gate errors are modelled as depolarising plus
#: relaxation; amplitude damping is given beside it).
REFERENCE_CHANNEL = "depolarizing"
#: "±" that never wraps inside a table cell (no-break spaces either side).
NBSP_PM = PM


def scan_curve(rows: Sequence[Mapping[str, Any]], channel: str, metric: str = "angle_error") -> tuple[np.ndarray, np.ndarray]:
    """(p, seed mean of ``metric``) of notebook 07's noise scan of ``channel``, sorted by p."""
    pts = sorted((r["device"]["p"], r["metrics"][metric]["mean"]) for r in rows
                 if r["device"].get("channel") == channel and r["device"].get("shots") is None)
    if len(pts) < 2:
        raise ValueError(f"need at least two scan points of channel {channel!r}, got {len(pts)}")
    p, v = (np.array(c, dtype=float) for c in zip(*pts))
    return p, v


def _interp(p: np.ndarray, v: np.ndarray, value: float) -> float:
    """p at which the (increasing) scan reaches ``value``; +-inf outside the scan."""
    if not math.isfinite(value) or value <= 0:
        return -math.inf
    if value < v[0]:
        return -math.inf
    if value > v[-1]:
        return math.inf
    return float(10 ** np.interp(math.log10(value), np.log10(v), np.log10(p)))


def effective_p(rows: Sequence[Mapping[str, Any]], channel: str, value: float, se: float) -> dict[str, Any]:
    """The effective p of a device whose noise-only angle error is ``value`` +- ``se``: ``p`` and the
    interval ``p_lo``, ``p_hi`` (from value -+ 2 se); -inf / inf mean below / above the scanned range."""
    p, v = scan_curve(rows, channel)
    if np.any(np.diff(v) <= 0):
        raise ValueError(f"the {channel} scan's angle error does not increase with p: {v.tolist()}")
    se = se if math.isfinite(se) else 0.0
    eff = _interp(p, v, value)
    # the scan points the interpolation runs between (the interval above is statistical only: the
    # log-log line between two scan points a decade apart is itself an assumption)
    below = [float(x) for x in p if x <= eff]
    above = [float(x) for x in p if x >= eff]
    return {"channel": channel, "p": eff, "p_lo": _interp(p, v, value - 2 * se),
            "p_hi": _interp(p, v, value + 2 * se), "scan_min": float(p[0]), "scan_max": float(p[-1]),
            "between": [below[-1] if below else None, above[0] if above else None]}


def place(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], thresholds: Mapping[str, Any],
          variant: str = "raw") -> dict[str, Any]:
    """Effective p of one study (both channels), the threshold of the distributions, the factor
    between them and the verdict (True usable / False not / None undecided)."""
    gen = summary["generation"][variant]
    out: dict[str, Any] = {"variant": variant}
    for channel in sorted({r["device"]["channel"] for r in rows if r["device"].get("channel")}):
        eff = effective_p(rows, channel, gen["angle_error_noise"], gen["angle_error_noise_se"])
        limit = (thresholds.get(channel) or {}).get("distributions")
        factor = eff["p"] / limit if limit else math.inf
        # the scan passes at ``limit`` and fails at the next scanned p: the true limit lies between,
        # so the factor is at least eff / next (and at most eff / limit)
        scanned = sorted(float(x) for x in scan_curve(rows, channel)[0])
        nxt = next((x for x in scanned if limit is not None and x > limit), None)
        factor_lo = eff["p"] / nxt if nxt else factor
        if limit is None:  # not even the smallest scanned p was as good as exact
            usable = False if eff["p_lo"] > eff["scan_min"] else None
        else:
            usable = True if eff["p_hi"] <= limit else False if eff["p_lo"] > limit else None
        out[channel] = {**eff, "threshold": limit, "threshold_fails_at": nxt, "factor": factor, "factor_lo": factor_lo,
                        "usable": usable}
    return out


def _p(value: float, scan: Mapping[str, Any]) -> str:
    if value == -math.inf:
        return f"below {scan['scan_min']:g}"
    if value == math.inf:
        return f"above {scan['scan_max']:g}"
    return f"{value:.1e}"


def verdict(summaries: Sequence[Mapping[str, Any]], placements: Sequence[Mapping[str, Any]],
            channel: str = REFERENCE_CHANNEL) -> str:
    """The plain-words answer, computed from the studies and their placements."""
    parts = []
    for s, pl in zip(summaries, placements):
        g, r, cal = s["generation"], s["reconstruction"], s["calibration"]
        eff = pl[channel]
        res = {row["circuit"]: row for row in s["resources"]}
        inv = res.get("qinn_inverse", {})
        shot = g["shots_only"]["mean_abs_dp"]
        text = (f"On {s['backend']} ({s['family']}, {s['two_qubit_gate'].upper()}; calibration of {s['calibrated']}: "
                f"median two-qubit error {cal['two_qubit_error']:.1e}, readout error {cal['readout_error']:.1%} on the "
                f"qubits used), the generating circuit ({inv.get('native_2q', '?')} native two-qubit gates after routing) "
                f"reads P(qubit = 1) off by {g['raw']['mean_abs_dp']:.4f} ± {g['raw']['mean_abs_dp_sem']:.4f} on average "
                f"over {g['n']} events, {g['raw']['mean_abs_dp'] / shot:.0f}x what {s['shots']:,} shots alone give "
                f"({shot:.4f}; Wilcoxon signed-rank {_pval(g['raw']['beyond_shot_noise_p'])} against shot noise "
                f"alone); readout mitigation makes it {g['mitigated']['mean_abs_dp']:.4f} ± "
                f"{g['mitigated']['mean_abs_dp_sem']:.4f} ({_effect(g['mitigation_effect'])}). "
                f"Its generated angles are off by {g['raw']['angle_error_noise']:.3f} rad RMS beyond shot noise, as much "
                f"as {channel} noise of p ≈ {_p(eff['p'], eff)} after every gate in notebook 07's scan "
                f"({_p(eff['p_lo'], eff)} to {_p(eff['p_hi'], eff)} from ± 2 standard errors{_between(eff)})")
        if eff["threshold"] is not None and math.isfinite(eff["factor"]):
            hi, lo = eff["factor"], eff.get("factor_lo", eff["factor"])
            need_lo, need_hi = cal["two_qubit_error"] / hi, cal["two_qubit_error"] / lo
            nxt = eff.get("threshold_fails_at")
            said = f" and not at {nxt:g}" if nxt else ""
            rng = f"{lo:.0f}x to {hi:.0f}x" if lo != hi else f"{hi:.0f}x"
            need = f"{need_lo:.0e} to {need_hi:.0e}" if lo != hi else f"{need_lo:.0e}"
            text += (f"; the distributions are as good as exact up to p = {eff['threshold']:g}{said}, so the device "
                     f"is {rng} too noisy: if every error rate scaled alike, its median two-qubit error of "
                     f"{cal['two_qubit_error']:.1e} would have to be about {need}")
        elif eff["threshold"] is None:
            text += "; the scan found no p at which the distributions are as good as exact"
        fwd = r.get("forward_raw")
        if fwd:
            text += (f". The forward circuit ({res.get('qinn_forward', {}).get('native_2q', '?')} native two-qubit gates) "
                     f"reads P(qubit = 1) off by {fwd['mean_abs_dp']:.4f} ± {fwd['mean_abs_dp_sem']:.4f}")
        text += (f". The inverse (x -> z -> x~, both circuits on the device, {r['n']} test events) deviates by "
                 f"{100 * r['raw']['recon_mean']:.1f} % (mitigated {100 * r['mitigated']['recon_mean']:.1f} %) "
                 f"against {100 * r['exact']['recon_mean']:.1f} % in exact simulation.")
        parts.append(text)
    usable = [pl[channel]["usable"] for pl in placements]
    names = ", ".join(s["backend"] for s in summaries)
    if usable and all(u is False for u in usable):
        text = (f"Verdict: the paper's QINN is not usable on these devices ({names}): on every one its "
                "generated events are as far from exact simulation as notebook 07's uniform noise well above "
                "the level the distributions tolerate")
        effs = [pl[channel] for pl in placements]
        if all(math.isfinite(e["p"]) and math.isfinite(e["factor"]) for e in effs):
            needs = [s["calibration"]["two_qubit_error"] / f for s, e in zip(summaries, effs)
                     for f in (e["factor"], e.get("factor_lo", e["factor"]))]
            have = [s["calibration"]["two_qubit_error"] for s in summaries]
            text += (f" (effective p {min(e['p'] for e in effs):.1e} to {max(e['p'] for e in effs):.1e}, "
                     f"{min(e.get('factor_lo', e['factor']) for e in effs):.0f}x to {max(e['factor'] for e in effs):.0f}x "
                     f"the tolerated p). It would need two-qubit errors of about {min(needs):.0e} to {max(needs):.0e} "
                     f"(these devices: {min(have):.1e} to {max(have):.1e}) with every other error rate scaled alike")
        parts.append(text + ".")
    elif usable and all(u is True for u in usable):
        parts.append(f"Verdict: on these devices ({names}) the QINN's generated events are as good as exact simulation.")
    else:
        words = {True: "usable", False: "not usable", None: "undecided"}
        parts.append("Verdict, device by device: " + "; ".join(f"{s['backend']} {words[u]}" for s, u in zip(summaries, usable))
                     + ".")
    return " ".join(parts)


def _between(eff: Mapping[str, Any]) -> str:
    lo, hi = eff.get("between") or (None, None)
    return f"; interpolated between the scan's p = {lo:g} and {hi:g}" if lo and hi and lo != hi else ""


def _effect(e: Mapping[str, Any]) -> str:
    """Mitigation's paired effect on the per-event mean |Delta P| in words."""
    return (f"a paired change of {e['mean']:+.4f} ± {e['sem']:.1g}, Wilcoxon signed-rank {_pval(e['p'])}"
            if math.isfinite(e.get("sem", math.nan)) else f"a paired change of {e['mean']:+.4f}")


def _pval(p: float) -> str:
    return "p < 1e-300" if p < 1e-300 else f"p = {p:.1g}"


def _pm(mean: float, sem: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f}{NBSP_PM}{sem:.{digits}f}"


def results_table(summaries: Sequence[Mapping[str, Any]], placements: Sequence[Mapping[str, Any]],
                  channel: str = REFERENCE_CHANNEL) -> str:
    """Markdown: per backend, the generation (mean |Delta P|, angle error, effective p, JS), the
    inverse's reconstruction deviation, raw / mitigated, beside exact simulation."""
    head = ["backend", "shots", "events", "mean |ΔP| raw", "mitigated", "shots only", "angle error [rad]",
            f"effective p ({channel})", "JS(M_ll) raw / mitigated / exact", "JS(ΔR) raw / mitigated / exact",
            "recon. raw / mitigated / exact"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for s, pl in zip(summaries, placements):
        g, r, eff = s["generation"], s["reconstruction"], pl[channel]
        js = {o: " / ".join(f"{g[k][f'js/{o}']:.3f}" for k in ("raw", "mitigated")) + f" / {g['exact'][f'js/{o}']:.3f}"
              for o in ("m_ll", "delta_r")}
        lines.append("| " + " | ".join(nowrap(c) for c in [
            s["backend"], f"{s['shots']:,}", f"{g['n']:,}",
            _pm(g["raw"]["mean_abs_dp"], g["raw"]["mean_abs_dp_sem"]),
            _pm(g["mitigated"]["mean_abs_dp"], g["mitigated"]["mean_abs_dp_sem"]),
            f"{g['shots_only']['mean_abs_dp']:.4f}",
            _pm(g["raw"]["angle_error"], g["raw"]["angle_error_se"], 3),
            f"{_p(eff['p'], eff)} [{_p(eff['p_lo'], eff)}, {_p(eff['p_hi'], eff)}]",
            js["m_ll"], js["delta_r"],
            " / ".join(f"{100 * r[k]['recon_mean']:.1f}" for k in ("raw", "mitigated", "exact")) + " %",
        ]) + " |")
    return "\n".join(lines)


def resources_table(summaries: Sequence[Mapping[str, Any]], logical: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per backend and circuit, the logical CNOTs and depth (``hardware.resources``) beside
    the routed native two-qubit gates, single-qubit gates, depth, two-qubit depth, the duration
    estimate, and what a sampler call cost."""
    by_name = {"qinn_forward": logical[0], "qinn_inverse": logical[1]}
    head = ["backend", "processor", "circuit", "CNOTs (logical)", "depth (logical)", "native 2q gates",
            "1q gates", "depth", "2q depth", "duration [µs]", "physical qubits", "s per call + s per event"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for s in summaries:
        cost = s["cost"]
        per = ("–" if cost["fixed_seconds"] is None
               else f"{cost['fixed_seconds']:.1f} + {cost['seconds_per_event']:.3f}")
        for row in s["resources"]:
            lg = by_name[row["circuit"]]
            lines.append("| " + " | ".join(nowrap(c) for c in [
                s["backend"], f"{s['family']} ({s['qubits']} qubits)", row["circuit"].removeprefix("qinn_"),
                str(lg["cnots"]), str(lg["depth"]), f"{row['native_2q']} {row['two_qubit_gate'].upper()}",
                str(row["native_1q"]), str(row["depth"]), str(row["depth_2q"]), f"{row['duration_us']:.1f}",
                ", ".join(str(q) for q in row["physical_qubits"]), per,
            ]) + " |")
    return "\n".join(lines)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (an effective p outside the scan, a missing duration)
    as None, so the results file stays standard JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
