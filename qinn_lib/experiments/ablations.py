"""Controlled ablations of the Table 1 QINN (notebook 06): one change at a time, same data, same
seeds, each judged against the Table 1 baseline with the seed-spread test of notebooks 04/05
(:func:`qinn_lib.evaluation.ensemble_tables.compare_means`: a difference counts above two combined seed spreads).

The baseline is the Table 1 point of every binary choice below (MSE averaged over the features,
one joint MMD, lambda_MZ x 1, ISP hidden width 32, 12 model layers), so it is not repeated.
Every ablation has a priority (1 = answers notebook 06's question directly, 3 = a refinement)
so that a tight run budget can keep the most informative ones (:func:`ablation_configs`, ``keep``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from qinn_lib.evaluation import diagnostics
from qinn_lib.evaluation.ensemble_tables import compare_means
from qinn_lib.experiments import ensembles as ensembles_lib

__all__ = ["BASELINE", "Ablation", "ABLATIONS", "VERDICT_METRICS", "ablation_configs", "train_ablations",
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

#: Metrics the verdicts compare (lower is better for each; AUC while above 0.5).
VERDICT_METRICS: tuple[str, ...] = ("nll", "recon_mean", "fold_fraction", "js/m_ll", "peak_share_error/m_ll",
                                    "js/delta_r", "js/pt_lp", "auc")


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


_WORDS = {"b<a": "better", "b>a": "worse", "tied": "tied", "undecided": "undecided"}


def ablation_verdicts(rows: Sequence[Mapping[str, Any]], *, baseline: str = BASELINE,
                      metrics: Sequence[str] = VERDICT_METRICS, n_spreads: float = 2.0) -> dict[str, dict[str, dict]]:
    """Each ablation against the baseline, metric by metric: ``{label: {metric: result}}`` where
    result is :func:`qinn_lib.evaluation.ensemble_tables.compare_means` (a = baseline, b = ablation) plus ``word``:
    "better" / "worse" (lower / higher by more than ``n_spreads`` combined seed spreads; every
    metric here is lower-is-better), "tied", or "undecided" (a single seed). ``rows`` are
    :func:`qinn_lib.evaluation.ensemble_tables.summarise` rows; metrics a row lacks are skipped."""
    by_label = {r["label"]: r["metrics"] for r in rows}
    if baseline not in by_label:
        raise ValueError(f"ablation_verdicts: no row labelled {baseline!r}; have {sorted(by_label)}")
    base = by_label[baseline]
    out: dict[str, dict[str, dict]] = {}
    for label, row in by_label.items():
        if label == baseline:
            continue
        out[label] = {}
        for m in metrics:
            if m in base and m in row:
                c = compare_means(base[m], row[m], n_spreads=n_spreads)
                out[label][m] = {**c, "word": _WORDS[c["order"]]}
    return out


def format_verdicts(verdicts: Mapping[str, Mapping[str, Mapping[str, Any]]], rows: Sequence[Mapping[str, Any]],
                    metrics: Sequence[str] = VERDICT_METRICS) -> str:
    """Markdown table: one line per ablation, one column per metric, each cell the ablation's seed
    mean, then its verdict against the baseline and the difference in seed spreads."""
    by_label = {r["label"]: r["metrics"] for r in rows}
    lines = ["| ablation | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for label, per_metric in verdicts.items():
        cells = []
        for m in metrics:
            v = per_metric.get(m)
            if v is None:
                cells.append("–")
                continue
            mean = by_label[label][m]["mean"]
            sig = v["significance"]
            spread = f", {sig:+.1f}σ" if math.isfinite(sig) else ""
            cells.append(f"{mean:.4g} ({v['word']}{spread})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
