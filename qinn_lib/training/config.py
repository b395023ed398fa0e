"""Run configurations: one frozen dataclass per kind of run.

A config is three things at once: the papermill parameter set of the notebook
that runs it, the record stored in every checkpoint, and its own validator. Constructing one with
an unknown name or an out-of-range value raises :class:`ConfigError` naming the parameter, so a
typo in ``-p epocs 10`` never silently falls back to a default.

Table 1 of the paper gives every default below unless a comment says otherwise. The INN
column's sizes (spline bins, coupling blocks, subnet layers and width of "2k", "6k" and "16k")
live next to the model they build, in :data:`qinn_lib.models.inn.model.INN_SIZES`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from qinn_lib.errors import QinnError
from qinn_lib.events.sample import split_sizes
from qinn_lib.models.inn.sizes import INN_SIZES
from qinn_lib.paths import PROFILES


class ConfigError(QinnError, ValueError):
    """A run configuration is invalid; the message names the parameter."""


#: A decimal integer as typed on a command line: ``10``, ``-3``, ``010`` (= 10), ``100_000``.
_INT_TEXT = re.compile(r"[+-]?\d+(_\d+)*")


def _spec(default: Any, *, lo: float | None = None, hi: float | None = None,
          choices: tuple | None = None, doc: str = "", path: bool = False, omit_default: bool = False) -> Any:
    """A config field. ``path=True``: a file name; command-line text is resolved against the
    shell's working directory (a notebook kernel runs in notebooks/, so a relative name would
    silently point elsewhere). ``omit_default``: a field added after runs were recorded; while it
    holds its default it is left out of :meth:`RunConfig.to_dict`, hence out of the fingerprint,
    the checkpoint's config record and results files, so every earlier run keeps its identity (its
    run directory, its checkpoint validation, its records)."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc, "path": path, "omit_default": omit_default}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


def _lhe_file() -> Any:
    """The ``lhe_file`` field every notebook configuration has (and every run it trains): a MadGraph
    LHE file (.lhe or .lhe.gz) used instead of the Pythia events; empty = Pythia (and then left out
    of the fingerprint, see :meth:`RunConfig.fingerprint`). A file name, so ``-p all lhe_file
    events.lhe.gz`` is resolved against the shell's directory for every notebook alike."""
    return _spec("", doc="MadGraph events (.lhe or .lhe.gz) used instead of the Pythia sample; '' = Pythia", path=True)


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


