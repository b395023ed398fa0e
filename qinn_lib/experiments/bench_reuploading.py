"""Benchmark the re-uploading flow's training step: the gate-by-gate reference, the fast path
eager, and the fast path compiled, for 1, 2 and 3 uploads at Table-1 depth.

``python -m qinn_lib.experiments.bench_reuploading``. A step is what
:func:`qinn_lib.training.loop.train` does per batch for notebook 06's flows: the NLL objective
(eq. 7) on a batch of 128, backward, the Adam step and the a, b projection. The paths are
interleaved round by round so that all see the same share of a loaded machine, and the clock is
the process's CPU time (``time.process_time``; with one thread it is what a step costs this core
even when other processes share the machine), min and median over the steps of all rounds. No
number is asserted: a measurement.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Sequence

import torch

from qinn_lib.experiments.one_model import prepare_data
from qinn_lib.models.qinn.reuploading import ReuploadingFlow
from qinn_lib.threads import torch_threads
from qinn_lib.training.config import ReuploadingRunConfig
from qinn_lib.training.objectives import NLLObjective
from qinn_lib.training.optimiser import make_optimizer

__all__ = ["run_reuploading", "main"]

PATHS = ("gatewise", "fast", "compiled")


def _step(cfg: ReuploadingRunConfig, x: torch.Tensor, path: str) -> tuple[Callable[[], float], ReuploadingFlow]:
    model = ReuploadingFlow.from_config(cfg, n_features=int(x.shape[1]))
    if path == "gatewise":  # the readable reference as the model's NLL map (this instance only)
        model.forward_and_logdet = model.forward_and_logdet_gatewise
    elif path == "compiled":
        model.compile_()
    optimizer = make_optimizer(model, cfg)
    objective = NLLObjective()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = objective(model, x, None)["loss"]
        loss.backward()
        optimizer.step()
        model.constrain_()
        return float(loss.detach())

    return step, model


def run_reuploading(uploads: Sequence[int] = (1, 2, 3), *, n_layers: int = 12, batch_size: int = 128,
                    repeats: int = 30, rounds: int = 3, compile: bool = True, threads: int | None = 1,
                    log=print) -> dict:
    """CPU ms per training step of each path (module docstring) for each upload count."""
    data = prepare_data(8000, 1234)
    x = data.train[:batch_size]
    paths = [p for p in PATHS if compile or p != "compiled"]
    out: dict = {"batch_size": batch_size, "n_layers": n_layers, "threads": threads, "rows": {}}
    with torch_threads(threads):
        steps = {}
        for u in uploads:
            cfg = ReuploadingRunConfig(profile="paper", n_layers=n_layers, uploads=u, batch_size=batch_size)
            for p in paths:
                fn, model = _step(cfg, x, p)
                t0 = time.process_time()
                for _ in range(3):  # warm-up (the compiled path compiles here)
                    fn()
                steps[u, p] = (fn, model, time.process_time() - t0, [])
        for _ in range(rounds):
            for fn, _model, _warm, times in steps.values():
                for _ in range(max(1, repeats // rounds)):
                    t0 = time.process_time()
                    fn()
                    times.append(time.process_time() - t0)
        for (u, p), (_fn, model, warm, times) in steps.items():
            ms = [1e3 * t for t in times]
            row = {"uploads": u, "path": p, "min_ms": min(ms), "median_ms": statistics.median(ms),
                   "steps": len(ms), "warmup_s": warm,
                   "compiled": bool(model.is_compiled) if p == "compiled" else False}
            out["rows"][f"u{u} {p}"] = row
        for u in uploads:
            base = out["rows"][f"u{u} gatewise"]["median_ms"]
            parts = [f"{p} {out['rows'][f'u{u} {p}']['median_ms']:.2f} ms (min {out['rows'][f'u{u} {p}']['min_ms']:.2f}, "
                     f"{base / out['rows'][f'u{u} {p}']['median_ms']:.1f}x)" for p in paths]
            log(f"re-uploading flow, {u} upload(s), {n_layers} layers, batch {batch_size}, CPU ms/step (median): "
                + "; ".join(parts))
            if compile and not out["rows"][f"u{u} compiled"]["compiled"]:
                log("  (the compiled path fell back to eager)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qinn_lib.experiments.bench_reuploading",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per path and upload count")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled path")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.repeats < 3 or args.threads < 1:
        parser.error("--repeats must be >= 3 and --threads >= 1")
    run_reuploading(repeats=args.repeats, compile=not args.no_compile, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
