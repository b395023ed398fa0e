"""Trained models shipped with the package, write side: which runs ship, training and publishing them.

The paper-profile runs of notebooks 03-06 ship (:func:`default_sets`: the QINN with the MSE and
the fidelity loss, the INNs 2k/6k/16k, notebook 06's ablations and re-uploading flows, 3 seeds
each), and notebook 06's search ships as its study journal (:func:`publish_search`).
:func:`publish` writes finished runs into ``qinn_lib/shipped_models/`` with their manifest
entries: each file an ordinary training checkpoint (:mod:`qinn_lib.training.checkpoints`) without
the optimiser and scheduler state, which only resuming needs. Finding, loading and verifying
shipped models is :mod:`qinn_lib.experiments.store`.

Command line (``python -m qinn_lib.shipped ...``):

``list``     what is shipped;
``verify``   every file against its sha256 and the manifest (fast);
``ship-search``  ship notebook 06's finished search study from ``build/search``;
``refresh``  train the models from scratch (in a temporary run folder) and replace the shipped set,
             or part of it (``--only qinn-mse inn-16k``); ``--reuse-runs`` takes finished runs
             from ``build/runs`` instead of training them again;
``compare``  train from scratch again and compare with the shipped weights, tensor by tensor
             (same seed, same machine -> identical weights; another machine may differ by
             floating-point rounding, which this reports as the largest difference).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch

from qinn_lib import paths
from qinn_lib.experiments.ablations import BASELINE
from qinn_lib.experiments.ensembles import train_runs
from qinn_lib.experiments.plans import comparison_configs, diagnosis_configs, fidelity_vs_mse_configs
from qinn_lib.experiments.search import finished_count, open_study, study_path
from qinn_lib.experiments.store import (
    MANIFEST_NAME,
    SEARCH_SUBDIR,
    ShippedModelError,
    file_sha256,
    find,
    load_checkpoint,
    read_manifest,
    shipped_dir,
    verify,
    write_manifest,
)
from qinn_lib.settings import MODELS_ENV, environment
from qinn_lib.training.checkpoints import load_checkpoint as load_training_checkpoint
from qinn_lib.training.checkpoints import save_checkpoint
from qinn_lib.training.config import ComparisonConfig, DiagnosisConfig, FidelityVsMSEConfig


def publish_search(name: str, folder: Path | None = None) -> str:
    """Ship the journal of study ``name`` from ``build/search`` (its finished trials: all of them,
    or the study is refused). Returns the file name written."""
    import shutil


    folder = shipped_dir() if folder is None else Path(folder)
    src = study_path(name)
    if not src.is_file():
        raise ShippedModelError(f"no search journal {src} to ship (run notebook 06 first)")
    study = open_study(src, name, 0)
    finished, total = finished_count(study), len(study.get_trials(deepcopy=False))
    if finished != total:
        raise ShippedModelError(f"search {name}: {total - finished} of {total} trials are unfinished; finish the study first")
    with _locked(folder):
        manifest = read_manifest(folder)
        file = f"{SEARCH_SUBDIR}/{name}.journal"
        (folder / SEARCH_SUBDIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / file)
        manifest.setdefault("searches", {})[name] = {
            "file": file, "sha256": file_sha256(folder / file), "finished": finished,
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_manifest(folder, manifest)
    return file


# -- which models ship -----------------------------------------------------------------------------
def default_sets() -> dict[str, list]:
    """The paper-profile runs of notebooks 03-06, by set name: ``qinn-mse`` (notebook 03's run is
    its first seed; notebook 05's QINN; notebook 06's baseline), ``qinn-fidelity``,
    ``inn-2k``/``inn-6k``/``inn-16k``, and notebook 06's ablations and re-uploading flows
    (``06-...``, e.g. ``06-nll-only``, ``06-2-uploads``). Notebook 06's search ships as its study
    journal (:func:`publish_search`)."""
    fid = fidelity_vs_mse_configs(FidelityVsMSEConfig(profile="paper"))
    cmp_ = comparison_configs(ComparisonConfig(profile="paper"))
    sets = {"qinn-mse": fid["QINN (MSE)"], "qinn-fidelity": fid["QINN (fidelity)"]}
    sets.update({label.lower().replace(" ", "-"): cfgs for label, cfgs in cmp_.items() if label.startswith("INN")})
    assert [c.fingerprint() for c in cmp_["QINN"]] == [c.fingerprint() for c in sets["qinn-mse"]], \
        "notebook 05's QINN runs must be notebook 04's MSE runs"
    diag = diagnosis_configs(DiagnosisConfig(profile="paper"))
    # notebook 06 may run fewer seeds than 04/05: its baseline is then the first of 04's MSE runs
    assert [c.fingerprint() for c in diag[BASELINE]] == [c.fingerprint() for c in sets["qinn-mse"][:len(diag[BASELINE])]], \
        "notebook 06's baseline runs must be notebook 04's MSE runs"
    sets.update({_set_name(label): cfgs for label, cfgs in diag.items() if label != BASELINE})
    return sets


def _set_name(label: str) -> str:
    """Set name of a notebook 06 ensemble, e.g. "06-lambda-mz-x-10", "06-2-uploads"."""
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in label.replace("λ", "lambda").replace("×", "x"))
    return "06-" + "-".join(words.lower().split())


def train_fresh(sets: dict[str, list], runs_dir: Path, *, progress: bool = True, log=print) -> dict[str, list]:
    """Train every run of ``sets`` into ``runs_dir`` (reloading finished runs found there), the way
    the notebooks do (INN seeds in lockstep), ignoring shipped models. Returns the TrainedModels."""
    out = {}
    with environment({"QINN_RUNS_DIR": str(runs_dir), MODELS_ENV: "train"}):
        for name, cfgs in sets.items():
            t0 = time.perf_counter()
            out[name] = train_runs(list(cfgs), label=name, progress=progress, log=log)
            log(f"[shipped] {name}: {len(cfgs)} run(s) ready in {time.perf_counter() - t0:.0f} s")
    return out


def _shippable(path: Path) -> dict:

    ckpt = load_training_checkpoint(path)
    ckpt["optimizer"], ckpt["scheduler"] = {}, {}  # only resuming needs these; a shipped run is finished
    ckpt["shipped"] = True
    return ckpt


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise manifest updates of concurrent ``refresh --only ...`` processes."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(trained: dict[str, list], folder: Path | None = None, *, replace_sets: bool = True) -> list[str]:
    """Write the finished runs of ``trained`` (name -> TrainedModels) into the shipped set and its
    manifest. Entries of the same sets that are not among them are dropped when
    ``replace_sets``. Returns the file names written."""
    folder = shipped_dir() if folder is None else Path(folder)
    written = []
    with _locked(folder):
        manifest = read_manifest(folder)
        models = manifest["models"]
        if replace_sets:
            for name in [n for n, e in models.items() if e.get("set") in trained]:
                (folder / name).unlink(missing_ok=True)
                del models[name]
        for set_name, runs in trained.items():
            for run in runs:
                cfg = run.cfg
                if len(run.history) < cfg.epochs:
                    raise ShippedModelError(f"{set_name}: run {run.run_dir} is unfinished ({len(run.history)}/{cfg.epochs} epochs)")
                name = f"{cfg.kind}-{cfg.fingerprint()}-{run.data.fingerprint}.pt"
                save_checkpoint(folder / name, _shippable(run.result.checkpoint))
                # The manifest holds each file's sha256 (checked on load); the training checkpoint's
                # sidecar hash file would only be a second copy that is not package data.
                (folder / f"{name}.sha256").unlink(missing_ok=True)
                models[name] = {
                    "key": f"{cfg.kind}-{cfg.fingerprint()}", "set": set_name, "kind": cfg.kind,
                    "sha256": file_sha256(folder / name), "bytes": (folder / name).stat().st_size,
                    "config": cfg.to_dict(), "config_fingerprint": cfg.fingerprint(),
                    "data_fingerprint": run.data.fingerprint, "seed": int(cfg.seed), "epochs": len(run.history),
                    "train_seconds": float(sum(h.get("seconds", 0.0) / h.get("lockstep_members", 1) for h in run.history)),
                    "torch": str(torch.__version__), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
                written.append(name)
        manifest["models"] = dict(sorted(models.items()))
        write_manifest(folder, manifest)
    return written


def refresh(sets: dict[str, list], folder: Path | None = None, *, reuse_runs: bool = False,
            progress: bool = True, log=print) -> list[str]:
    """Train ``sets`` from scratch (a temporary run folder, deleted afterwards) or, with
    ``reuse_runs``, from the finished runs under :func:`qinn_lib.paths.runs_dir` (training what is
    missing there), and publish them (:func:`publish`)."""
    if reuse_runs:
        return publish(train_fresh(sets, paths.runs_dir(), progress=progress, log=log), folder)
    with tempfile.TemporaryDirectory(prefix="qinn-shipped-") as tmp:
        return publish(train_fresh(sets, Path(tmp), progress=progress, log=log), folder)


def compare(sets: dict[str, list], folder: Path | None = None, *, progress: bool = True, log=print) -> list[dict]:
    """Train ``sets`` from scratch again and compare every weight tensor with the shipped model of
    the same configuration. Returns one row per run: file, identical (bit for bit), the largest
    absolute difference, and the data fingerprints of both."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="qinn-compare-") as tmp:
        trained = train_fresh(sets, Path(tmp), progress=progress, log=log)
        for set_name, runs in trained.items():
            for run in runs:
                entry = find(run.cfg, folder)
                if entry is None:
                    rows.append({"set": set_name, "seed": run.cfg.seed, "file": None, "identical": False,
                                 "max_abs_diff": float("nan"), "note": "not shipped"})
                    continue
                ckpt = load_checkpoint(entry)
                new = run.model.state_dict()
                diffs = [float((new[k].double() - v.double()).abs().max()) if v.numel() else 0.0
                         for k, v in ckpt["model"].items()]
                same = all(torch.equal(new[k], v) for k, v in ckpt["model"].items()) and set(new) == set(ckpt["model"])
                rows.append({"set": set_name, "seed": run.cfg.seed, "file": entry["file"], "identical": same,
                             "max_abs_diff": max(diffs) if diffs else 0.0,
                             "note": "" if entry["data_fingerprint"] == run.data.fingerprint else
                             f"different events: shipped {entry['data_fingerprint']}, here {run.data.fingerprint}"})
    return rows


