"""A panel to look inside a trained QINN: notebook 02's second panel.

:func:`available_qinns` lists the QINNs that can be loaded without training: the models shipped
with the package (:mod:`qinn_lib.experiments.store`) and finished runs under ``build/runs`` (for instance
notebook 03's). :func:`load_qinn` loads one with its events (checked against the data fingerprint
it was trained on). :class:`ModelViewer` shows, for the loaded model, generated against true
M_ll and Delta R, and for one chosen test event its full Jacobian dz/dx and its round trip
x -> z -> x~ through the learned inverse (sec. 3.1).

Every candidate's label says what tells it from the others (its shipped set, e.g. notebook 06's
ablation ``06-no-latent-mmd``, and every setting that differs from Table 1); the first candidate
is selected, so **load** always loads something; an error while loading, or an event index
outside the test split, is shown in the panel's status line.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qinn_lib import paths
from qinn_lib.events.observables import FEATURE_LABELS, FEATURES, OBSERVABLE_LABELS, reconstruct
from qinn_lib.experiments import store
from qinn_lib.experiments.one_model import TrainedModel, data_key, prepare_data
from qinn_lib.models.qinn.model import QINN
from qinn_lib.notebook.plots import hist_with_ratio
from qinn_lib.notebook.widgets import (
    BackgroundJob,
    error_html,
    figure_png,
    image,
    label_html,
    new_figure,
    panel_bundle,
    show_png,
    text_color_for,
)
from qinn_lib.training.checkpoints import CHECKPOINT_NAME, CheckpointError, load_checkpoint, load_trained
from qinn_lib.training.config import ConfigError, QINNRunConfig
from qinn_lib.training.loop import TrainResult

#: Fields a label shows anyway (:func:`_describe`) or that never tell two QINNs apart.
_SHOWN_FIELDS = ("profile", "seed", "epochs", "n_events", "lhe_file", "invertibility")


@dataclass(frozen=True)
class Candidate:
    """A loadable QINN."""

    label: str
    source: str  #: "shipped" or "run"
    cfg: Any  #: QINNRunConfig
    path: Path
    entry: dict | None = None  #: the shipped manifest entry


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def differences(cfg) -> str:
    """The settings of ``cfg`` that differ from Table 1's (:class:`QINNRunConfig` defaults), besides
    the ones every label shows, e.g. ``"lambda_mz=0, n_layers=24"``; "" for Table 1 itself."""
    table1 = QINNRunConfig()
    return ", ".join(f"{name}={_value_text(getattr(cfg, name))}" for name in QINNRunConfig.field_names()
                     if name not in _SHOWN_FIELDS and getattr(cfg, name) != getattr(table1, name))


def _describe(cfg, epochs: int, group: str = "") -> str:
    lhe = f", events {Path(cfg.lhe_file).name}" if cfg.lhe_file else ""
    diff = differences(cfg)
    what = f"{group}: " if group else ""
    return (f"{what}QINN {cfg.invertibility}, seed {cfg.seed}, {epochs} epochs, {cfg.n_events:,} events{lhe}"
            + (f"; {diff}" if diff else "; all else as Table 1"))


def available_qinns() -> list[Candidate]:
    """Shipped QINNs first (Table 1's own first, then by how many settings differ from it, set and
    seed), then finished QINN runs under :func:`qinn_lib.paths.runs_dir`. Labels are unique: two
    candidates that a label could not tell apart get their configuration fingerprint appended."""
    out = []
    shipped = []
    for name, entry in store.read_manifest()["models"].items():
        if entry.get("kind") == "qinn":
            cfg = QINNRunConfig.from_dict(entry["config"])
            diff = differences(cfg)
            shipped.append(((0 if not diff else diff.count("=")), cfg.invertibility != "mse", entry.get("set", ""),
                            cfg.seed, name, entry, cfg))
    for *_, name, entry, cfg in sorted(shipped, key=lambda item: item[:5]):
        out.append(Candidate(f"shipped {_describe(cfg, entry['epochs'], entry.get('set', ''))}", "shipped", cfg,
                             store.shipped_dir() / name, dict(entry, file=name, folder=str(store.shipped_dir()))))
    for path in sorted(paths.runs_dir().glob(f"qinn-*/{CHECKPOINT_NAME}")):
        try:
            ckpt = load_checkpoint(path)
            cfg = QINNRunConfig.from_dict(ckpt["cfg"])
        except (CheckpointError, ConfigError, TypeError):
            continue  # another format or an old configuration: not loadable here
        if int(ckpt["epoch"]) >= cfg.epochs:
            out.append(Candidate(f"build/runs ({cfg.profile}): {_describe(cfg, int(ckpt['epoch']))}", "run", cfg, path))
    counts: dict[str, int] = {}
    for c in out:
        counts[c.label] = counts.get(c.label, 0) + 1
    return [c if counts[c.label] == 1 else Candidate(f"{c.label} [{c.cfg.fingerprint()}]", c.source, c.cfg, c.path, c.entry)
            for c in out]


def load_qinn(candidate: Candidate):
    """The :class:`qinn_lib.experiments.one_model.TrainedModel` of ``candidate``, with the events it was trained on."""
    cfg = candidate.cfg
    data = prepare_data(*data_key(cfg))
    model = QINN.from_config(cfg).to(device=cfg.device)
    if candidate.source == "shipped":
        ckpt = store.load_into(model, candidate.entry, expected_cfg=cfg, expected_fingerprint=data.fingerprint)
    else:
        ckpt = load_trained(model, candidate.path, expected_cfg=cfg, expected_fingerprint=data.fingerprint)
    model.eval()
    result = TrainResult(history=list(ckpt["history"]), checkpoint=candidate.path, seconds=0.0, epochs_run=0,
                         resumed_from=int(ckpt["epoch"]), extra_state=ckpt["extra_state"])
    return TrainedModel(cfg, model, data, result, candidate.path.parent, shipped=candidate.source == "shipped")


def distributions_figure(truth: dict, generated: dict):
    """Generated against true M_ll and Delta R with ratio panels (a Figure, thread-safe)."""
    fig = new_figure(8.4, 3.8)
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1], hspace=0.06, wspace=0.3)
    for col, (key, rng) in enumerate((("m_ll", (75.0, 105.0)), ("delta_r", (0.0, 6.0)))):
        ax = fig.add_subplot(grid[0, col])
        rax = fig.add_subplot(grid[1, col], sharex=ax)
        hist_with_ratio(truth[key], {"QINN": generated[key]}, bins=40, range=rng, xlabel=OBSERVABLE_LABELS[key],
                        axes=(ax, rax))
        ax.tick_params(labelbottom=False)
    return fig


def event_figure(jacobian: np.ndarray, x: np.ndarray, x_rec: np.ndarray):
    """One event: its Jacobian dz/dx as a heat map, and x against its round trip x~ (scaled)."""
    fig = new_figure(8.4, 3.0)
    ax_j, ax_r = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    vmax = float(np.abs(jacobian).max()) or 1.0
    im = ax_j.imshow(jacobian, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    short = [FEATURE_LABELS[f].split(" [")[0] for f in FEATURES]
    ax_j.set_xticks(range(len(short)), short, rotation=45)
    ax_j.set_yticks(range(jacobian.shape[0]), [f"$z_{i}$" for i in range(jacobian.shape[0])])
    for (i, j), v in np.ndenumerate(jacobian):  # white on dark cells, black on light ones
        ax_j.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                  color=text_color_for(im.cmap(im.norm(v))))
    fig.colorbar(im, ax=ax_j, label=r"$\partial z_i / \partial x_j$")
    sign, logdet = np.linalg.slogdet(jacobian)
    ax_j.set_title(f"Jacobian, log|det J| = {logdet:.3f}")
    pos = np.arange(len(short))
    ax_r.bar(pos - 0.2, x, width=0.4, label="x (scaled to [0, π])")
    ax_r.bar(pos + 0.2, x_rec, width=0.4, label=r"$\tilde x$ = inverse(forward(x))")
    ax_r.set_xticks(pos, short, rotation=45)
    dev = np.linalg.norm(x_rec - x) / np.linalg.norm(x)
    ax_r.set_title(f"round trip: ‖x̃ − x‖/‖x‖ = {100 * dev:.2f} %")
    ax_r.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reconstruction_table(x_phys: np.ndarray, x_rec_phys: np.ndarray) -> str:
    """HTML table of one event in physical units: x, x~ and their difference per feature."""
    rows = "".join(
        f"<tr><td>{label_html(FEATURE_LABELS[f])}</td><td>{a:.4f}</td><td>{b:.4f}</td><td>{b - a:+.4f}</td></tr>"
        for f, a, b in zip(FEATURES, x_phys, x_rec_phys))
    return ("<table><tr><th>feature</th><th>x</th><th>x̃ (round trip)</th><th>x̃ − x</th></tr>"
            f"{rows}</table>")


class ModelViewer:
    """The panel: choose a QINN, load it (in the background), then choose a test event."""

    def __init__(self, *, n_generate: int = 20_000, seed: int = 1):
        import ipywidgets as w

        self.n_generate, self.seed = int(n_generate), int(seed)
        self.trained = None
        self.candidates: list[Candidate] = []
        self.choice = w.Dropdown(description="model", layout=w.Layout(width="760px"))
        self.refresh_button = w.Button(description="refresh list", icon="refresh")
        self.load_button = w.Button(description="load", button_style="primary", icon="download")
        self.job = BackgroundJob("loading the model")
        # Not a BoundedIntText: that one silently clamps an index out of range to its bounds.
        self.event = w.IntText(value=0, description="test event", disabled=True)
        self.event_note = w.HTML()
        self.distributions = image()
        self.event_plot = image()
        self.table = w.HTML()
        self.refresh_button.on_click(lambda *_: self._guarded("refresh", self.refresh))
        self.load_button.on_click(lambda *_: self._guarded("load", self.load))
        self.event.observe(lambda *_: self._guarded("show the event", self.show_event), names="value")
        self.widget = w.VBox([
            w.HBox([self.choice, self.refresh_button]),
            w.HBox([self.load_button, self.job.stop, self.job.progress]), self.job.status,
            self.distributions, w.HBox([self.event, self.event_note]), self.event_plot, self.table,
        ])
        self.refresh()

    def _repr_mimebundle_(self, **kwargs):
        return panel_bundle(self.widget, "the trained-QINN viewer",
                            "choose a trained QINN, load it, and look at its generated M_ll and Delta R, "
                            "one test event's Jacobian and its round trip through the inverse", **kwargs)

    def _guarded(self, what: str, action) -> None:
        """Run a button's or a field's action; an exception is shown in the status line (an
        ipywidgets callback's exception would only reach the kernel's log)."""
        try:
            action()
        except Exception as exc:  # shown in the panel, not swallowed
            self.job.status.value = error_html(f"{what} failed", exc)

    def refresh(self) -> None:
        """List the loadable QINNs again (e.g. after notebook 03 trained one); the first is selected."""
        self.candidates = available_qinns()
        self.choice.options = [(c.label, i) for i, c in enumerate(self.candidates)]
        if self.candidates and self.choice.value is None:
            self.choice.value = 0  # ipywidgets 8 leaves a Dropdown unselected when its options change
        self.load_button.disabled = not self.candidates
        self.job.status.value = (
            f"{len(self.candidates)} trained QINN(s) to look at: choose one and press <b>load</b>" if self.candidates else
            "No trained QINN to look at yet: the package ships none in this version "
            "(<code>python -m qinn_lib.shipped list</code>), and build/runs holds no finished QINN run. "
            "Train one with notebook 03, then press <b>refresh list</b>.")

    def load(self, index: int | None = None):
        """Load the chosen model (``index`` into :attr:`candidates`, default: the dropdown's choice)
        and draw its distributions, in the background."""
        if self.job.running or not self.candidates:
            return None
        index = self.choice.value if index is None else index
        if index is None or not 0 <= int(index) < len(self.candidates):
            self.job.status.value = error_html("load", f"no model chosen (choose one of the {len(self.candidates)} above)")
            return None
        candidate = self.candidates[int(index)]

        def work(report, stopped):

            report(0, 3, f"loading {html.escape(candidate.label)} and its events ...")
            trained = load_qinn(candidate)
            if stopped():
                return None
            report(1, 3, f"generating {self.n_generate:,} events ...")
            n = min(self.n_generate, len(trained.data.sample.test))
            generated = reconstruct(trained.generate(n, seed=self.seed))
            truth = reconstruct(trained.data.sample.test)
            report(2, 3, "drawing ...")
            return trained, figure_png(distributions_figure(truth, generated)), n

        def done(result):
            if result is None:
                self.job.status.value = "loading stopped"
                return
            self.trained, png, n = result
            show_png(self.distributions, png)
            self.event.disabled = False
            self.job.status.value = (f"loaded {html.escape(candidate.label)} ({'shipped model' if self.trained.shipped else candidate.path}): "
                                     f"{n:,} generated events against the {len(self.trained.data.sample.test):,} test events")
            self.show_event()

        return self.job.start(work, done, button=self.load_button, total=3)

    def show_event(self) -> None:
        """Jacobian and round trip of the chosen test event; an index outside the test split is
        named in the note beside the field (the picture of the last valid event stays)."""
        if self.trained is None:
            return
        model, data = self.trained.model, self.trained.data
        k, n = self.event.value, len(data.test)
        if not 0 <= k < n:
            self.event_note.value = error_html("", f"test event {k} does not exist: choose 0 to {n - 1:,}")
            return
        self.event_note.value = f"of 0 to {n - 1:,}"
        x = data.test[k:k + 1]
        with torch.no_grad():
            jac = model.jacobian(x)[0].double().numpy()
            x_rec = self.trained.reconstruct(x)
        xs, xr = x[0].double().numpy(), x_rec[0].double().numpy()
        show_png(self.event_plot, figure_png(event_figure(jac, xs, xr)))
        phys = data.scaler.inverse(np.stack([xs, xr]))
        self.table.value = reconstruction_table(phys[0], phys[1])

    def wait(self, timeout: float | None = None) -> None:
        self.job.wait(timeout)
