"""Run configurations: one frozen dataclass per kind of run.

A config is three things at once (see DEVELOPERS.md): the papermill parameter set of the notebook
that runs it, the record stored in every checkpoint, and its own validator. Constructing one with
an unknown name or an out-of-range value raises :class:`ConfigError` naming the parameter, so a
typo in ``-p epocs 10`` never silently falls back to a default.

Table 1 of the paper gives every default below unless a comment says otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .paths import PROFILES


class ConfigError(ValueError):
    """A run configuration is invalid; the message names the parameter."""


def _spec(default: Any, *, lo: float | None = None, hi: float | None = None,
          choices: tuple | None = None, doc: str = "") -> Any:
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


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
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
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
    def from_dict(cls, values: dict[str, Any], *, where: str = "") -> "RunConfig":
        cls.check_names(values, where=where)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def replace(self, **changes: Any) -> "RunConfig":
        type(self).check_names(changes)
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        blob = json.dumps({"kind": self.kind, **self.to_dict()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _check_profile_field(cfg: Any) -> None:
    if cfg.profile not in PROFILES:
        raise ConfigError(f"{type(cfg).__name__}.profile must be one of {PROFILES}, got {cfg.profile!r}")


@dataclass(frozen=True)
class DataConfig(RunConfig):
    """Parameters of notebook 01 and of ``python -m qinn_lib.data``."""

    kind: ClassVar[str] = "data"
    profile: str = _spec("paper", choices=PROFILES, doc="quick caps counts (see qinn_lib.profiles)")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000, doc="events after cuts (paper: 100k)")
    seed: int = _spec(1234, lo=1, hi=900_000_000, doc="Pythia random seed (0 would mean: seed from the clock)")
    lhe_file: str = _spec("", doc="optional MadGraph LHE file used instead of Pythia")


@dataclass(frozen=True)
class QINNRunConfig(RunConfig):
    """One QINN training run (Table 1, QINN column)."""

    kind: ClassVar[str] = "qinn"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1)
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    # optimisation
    epochs: int = _spec(200, lo=1, hi=100_000)
    batch_size: int = _spec(128, lo=2, hi=65_536)
    max_lr: float = _spec(1e-3, lo=1e-8, hi=1.0)
    start_factor: float = _spec(4e-2, lo=1e-6, hi=1.0, doc="one-cycle: initial LR = max_lr * start_factor")
    final_factor: float = _spec(1e-4, lo=1e-9, hi=1.0, doc="one-cycle: final LR = max_lr * final_factor")
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
    lambda_mmd_input: float = _spec(1.0, lo=0.0, hi=1e6)
    lambda_mmd_latent: float = _spec(0.5, lo=0.0, hi=1e6)
    lambda_mz: float = _spec(0.375, lo=0.0, hi=1e6)
    mmd_widths: tuple = _spec((0.02, 0.1, 0.4, 1.0, 5.0), lo=1e-9, hi=1e9)
    # numerics and safety
    dtype: str = _spec("float32", choices=("float32", "float64"))
    device: str = _spec("cpu", choices=("cpu", "cuda"))
    max_loss: float = _spec(1e6, lo=1.0, hi=1e30, doc="a batch loss above this (or NaN) stops the run")

    def validate(self) -> None:
        if self.final_factor > self.start_factor:
            raise ConfigError(
                f"{type(self).__name__}.final_factor ({self.final_factor}) must not exceed "
                f"start_factor ({self.start_factor}) in a one-cycle schedule"
            )


#: Table 1, INN column: spline bins / coupling blocks / layers per subnet / hidden width per size.
INN_SIZES: dict[str, dict[str, int]] = {
    "2k": {"bins": 5, "blocks": 6, "subnet_layers": 3, "hidden": 8},
    "6k": {"bins": 8, "blocks": 9, "subnet_layers": 3, "hidden": 12},
    "16k": {"bins": 8, "blocks": 10, "subnet_layers": 3, "hidden": 24},
}


@dataclass(frozen=True)
class INNRunConfig(RunConfig):
    """One classical spline-INN training run (Table 1, INN column)."""

    kind: ClassVar[str] = "inn"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1)
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
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
        QINNRunConfig.validate(self)  # same one-cycle constraint

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
    fit_steps: int = _spec(300, lo=1, hi=100_000, doc="Adam steps of the quick invertibility fit per depth")
    max_depth: int = _spec(12, lo=1, hi=64, doc="largest depth in the static depth scan")


@dataclass(frozen=True)
class FidelityVsMSEConfig(RunConfig):
    """Notebook 04: the same QINN trained with the fidelity and with the MSE invertibility loss
    (sec. 4.1, Fig. 5). Every other hyperparameter is Table 1's (QINNRunConfig defaults)."""

    kind: ClassVar[str] = "fidelity_vs_mse"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="first training seed; seeds are seed, seed+1, ...")
    n_seeds: int = _spec(3, lo=1, hi=100, doc="training seeds per loss (bands and mean ± std)")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    epochs: int = _spec(200, lo=1, hi=100_000)
    lambda_mz: float = _spec(0.375, lo=0.0, hi=1e6, doc="the M_Z MMD whose interplay with the fidelity loss sec. 4.1 discusses")


@dataclass(frozen=True)
class ComparisonConfig(RunConfig):
    """Notebook 05: QINN (MSE loss) against the classical spline INNs of 2k, 6k and 16k parameters
    (sec. 4.2, Fig. 6, Fig. 7, Table 1)."""

    kind: ClassVar[str] = "comparison"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="first training seed; seeds are seed, seed+1, ...")
    n_seeds: int = _spec(3, lo=1, hi=100)
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    epochs: int = _spec(200, lo=1, hi=100_000)


@dataclass(frozen=True)
class HardwareRealismConfig(RunConfig):
    """Notebook 07: the QINN of notebook 03 (same training fields, so its run is reloaded) evaluated
    on an emulated quantum computer: finite shots, gate noise, and the cost on a device."""

    kind: ClassVar[str] = "hardware_realism"
    profile: str = _spec("paper", choices=PROFILES)
    seed: int = _spec(1234, lo=0, hi=2**31 - 1, doc="training seed of notebook 03's QINN")
    n_events: int = _spec(100_000, lo=100, hi=10_000_000)
    data_seed: int = _spec(1234, lo=1, hi=900_000_000)
    epochs: int = _spec(200, lo=1, hi=100_000)
    n_eval_seeds: int = _spec(3, lo=2, hi=100, doc="evaluation seeds (latent sample, shots); >= 2 for a spread")
    n_generate: int = _spec(50_000, lo=100, hi=10_000_000, doc="generated events per device and seed")
    n_test: int = _spec(50_000, lo=100, hi=10_000_000, doc="test events for the reconstruction and the NLL")
    shots: tuple = _spec((1e2, 1e3, 1e4, 1e5, 1e6), lo=1, hi=1e12, doc="shots per circuit execution")
    noise_levels: tuple = _spec((1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2, 1e-1), lo=0.0, hi=1.0,
                                doc="noise strength p per gate, for each channel")
    shot_rate_hz: float = _spec(1e3, lo=1e-3, hi=1e9, doc="assumed device shot rate, only to convert executions to hours")

    def validate(self) -> None:
        bad = [v for v in self.shots if not float(v).is_integer()]
        if bad:
            raise ConfigError(f"{type(self).__name__}.shots must be whole numbers of shots, got {bad}")