@dataclass(frozen=True)
class RunConfig:
    """Base class: validation, dict round-trip, fingerprint."""

    kind: ClassVar[str] = "run"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            self._check_field(f, value)
        self.validate()

    # -- validation -------------------------------------------------------------------------
    def _check_field(self, f: dataclasses.Field, value: Any) -> None:
        name = f"{type(self).__name__}.{f.name}"
        default = _default(f)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be true/false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    object.__setattr__(self, f.name, int(value))
                    value = int(value)
                else:
                    raise ConfigError(f"{name} must be an integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, f.name, float(value))
            value = float(value)
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{name} must be finite, got {value!r}")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or len(value) == 0:
                raise ConfigError(f"{name} must be a non-empty list, got {value!r}")
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a list of numbers, got {value!r}") from None
            object.__setattr__(self, f.name, value)
        meta = f.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ConfigError(f"{name} must be one of {list(meta['choices'])}, got {value!r}")
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, str):
                continue
            if meta.get("lo") is not None and v < meta["lo"]:
                raise ConfigError(f"{name} must be >= {meta['lo']}, got {value!r}")
            if meta.get("hi") is not None and v > meta["hi"]:
                raise ConfigError(f"{name} must be <= {meta['hi']}, got {value!r}")

    def validate(self) -> None:
        """Cross-field checks; subclasses extend."""

    # -- construction and serialisation ---------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_names(cls, names: Any, *, extra: tuple[str, ...] = (), where: str = "") -> None:
        """Raise :class:`ConfigError` if any name is not a field of this config (or in ``extra``)."""
        known = set(cls.field_names()) | set(extra)
        unknown = [n for n in names if n not in known]
        if unknown:
            hints = []
            for n in unknown:
                close = difflib.get_close_matches(n, sorted(known), n=1)
                hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            place = f" in {where}" if where else ""
            raise ConfigError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''}{place} for {cls.__name__}: "
                f"{', '.join(hints)}; known: {sorted(known)}"
            )

    @classmethod
    def parse_text(cls, name: str, text: str, *, where: str = "") -> Any:
        """The value of field ``name`` from command-line ``text`` (``-p NAME VALUE``), parsed
        strictly by the field's type -- never as YAML, whose ``1e-3`` is a string, ``010`` octal 8
        and ``1:30`` sexagesimal 90. Integers: decimal (``010`` is 10) or a float literal of an
        integer (``1e5``); numbers: Python float syntax; lists: comma-separated numbers (brackets
        optional); strings: the text itself; file names (``path`` fields): made absolute against
        the current directory and required to exist. Raises :class:`ConfigError` naming the
        parameter (with a "did you mean" for an unknown name)."""
        cls.check_names([name], where=where)
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        label = f"{where + ': ' if where else ''}{cls.__name__}.{name}"
        text = str(text)
        s = text.strip()
        if isinstance(default, bool):
            words = {"true": True, "false": False}
            if s.lower() not in words:
                raise ConfigError(f"{label} must be true or false, got {text!r}")
            return words[s.lower()]
        if isinstance(default, int):
            if _INT_TEXT.fullmatch(s):
                return int(s)
            try:
                value = float(s)
            except ValueError:
                value = None
            if value is not None and value.is_integer():
                return int(value)
            raise ConfigError(f"{label} must be an integer, got {text!r}")
        if isinstance(default, float):
            try:
                return float(s)
            except ValueError:
                raise ConfigError(f"{label} must be a number, got {text!r}") from None
        if isinstance(default, tuple):
            inner = s[1:-1] if s[:1] + s[-1:] in ("[]", "()") else s
            try:
                return tuple(float(v) for v in inner.split(","))
            except ValueError:
                raise ConfigError(f"{label} must be comma-separated numbers (e.g. 0.1,0.4), got {text!r}") from None
        if f.metadata.get("path") and s:
            path = Path(s).expanduser().resolve()
            if not path.is_file():
                raise ConfigError(f"{label}: file {path} does not exist")
            return str(path)
        return text

    @classmethod
    def from_text(cls, values: dict[str, str], *, where: str = "") -> dict[str, Any]:
        """:meth:`parse_text` of every ``name: text`` pair (the values, not yet a config)."""
        cls.check_names(values, where=where)
        return {name: cls.parse_text(name, text, where=where) for name, text in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "") -> "RunConfig":
        cls.check_names(values, where=where)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every field, except ``omit_default`` fields that hold their default (see :func:`_spec`)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omit_default") and value == _default(f):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> "RunConfig":
        type(self).check_names(changes)
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        values = self.to_dict()
        # Empty lhe_file = the Pythia events: left out, so the field's arrival changed no earlier
        # fingerprint (run folders, shipped models). The events themselves are identified by the
        # data fingerprint, stored next to this one.
        if values.get("lhe_file") == "":
            del values["lhe_file"]
        blob = json.dumps({"kind": self.kind, **values}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _check_profile_field(cfg: Any) -> None:
    if cfg.profile not in PROFILES:
        raise ConfigError(f"{type(cfg).__name__}.profile must be one of {PROFILES}, got {cfg.profile!r}")


@dataclass(frozen=True)
class DataConfig(RunConfig):
    """Parameters of notebook 01 and of ``python -m qinn_lib.events``."""

    kind: ClassVar[str] = "data"
    profile: str = _spec("paper", choices=PROFILES, doc="quick caps counts (see qinn_lib.notebook.profiles)")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000, doc="events after cuts (paper: 100k)")
    seed: int = _spec(1234, lo=1, hi=900_000_000, doc="Pythia random seed (0 would mean: seed from the clock)")
    lhe_file: str = _lhe_file()


