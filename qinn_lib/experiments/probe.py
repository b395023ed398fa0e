"""The behavioural fingerprint of a shipped model: what it computes on a fixed probe batch.

A file's sha256 says the bytes are the ones published; it cannot say that the model still
*behaves* as published: weights changed together with their manifest entry (the sha256 edited
to match), or a torch version whose kernels compute differently, load without a word. So every
shipped model records its outputs on a fixed, seeded probe batch, checked on load and by
``python -m qinn_lib.shipped verify``:

* ``PROBE_EVENTS`` (8) inputs ``x`` drawn uniformly in ``[0, pi]^n`` (the scaled feature space of
  :class:`qinn_lib.events.scaling.AngleScaler`, where the training events live), seed ``PROBE_SEED``;
* the forward pass ``z, log|det dz/dx| = f(x)`` (eq. 5-7: what the NLL sees), and for the
  invertible models (QINN, INN) the inverse ``f^-1(w)`` of 8 latent points ``w ~ N(0, 1)`` (what
  generation does; the QINN's inverse runs through the ISP circuit and network, sec. 3.2, which
  the forward pass never touches).

The probe runs on a float64 copy of the model, whatever precision it trains in. In float32 the
same weights gave outputs that differ between CPUs by rounding alone: on an AMD EPYC, 15 of the
96 models published on another machine were off by more than a tenth of the tolerance, the
float32 re-uploading flow by 0.56 of it (version 1 of the probe, which ran the model in its own
precision). In float64 a re-evaluation agrees to ~1e-12 on any machine, so what the check sees is
the weights and the arithmetic, not the CPU's vector width.

The outputs are stored as float32 (base64, ~0.5 kB a model, so the manifest stays small) and
compared with ``|new - stored| <= ATOL + RTOL * |stored|``. The tolerance (1e-5) is far above
the rounding of a float64 re-evaluation (~1e-12) and of the float32 storage (~6e-8 relative) and
far below what a changed weight does (an altered ISP weight moves the reconstruction from 0.077
to 0.274): a deviation above it means the weights were altered, or this torch version computes
differently from the one that published the model. A fingerprint recorded by an older version of
the probe is re-recorded from its file by ``python -m qinn_lib.shipped fingerprint`` (the file is
checked against its sha256 first).
"""

from __future__ import annotations

import base64
import copy
import math
from typing import Any

import numpy as np
import torch

from qinn_lib.models.inn.model import INN
from qinn_lib.models.qinn.model import QINN
from qinn_lib.models.qinn.reuploading import ReuploadingFlow
from qinn_lib.training.config import INNRunConfig, QINNRunConfig, ReuploadingRunConfig

PROBE_SEED = 20230414  # the paper's arXiv date; any fixed number would do
PROBE_EVENTS = 8
#: Tolerance of the comparison (see the module docstring).
RTOL = 1e-5
ATOL = 1e-5
#: Version of the probe (inputs, outputs, encoding); bumped if any of them changes.
#: 2: the model evaluated in float64 (1: in its own precision, see the module docstring).
VERSION = 2
#: Feature count of the shipped models (the five observables of qinn_lib.events.observables).
N_FEATURES = 5

_CONFIGS = {"qinn": QINNRunConfig, "inn": INNRunConfig, "reuploading": ReuploadingRunConfig}
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def build_model(kind: str, config: dict[str, Any], *, where: str = "") -> torch.nn.Module:
    """A fresh model of ``kind`` (``qinn``, ``inn``, ``reuploading``) built from a stored
    configuration, as :mod:`qinn_lib.experiments.one_model` builds it for training."""
    if kind not in _CONFIGS:
        raise KeyError(f"{where}: unknown model kind {kind!r}; expected one of {sorted(_CONFIGS)}")
    cfg = _CONFIGS[kind].from_dict(config, where=where)
    if kind == "qinn":
        return QINN.from_config(cfg).to(device=cfg.device)
    if kind == "inn":
        return INN.from_config(cfg).to(device=cfg.device, dtype=_DTYPES[cfg.dtype])
    return ReuploadingFlow.from_config(cfg, n_features=N_FEATURES)


def _inputs(n_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(PROBE_SEED)
    x = math.pi * torch.rand((PROBE_EVENTS, n_features), generator=gen, dtype=torch.float64)
    w = torch.randn((PROBE_EVENTS, n_features), generator=gen, dtype=torch.float64)
    return x, w


@torch.no_grad()
def outputs(model: torch.nn.Module) -> np.ndarray:
    """The outputs of a float64 copy of ``model`` on the probe batch, flattened: z, log|det|, and
    f^-1(w) for an invertible model. ``model`` itself is left as it was (precision and mode)."""
    n = int(getattr(model, "n_features", N_FEATURES))
    device = next(model.parameters()).device
    twin = copy.deepcopy(model).to(dtype=torch.float64).eval()
    x, w = (t.to(device=device) for t in _inputs(n))
    z, logdet = twin.forward_and_logdet(x)
    parts = [z.reshape(-1), logdet.reshape(-1)]
    if hasattr(twin, "inverse"):
        parts.append(twin.inverse(w).reshape(-1))
    return torch.cat([t.detach().cpu().double() for t in parts]).numpy()


def is_current(text: str | None) -> bool:
    """Whether ``text`` is a fingerprint of this version of the probe."""
    return bool(text) and str(text).startswith(f"v{VERSION}:")


def encode(values: np.ndarray) -> str:
    """``v<VERSION>:<base64 of the float32 values>``: the manifest's ``behaviour`` field."""
    return f"v{VERSION}:" + base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode("ascii")


def decode(text: str) -> np.ndarray:
    version, _, blob = str(text).partition(":")
    if version != f"v{VERSION}" or not blob:
        raise ValueError(f"not a version-{VERSION} behavioural fingerprint: {str(text)[:24]!r}")
    return np.frombuffer(base64.b64decode(blob, validate=True), dtype="<f4").astype(np.float64)


def fingerprint(model: torch.nn.Module) -> str:
    """The ``behaviour`` field of ``model``'s manifest entry."""
    return encode(outputs(model))


def deviation(model: torch.nn.Module, recorded: str) -> float:
    """How far ``model`` is from its recorded fingerprint, in units of the tolerance: ``<= 1`` is
    a match; ``inf`` when the outputs differ in shape or are not finite."""
    ref = decode(recorded)
    new = outputs(model)
    if new.shape != ref.shape or not np.all(np.isfinite(new)):
        return math.inf
    return float(np.max(np.abs(new - ref) / (ATOL + RTOL * np.abs(ref)))) if ref.size else 0.0
