"""Controlled ablations of the Table 1 QINN (notebook 06): one change at a time, same data, same
seeds, each judged against the Table 1 baseline metric by metric with the tests of
:mod:`qinn_lib.evaluation.statistics` (Welch on the metric's declared scale, Holm over the whole
table as one family: it is a screen of many comparisons, kept apart from notebook 06's statements).

The baseline is the Table 1 point of every binary choice below (MSE averaged over the features,
one joint MMD, lambda_MZ x 1, ISP hidden width 32, 12 model layers), so it is not repeated.
Every ablation has a priority (1 = answers notebook 06's question directly, 3 = a refinement)
so that a tight run budget can keep the most informative ones (:func:`ablation_configs`, ``keep``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from qinn_lib.evaluation import diagnostics, statistics
from qinn_lib.experiments import ensembles as ensembles_lib

__all__ = ["BASELINE", "Ablation", "ABLATIONS", "VERDICT_METRICS", "SCREEN_FAMILY", "ablation_configs", "train_ablations",
           "ablation_verdicts", "format_verdicts"]

#: Label of the unchanged Table 1 configuration.
BASELINE = "baseline (Table 1)"


@dataclass(frozen=True)
class Ablation:
    """One controlled change: ``changes(base)`` gives the fields to replace; ``label(base)`` names it."""

    key: str
    label: Callable[[Any], str]
    changes: Callable[[Any], dict[str, Any]]
    why: str
    priority: int


def _other(value: Any, pair: tuple[Any, Any]) -> Any:
    return pair[1] if value == pair[0] else pair[0]


_NO_MMD = {"lambda_mmd_input": 0.0, "lambda_mmd_latent": 0.0, "lambda_mz": 0.0}

#: The ablations, in the order notebook 06 shows them.
ABLATIONS: tuple[Ablation, ...] = (
    Ablation("mse_reduction", lambda b: f"MSE {_other(b.mse_reduction, ('mean', 'sum'))}",
             lambda b: {"mse_reduction": _other(b.mse_reduction, ("mean", "sum"))},
             "eq. 20 averaged or summed over the five features (the paper does not say): sets the weight "
             "of invertibility against the MMDs", 1),
    Ablation("nll_only", lambda b: "NLL only", lambda b: {**_NO_MMD, "lambda_inv": 0.0},
             "the forward flow's density ceiling: NLL alone, no MMD and no invertibility loss", 1),
    Ablation("nll_inv", lambda b: "NLL + inv (no MMD)", lambda b: dict(_NO_MMD),
             "what the MMDs add on top of an invertible density model", 1),
    Ablation("no_latent_mmd", lambda b: "no latent MMD", lambda b: {"lambda_mmd_latent": 0.0},
             "sec. 2.2's latent-side MMD removed", 2),
    Ablation("no_input_mmd", lambda b: "no input MMD", lambda b: {"lambda_mmd_input": 0.0},
             "sec. 2.2's input-side MMD removed", 2),
    Ablation("mmd_mode", lambda b: f"MMD {_other(b.mmd_mode, ('joint', 'per_observable')).replace('_', '-')}",
             lambda b: {"mmd_mode": _other(b.mmd_mode, ("joint", "per_observable"))},
             "sec. 2.2's 'MMD ... to all training observables': one joint 5-d MMD or five 1-d ones", 2),
    Ablation("lambda_mz_0", lambda b: "λ_MZ × 0", lambda b: {"lambda_mz": 0.0},
             "the M_Z MMD off: how much of the peak it makes", 1),
    Ablation("lambda_mz_10", lambda b: "λ_MZ × 10", lambda b: {"lambda_mz": 10.0 * b.lambda_mz},
             "the M_Z MMD ten times stronger: does the peak improve, at what cost", 2),
    Ablation("isp_hidden", lambda b: f"ISP hidden {2 * b.isp_hidden}", lambda b: {"isp_hidden": 2 * b.isp_hidden},
             "a wider ISP network (beyond the paper's 2k parameters): is the inverse capacity-limited", 3),
    Ablation("n_layers", lambda b: f"{2 * b.n_layers} layers", lambda b: {"n_layers": 2 * b.n_layers},
             "a deeper model circuit: the degree-1 function class does not grow with depth", 2),
)

#: Metrics the verdicts compare (lower is better for each; an AUC while above 0.5); those a record
#: lacks (the normalised NLL, FPD / KPD and the boosted-tree AUC of a newer evaluation) are skipped.
VERDICT_METRICS: tuple[str, ...] = ("nll", "nll_normalised", "recon_mean", "fold_fraction", "js/m_ll",
                                    "peak_share_error/m_ll", "js/delta_r", "js/pt_lp", "auc", "auc_bdt",
                                    "auc_bdt_derived", "fpd", "kpd")


def ablation_configs(base_cfg: Any, seeds: Sequence[int], *, keep: Iterable[str] | int | None = None) -> dict[str, list[Any]]:
    """``{label: [config per seed]}``: the baseline first, then every ablation of :data:`ABLATIONS`.

    ``base_cfg``: a :class:`~qinn_lib.training.config.QINNRunConfig` (already profile-capped); its seed is
    replaced by each of ``seeds``. ``keep``: ablation keys to keep, or the largest priority to keep
    (e.g. 1), or None for all. An ablation that leaves the config unchanged is left out (it would
    be the baseline under another label)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("ablation_configs: no seeds")
    chosen = list(ABLATIONS)
    if isinstance(keep, int) and not isinstance(keep, bool):
        chosen = [a for a in chosen if a.priority <= keep]
    elif keep is not None:
        keys = set(keep)
        unknown = keys - {a.key for a in ABLATIONS}
        if unknown:
            raise ValueError(f"ablation_configs: unknown ablation(s) {sorted(unknown)}; known: {[a.key for a in ABLATIONS]}")
        chosen = [a for a in chosen if a.key in keys]
    out = {BASELINE: [base_cfg.replace(seed=s) for s in seeds]}
    for ab in chosen:
        changed = base_cfg.replace(**ab.changes(base_cfg))
        if changed == base_cfg:
            continue
        label = ab.label(base_cfg)
        if label in out:
            raise ValueError(f"ablation_configs: two ablations named {label!r}")
        out[label] = [changed.replace(seed=s) for s in seeds]
    return out