@dataclass(frozen=True)
class QINNRunConfig(RunConfig):
    """One QINN training run (Table 1, QINN column)."""

    kind: ClassVar[str] = "qinn"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1)
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    # optimisation
    epochs: int = _spec(200, lo=1, hi=100_000)
    batch_size: int = _spec(128, lo=2, hi=65_536)
    max_lr: float = _spec(1e-3, lo=1e-8, hi=1.0)
    start_factor: float = _spec(4e-2, lo=1e-6, hi=1.0, doc="one-cycle: initial LR = max_lr * start_factor")
    final_factor: float = _spec(1e-4, lo=1e-9, hi=1.0, doc="one-cycle: final LR = max_lr * final_factor")
    # Not stated by the paper; 0.3 is torch's OneCycleLR default, used by every run so far.
    warmup_fraction: float = _spec(0.3, lo=0.01, hi=0.99, omit_default=True,
                                   doc="one-cycle: share of the steps spent rising to max_lr")
    beta1: float = _spec(0.9, lo=0.0, hi=0.999999)
    beta2: float = _spec(0.9, lo=0.0, hi=0.999999)
    # architecture
    n_layers: int = _spec(12, lo=1, hi=200, doc="forward model-circuit layers")
    isp_layers: int = _spec(8, lo=1, hi=200, doc="ISP quantum layers g_Q")
    isp_nn_layers: int = _spec(3, lo=1, hi=20, doc="linear layers of the ISP network g_C")
    isp_hidden: int = _spec(32, lo=1, hi=4096, doc="hidden width of g_C")
    # losses
    invertibility: str = _spec("mse", choices=("mse", "fidelity"), doc="eq. 20 (mse) or eq. 17-18 (fidelity)")
    lambda_inv: float = _spec(10.0, lo=0.0, hi=1e6)
    # Eq. 20 writes (x - x~)^2 without saying how the n features combine; "mean" is the reading
    # used so far (notebook 06 shows that this choice decides the trade-off).
    mse_reduction: str = _spec("mean", choices=("mean", "sum"), omit_default=True,
                               doc="eq. 20 over the features: mean, or sum (||x - x~||^2 = n x mean)")
    lambda_mmd_input: float = _spec(1.0, lo=0.0, hi=1e6)
    lambda_mmd_latent: float = _spec(0.5, lo=0.0, hi=1e6)
    lambda_mz: float = _spec(0.375, lo=0.0, hi=1e6)
    mmd_widths: tuple = _spec((0.02, 0.1, 0.4, 1.0, 5.0), lo=1e-9, hi=1e9)
    # Sec. 2.2 applies MMD "to all training observables": one joint n-dimensional MMD (used so
    # far) or one 1-d MMD per observable, summed.
    mmd_mode: str = _spec("joint", choices=("joint", "per_observable"), omit_default=True,
                          doc="input/latent MMD: joint n-d kernel, or the sum of n 1-d MMDs")
    # numerics and safety
    dtype: str = _spec("float32", choices=("float32", "float64"))
    device: str = _spec("cpu", choices=("cpu", "cuda"))
    max_loss: float = _spec(1e6, lo=1.0, hi=1e30, doc="a batch loss above this (or NaN) stops the run")

    def validate(self) -> None:
        _check_one_cycle(self)
        _check_batch_fits(self)
        if self.mse_reduction != "mean" and self.invertibility != "mse":
            raise ConfigError(f"{type(self).__name__}.mse_reduction applies to invertibility='mse' only, "
                              f"got invertibility={self.invertibility!r}")


def _check_one_cycle(cfg: Any) -> None:
    if cfg.final_factor > cfg.start_factor:
        raise ConfigError(
            f"{type(cfg).__name__}.final_factor ({cfg.final_factor}) must not exceed "
            f"start_factor ({cfg.start_factor}) in a one-cycle schedule"
        )


def _check_batch_fits(cfg: Any) -> None:
    """Refuse, before any data is generated, a batch larger than the training split: the last
    incomplete batch of an epoch is dropped (qinn_lib.training.loop), so no step could be taken. Configs
    without a batch size (notebooks 04, 05) train QINNRunConfig/INNRunConfig runs of Table 1's."""
    n_train = split_sizes(cfg.n_events)[0]
    batch_size = getattr(cfg, "batch_size", QINNRunConfig.batch_size)
    if n_train < batch_size:
        what = (f"batch_size ({batch_size}) exceeds" if hasattr(cfg, "batch_size")
                else f"n_events is too small: its runs' batch of {batch_size} exceeds")
        raise ConfigError(
            f"{type(cfg).__name__}.{what} the {n_train} training events of n_events={cfg.n_events} "
            "(the training split is 37.5 %); " + ("lower batch_size or raise n_events" if hasattr(cfg, "batch_size")
                                                  else f"use n_events >= {math.ceil(batch_size / 0.375)}")
        )


