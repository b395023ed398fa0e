"""How good is a generative model? Distances between generated and true events.

Definitions (stated once, used everywhere):

- **reconstruction deviation** (the paper's ‖(x̂ − x)/x‖ < 2.1 %, sec. 4.2): per test event the
  relative Euclidean error ‖x̃ − x‖₂ / ‖x‖₂ of the round trip x → z → x̃, with x the features
  scaled to [0, π]; reported as mean and median over events. The vector norm is used because the
  element-wise ratio is undefined where a scaled feature is 0 (every feature's minimum maps to 0).
"""

from __future__ import annotations

import numpy as np
import torch


def reconstruction_deviation(x, x_rec) -> dict[str, float]:
    """Mean, median and 95th percentile of ‖x̃ − x‖₂ / ‖x‖₂ over events, plus the per-feature
    mean absolute error in scaled units (radians)."""
    x = _numpy(x, "x")
    x_rec = _numpy(x_rec, "x_rec")
    if x.shape != x_rec.shape:
        raise ValueError(f"x and x_rec must have the same shape, got {x.shape} and {x_rec.shape}")
    finite = np.all(np.isfinite(x_rec), axis=1)
    rel = np.linalg.norm(x_rec[finite] - x[finite], axis=1) / np.linalg.norm(x[finite], axis=1)
    return {
        "mean": float(rel.mean()),
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
        "per_feature_mae": np.abs(x_rec[finite] - x[finite]).mean(axis=0).tolist(),
        "n_nonfinite": int((~finite).sum()),
    }


def _numpy(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (events, features), got shape {a.shape}")
    return a