def train_ablations(configs_by_label: Mapping[str, list[Any]], *, client: Any = None, log=print, data: Any = None,
                    normalisation_samples: int = 0) -> dict[str, Any]:
    """Train (or reload) every run through the Dask runner in one batch
    (:func:`qinn_lib.experiments.ensembles.train_ensembles`), then add :func:`qinn_lib.evaluation.diagnostics.diagnose` (fold
    fraction, the headline error split by the sign of det J, every reading of the 2.1 % metric,
    optionally the density normalisation) to each run's record. Returns ``{label: Ensemble}``."""
    ensembles = ensembles_lib.train_ensembles(dict(configs_by_label), client=client, log=log, data=data)
    for ens in ensembles.values():
        for trained, record in zip(ens.runs, ens.records):
            record["metrics"].update(diagnostics.diagnose(trained, normalisation_samples=normalisation_samples,
                                                          seed=int(trained.cfg.seed)))
    return ensembles


#: Holm family of the ablation table (one screen of every ablation x metric against the baseline).
SCREEN_FAMILY = "06 ablation screen"
#: found (qinn_lib.evaluation.statistics.FOUND; a = baseline, b = ablation) -> the table's word; lower is better.
_WORDS = {"b lower": "better", "a lower": "worse", "equivalent": "equivalent", "undecided": "undecided"}


def ablation_verdicts(rows: Sequence[Mapping[str, Any]], *, baseline: str = BASELINE,
                      metrics: Sequence[str] = VERDICT_METRICS) -> dict[str, dict[str, dict]]:
    """Each ablation against the baseline, metric by metric: ``{label: {metric: result}}`` where
    result is a decided :func:`qinn_lib.evaluation.statistics.compare` (a = baseline, b = ablation;
    Holm over every cell of the table, family :data:`SCREEN_FAMILY`) plus ``word``: "better" /
    "worse" (lower / higher after Holm; every metric here is lower-is-better) or "undecided" (with
    the seeds it would need, or one seed). ``rows`` are
    :func:`qinn_lib.evaluation.ensemble_tables.summarise` rows; metrics a row lacks are skipped."""
    by_label = {r["label"]: r["metrics"] for r in rows}
    if baseline not in by_label:
        raise ValueError(f"ablation_verdicts: no row labelled {baseline!r}; have {sorted(by_label)}")
    base = by_label[baseline]
    cells = [(label, m, statistics.compare(base[m], row[m], metric=m, a_label=baseline, b_label=label))
             for label, row in by_label.items() if label != baseline for m in metrics if m in base and m in row]
    decided = statistics.decide([c for _, _, c in cells], family=SCREEN_FAMILY)
    out: dict[str, dict[str, dict]] = {label: {} for label in by_label if label != baseline}
    for (label, m, _), v in zip(cells, decided):
        out[label][m] = {**v, "table_word": _WORDS[v["found"]]}
    return out


def format_verdicts(verdicts: Mapping[str, Mapping[str, Mapping[str, Any]]], rows: Sequence[Mapping[str, Any]],
                    metrics: Sequence[str] = VERDICT_METRICS) -> str:
    """Markdown table: one line per ablation, one column per metric compared (``metrics`` that no
    ablation has are left out), each cell the ablation's seed mean, then its verdict against the
    baseline with the effect (ratio or difference to the baseline) and Holm's p over the table."""
    by_label = {r["label"]: r["metrics"] for r in rows}
    metrics = [m for m in metrics if any(m in per_metric for per_metric in verdicts.values())]
    lines = ["| ablation | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for label, per_metric in verdicts.items():
        cells = []
        for m in metrics:
            v = per_metric.get(m)
            if v is None:
                cells.append("–")
                continue
            mean = by_label[label][m]["mean"]
            if min(v["n_a"], v["n_b"]) < 2:
                cells.append(f"{mean:.4g} (1 seed)")
                continue
            sign = "×" if v["effect_kind"].startswith("ratio") else "Δ "
            effect = f"{sign}{v['effect']:.2g}" if sign == "×" else f"{sign}{v['effect']:+.2g}"
            p = v["p_holm"]
            p_text = f"p_H {p:.2g}" if math.isfinite(p) else "no test"
            cells.append(f"{mean:.4g} ({v['table_word']}, {effect}, {p_text})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