@dataclass(frozen=True)
class INNRunConfig(RunConfig):
    """One classical spline-INN training run (Table 1, INN column)."""

    kind: ClassVar[str] = "inn"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1)
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    size: str = _spec("16k", choices=tuple(INN_SIZES), doc="Table 1 size: 2k, 6k or 16k parameters")
    epochs: int = _spec(200, lo=1, hi=100_000)
    batch_size: int = _spec(128, lo=2, hi=65_536)
    max_lr: float = _spec(1e-3, lo=1e-8, hi=1.0)
    start_factor: float = _spec(4e-2, lo=1e-6, hi=1.0)
    final_factor: float = _spec(1e-4, lo=1e-9, hi=1.0)
    beta1: float = _spec(0.5, lo=0.0, hi=0.999999)
    beta2: float = _spec(0.9, lo=0.0, hi=0.999999)
    lambda_mz: float = _spec(0.5, lo=0.0, hi=1e6)
    mmd_widths: tuple = _spec((0.02, 0.1, 0.4, 1.0, 5.0), lo=1e-9, hi=1e9)
    dtype: str = _spec("float32", choices=("float32", "float64"))
    device: str = _spec("cpu", choices=("cpu", "cuda"))
    max_loss: float = _spec(1e6, lo=1.0, hi=1e30)

    def validate(self) -> None:
        _check_one_cycle(self)
        _check_batch_fits(self)

    @property
    def architecture(self) -> dict[str, int]:
        return dict(INN_SIZES[self.size])


@dataclass(frozen=True)
class CircuitDemoConfig(RunConfig):
    """Notebook 02: the circuit, its inverse and the depth explorer."""

    kind: ClassVar[str] = "circuit_demo"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1)
    n_layers: int = _spec(12, lo=1, hi=200, doc="forward model-circuit layers (paper: 12)")
    isp_layers: int = _spec(8, lo=1, hi=200, doc="ISP quantum layers (paper: 8)")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000, doc="events loaded for the demo fits")
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    fit_steps: int = _spec(300, lo=1, hi=100_000, doc="Adam steps of the quick invertibility fit per depth")
    n_seeds: int = _spec(3, lo=1, hi=20, doc="seeds per depth in the static depth scan (the spread of a fit)")
    max_depth: int = _spec(12, lo=1, hi=64, doc="largest depth in the static depth scan")


@dataclass(frozen=True)
class FidelityVsMSEConfig(RunConfig):
    """Notebook 04: the same QINN trained with the fidelity and with the MSE invertibility loss
    (sec. 4.1, Fig. 5). Every other hyperparameter is Table 1's (QINNRunConfig defaults)."""

    kind: ClassVar[str] = "fidelity_vs_mse"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="first training seed; seeds are seed, seed+1, ...")
    n_seeds: int = _spec(6, lo=1, hi=100, doc="training seeds per loss (6: enough for the tests of sec. 4.1's "
                         "statements by the power estimate on 3 seeds; see notebook 04's parameters cell)")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    epochs: int = _spec(200, lo=1, hi=100_000)
    lambda_mz: float = _spec(0.375, lo=0.0, hi=1e6, doc="the M_Z MMD whose interplay with the fidelity loss sec. 4.1 discusses")

    def validate(self) -> None:
        _check_batch_fits(self)


@dataclass(frozen=True)
class ComparisonConfig(RunConfig):
    """Notebook 05: QINN (MSE loss) against the classical spline INNs of 2k, 6k and 16k parameters
    (sec. 4.2, Fig. 6, Fig. 7, Table 1)."""

    kind: ClassVar[str] = "comparison"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="first training seed; seeds are seed, seed+1, ...")
    n_seeds: int = _spec(6, lo=1, hi=100, doc="training seeds per model (6: see notebook 05's parameters cell)")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    epochs: int = _spec(200, lo=1, hi=100_000)

    def validate(self) -> None:
        _check_batch_fits(self)


@dataclass(frozen=True)
class ReuploadingRunConfig(RunConfig):
    """One NLL-only training of the forward-only data re-uploading flow (notebook 06,
    :mod:`qinn_lib.models.qinn.reuploading`): the QINN's forward map with the input encoded ``uploads`` times.
    Optimiser settings are Table 1's (QINN column)."""

    kind: ClassVar[str] = "reuploading"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1)
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    epochs: int = _spec(200, lo=1, hi=100_000)
    batch_size: int = _spec(128, lo=2, hi=65_536)
    max_lr: float = _spec(1e-3, lo=1e-8, hi=1.0)
    start_factor: float = _spec(4e-2, lo=1e-6, hi=1.0)
    final_factor: float = _spec(1e-4, lo=1e-9, hi=1.0)
    beta1: float = _spec(0.9, lo=0.0, hi=0.999999)
    beta2: float = _spec(0.9, lo=0.0, hi=0.999999)
    n_layers: int = _spec(12, lo=1, hi=200, doc="model-circuit layers in all, split evenly between the uploads")
    uploads: int = _spec(1, lo=1, hi=12, doc="times the input is encoded (1 = the QINN's forward map)")
    dtype: str = _spec("float32", choices=("float32", "float64"))
    device: str = _spec("cpu", choices=("cpu", "cuda"))
    max_loss: float = _spec(1e6, lo=1.0, hi=1e30)

    def validate(self) -> None:
        _check_one_cycle(self)
        _check_batch_fits(self)
        if self.uploads > self.n_layers:
            raise ConfigError(f"{type(self).__name__}.uploads ({self.uploads}) must not exceed n_layers "
                              f"({self.n_layers}): every upload is followed by at least one layer")


