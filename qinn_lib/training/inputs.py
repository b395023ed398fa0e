"""Checks of the data a training run is given, made by the trainer before its first step.

Training and validation tensors are refused with a :class:`TrainingInputError` naming the tensor
(and the features out of range) if they are not 2-D floating point, are empty, contain NaN/inf,
or, for the training split, hold fewer events than one batch (the last incomplete batch is
dropped, so no step could be taken). They must also lie in the models' input domain
``[0, pi]``: the models take the features scaled as in sec. 3 (:mod:`qinn_lib.events.scaling`),
where the QINN's angle encoding (eq. 12) is one-to-one, and unscaled features (pT in GeV) would
otherwise train silently to nonsense. Validation events may lie somewhat outside
(:data:`VAL_DOMAIN_MARGIN`), since the scaler is fitted on the training split.
"""

from __future__ import annotations

import math

import torch

from qinn_lib.errors import QinnError
from qinn_lib.events.observables import FEATURES
from qinn_lib.events.scaling import SCALED_RANGE

__all__ = ['TrainingInputError']


#: Validation events may lie outside the training range (the scaler is fitted on the training
#: split; a small sample's tails reach further): they must lie within [0, pi] widened by this
#: fraction of its width on each side. Unscaled features (pT in GeV) are far outside.
VAL_DOMAIN_MARGIN = 1.0
#: Training events are the scaler's fitting sample: [0, pi] up to float rounding.
TRAIN_DOMAIN_TOLERANCE = 1e-4


class TrainingInputError(QinnError, ValueError):
    """Training or validation data unusable by the models (shape, size, NaN, outside [0, pi])."""


# -- checks of the data a run is given ----------------------------------------------------------
def _check_data(name: str, x: torch.Tensor, batch_size: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise TrainingInputError(f"{name} must be a 2-D floating-point tensor (events, features), got {shape}")
    if x.shape[0] == 0:
        raise TrainingInputError(f"{name} is empty")
    if batch_size is not None and x.shape[0] < batch_size:
        raise TrainingInputError(
            f"{name} has {x.shape[0]} events, fewer than batch_size={batch_size}; the last incomplete "
            "batch is dropped, so no step could be taken"
        )
    if not bool(torch.isfinite(x).all()):
        raise TrainingInputError(f"{name} contains NaN or inf")


def _check_domain(name: str, x: torch.Tensor, margin: float) -> None:
    """The models take features scaled to [0, pi] (qinn_lib.events.scaling, sec. 3): the QINN
    encodes each as a rotation angle, which is one-to-one only on [0, pi]. Unscaled features (pT
    in GeV) would train silently to nonsense, so refuse them, naming the features out of range."""
    lo, hi = SCALED_RANGE
    pad = margin * (hi - lo)
    x_min, x_max = x.detach().amin(dim=0).tolist(), x.detach().amax(dim=0).tolist()
    out = [j for j in range(x.shape[1]) if x_min[j] < lo - pad or x_max[j] > hi + pad]
    if out:
        label = (lambda j: FEATURES[j]) if x.shape[1] == len(FEATURES) else (lambda j: f"column {j}")
        spans = ", ".join(f"{label(j)} in [{x_min[j]:.4g}, {x_max[j]:.4g}]" for j in out)
        raise TrainingInputError(
            f"{name} is outside the models' input domain [{lo:g}, pi]"
            + (f" (widened by {pad:.3g} for events outside the training range)" if pad > 1e-3 else "")
            + f": {spans}. Scale the features first: AngleScaler.fit(train) and .transform(x) "
            "(qinn_lib.events.scaling), as qinn_lib.experiments.one_model.prepare_data does"
        )


def check_inputs(train_x: torch.Tensor, val_x: torch.Tensor, bs: int, stop_after_epoch: int | None) -> None:
    _check_data("train_x", train_x, bs)
    _check_data("val_x", val_x)
    if val_x.shape[1] != train_x.shape[1]:
        raise TrainingInputError(f"val_x has {val_x.shape[1]} features but train_x has {train_x.shape[1]}")
    _check_domain("train_x", train_x, TRAIN_DOMAIN_TOLERANCE / math.pi)
    _check_domain("val_x", val_x, VAL_DOMAIN_MARGIN)
    if stop_after_epoch is not None and stop_after_epoch < 1:
        raise ValueError(f"stop_after_epoch must be >= 1, got {stop_after_epoch}")