# -- command line ----------------------------------------------------------------------------------
def _select(only: list[str] | None) -> dict[str, list]:
    sets = default_sets()
    if not only:
        return sets
    unknown = [o for o in only if o not in sets]
    if unknown:
        raise SystemExit(f"python -m qinn_lib.shipped: unknown set(s) {unknown}; choose from {sorted(sets)}")
    return {name: sets[name] for name in only}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.shipped",
        description="The trained models shipped with the package (qinn_lib/shipped_models/): list them, verify "
                    "their hashes, retrain and replace them, or retrain and compare with them.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the shipped models")
    sub.add_parser("verify", help="check every file against its sha256 in the manifest")
    p_search = sub.add_parser("ship-search", help="ship notebook 06's finished search study from build/search")
    p_search.add_argument("name", help="study name, e.g. qinn2k-paper-...-s1234 (the journal's file stem)")
    for name, text in (("refresh", "train from scratch and replace the shipped models"),
                       ("compare", "train from scratch and compare with the shipped weights (nothing is replaced)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--only", nargs="+", metavar="SET", help="only these sets, e.g. qinn-mse inn-16k")
        p.add_argument("--no-progress", action="store_true")
        if name == "refresh":
            p.add_argument("--reuse-runs", action="store_true",
                           help="take finished runs from build/runs (training only what is missing there)")
    args = parser.parse_args(argv)
    folder = shipped_dir()
    try:
        if args.command == "list":
            models = read_manifest(folder)["models"]
            for name, e in models.items():
                print(f"{e['set']:>14}  seed {e['seed']}  {e['epochs']} epochs  {e['bytes'] / 1024:6.1f} kB  "
                      f"data {e['data_fingerprint']}  {name}")
            print(f"{len(models)} shipped model(s) in {folder}")
            for name, e in read_manifest(folder).get("searches", {}).items():
                print(f"{'search':>14}  {e['finished']} finished trials  {name}")
            return 0
        if args.command == "ship-search":
            print(f"wrote {publish_search(args.name, folder)} to {folder}; commit it with {MANIFEST_NAME}")
            return 0
        if args.command == "verify":
            problems = verify(folder)
            for p in problems:
                print(f"error: {p}", file=sys.stderr)
            n = len(read_manifest(folder)["models"])
            print(f"{n} shipped model(s) in {folder}: " + ("all match their sha256" if not problems else f"{len(problems)} problem(s)"))
            return 1 if problems else 0
        sets = _select(args.only)
        if args.command == "refresh":
            written = refresh(sets, folder, reuse_runs=args.reuse_runs, progress=not args.no_progress)
            print(f"wrote {len(written)} shipped model(s) to {folder}; commit them with {MANIFEST_NAME}")
            return 0
        rows = compare(sets, folder, progress=not args.no_progress)
        for r in rows:
            print(f"{r['set']:>14}  seed {r['seed']}: " + ("identical" if r["identical"] else
                  f"DIFFERENT (max |diff| {r['max_abs_diff']:.3g})") + (f"  [{r['note']}]" if r["note"] else ""))
        return 0 if all(r["identical"] for r in rows) else 1
    except ShippedModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