@dataclass(frozen=True)
class DiagnosisConfig(RunConfig):
    """Notebook 06: why our QINN misses the paper: the controlled ablations of
    :mod:`qinn_lib.experiments.ablations`, the re-uploading density runs of :mod:`qinn_lib.models.qinn.reuploading` and
    the budgeted search of :mod:`qinn_lib.experiments.search`. Every run uses Table 1's settings unless the
    ablation or the search changes them."""

    kind: ClassVar[str] = "diagnosis"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="first training seed (seeds are seed, seed+1, ...); also seeds the search's sampler")
    n_seeds: int = _spec(6, lo=1, hi=100, doc="training seeds per ablation and per upload count")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    epochs: int = _spec(200, lo=1, hi=100_000, doc="epochs of every ablation and re-uploading run")
    ablation_priority: int = _spec(2, lo=1, hi=3, doc="train the ablations of priority <= this (3: all; see qinn_lib.experiments.ablations)")
    max_uploads: int = _spec(2, lo=1, hi=6, doc="re-uploading runs with 1 .. max_uploads uploads")
    search_trials: int = _spec(8, lo=1, hi=10_000, doc="finished trials of the <= 2.1k-parameter search")
    search_epochs: int = _spec(200, lo=1, hi=100_000, doc="epochs of every search trial (one seed each)")

    def validate(self) -> None:
        _check_batch_fits(self)


@dataclass(frozen=True)
class HardwareRealismConfig(RunConfig):
    """Notebook 07: the QINN of notebook 03 (same training fields, so its run is reloaded) evaluated
    on an emulated quantum computer: finite shots, gate noise, and the cost on a device."""

    kind: ClassVar[str] = "hardware_realism"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="training seed of notebook 03's QINN")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    lhe_file: str = _lhe_file()
    epochs: int = _spec(200, lo=1, hi=100_000)
    n_eval_seeds: int = _spec(3, lo=2, hi=100, doc="evaluation seeds (latent sample, shots); >= 2 for a spread")
    n_generate: int = _spec(50_000, lo=100, hi=10_000_000, doc="generated events per device and seed")
    n_test: int = _spec(50_000, lo=100, hi=10_000_000, doc="test events for the reconstruction and the NLL")
    shots: tuple = _spec((1e2, 1e3, 1e4, 1e5, 1e6), lo=1, hi=1e12, doc="shots per circuit execution")
    noise_levels: tuple = _spec((1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2, 1e-1), lo=0.0, hi=1.0,
                                doc="noise strength p per gate, for each channel")
    shot_rate_hz: float = _spec(1e3, lo=1e-3, hi=1e9, doc="assumed device shot rate, only to convert executions to hours")
    # "On a real device's noise" (the optional [hardware] extra): calibrated IBM device models
    device_backends: str = _spec("FakeTorino,FakeSherbrooke", omit_default=True,
                                 doc="Qiskit fake backends (IBM calibration snapshots), comma-separated")
    device_generate: int = _spec(1_000, lo=2, hi=1_000_000, omit_default=True, doc="events generated on each device model")
    device_test: int = _spec(250, lo=2, hi=1_000_000, omit_default=True,
                             doc="test events reconstructed on each device model (both circuits)")
    device_shots: int = _spec(10_000, lo=1, hi=10_000_000, omit_default=True, doc="shots per event and circuit on a device model")

    def validate(self) -> None:
        _check_batch_fits(self)
        bad = [v for v in self.shots if not float(v).is_integer()]
        if bad:
            raise ConfigError(f"{type(self).__name__}.shots must be whole numbers of shots, got {bad}")
        if not [n for n in self.device_backends.split(",") if n.strip()]:
            raise ConfigError(f"{type(self).__name__}.device_backends must name at least one backend, got "
                              f"{self.device_backends!r}")
