"""Trained models shipped with the package, write side: which runs ship, training and publishing them.

The paper-profile runs of notebooks 03-06 ship (:func:`default_sets`: the QINN with the MSE and
the fidelity loss, the INNs 2k/6k/16k, notebook 06's ablations and re-uploading flows, 3 seeds
each), and notebook 06's search ships as its study journal (:func:`publish_search`).
:func:`publish` writes finished runs into ``qinn_lib/shipped_models/`` with their manifest
entries: each file an ordinary training checkpoint (:mod:`qinn_lib.training.checkpoints`) without
the optimiser and scheduler state, which only resuming needs, and with the model's behavioural
fingerprint. Every write is one transaction (:mod:`qinn_lib.experiments.swap`): interrupted at
any point, the folder holds a complete set that verifies. Finding, loading and verifying shipped
models is :mod:`qinn_lib.experiments.store`.

Command line (``python -m qinn_lib.shipped ...``):

``list``     what is shipped;
``verify``   every file against its sha256 and every model against its behavioural fingerprint
             (:mod:`qinn_lib.experiments.probe`; seconds);
``recover``  finish or undo what an interrupted ``refresh``/``ship-search`` left (the next one does
             it too; :mod:`qinn_lib.experiments.swap`);
``fingerprint``  record the behavioural fingerprint of models whose entry has none, or one of an older probe version;
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
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from qinn_lib import paths
from qinn_lib.errors import add_debug_option, run_cli
from qinn_lib.experiments import probe, swap
from qinn_lib.experiments.ablations import BASELINE
from qinn_lib.experiments.ensembles import train_runs
from qinn_lib.experiments.plans import comparison_configs, diagnosis_configs, fidelity_vs_mse_configs
from qinn_lib.experiments.search import finished_count, open_study, study_path
from qinn_lib.experiments.store import (
    MANIFEST_NAME,
    SEARCH_SUBDIR,
    ShippedModelError,
    behaviour_of,
    check_set,
    file_sha256,
    find,
    load_checkpoint,
    read_manifest,
    shipped_dir,
    write_manifest,
)
from qinn_lib.settings import MODELS_ENV, check_environment, environment
from qinn_lib.training.checkpoints import check_plain
from qinn_lib.training.checkpoints import load_checkpoint as load_training_checkpoint
from qinn_lib.training.config import ComparisonConfig, DiagnosisConfig, FidelityVsMSEConfig


def publish_search(name: str, folder: Path | None = None, *, log=print) -> str:
    """Ship the journal of study ``name`` from ``build/search`` (its finished trials: all of them,
    or the study is refused), as one transaction (:mod:`qinn_lib.experiments.swap`). Returns the
    file name written."""
    folder = shipped_dir() if folder is None else Path(folder)
    src = study_path(name)
    if not src.is_file():
        raise ShippedModelError(f"no search journal {src} to ship (run notebook 06 first)")
    study = open_study(src, name, 0)
    finished, total = finished_count(study), len(study.get_trials(deepcopy=False))
    if finished != total:
        raise ShippedModelError(f"search {name}: {total - finished} of {total} trials are unfinished; finish the study first")
    file = f"{SEARCH_SUBDIR}/{name}.journal"
    with swap.transaction(folder, log) as txn, open(src, "rb") as fh:
        staged = txn.stage(file, lambda out: shutil.copyfileobj(fh, out))
        txn.put("searches", name, {"file": file, "sha256": file_sha256(staged), "finished": finished,
                                   "created": time.strftime("%Y-%m-%d %H:%M:%S")}, staged)
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
    check_plain(ckpt, "checkpoint")
    return ckpt


def _behaviour(kind: str, config: dict, path: Path) -> str:
    """The behavioural fingerprint of the model in the file ``path`` (:mod:`qinn_lib.experiments.probe`),
    computed as loading it will: built from its configuration, the file's weights loaded."""
    model = probe.build_model(kind, config, where=str(path))
    model.load_state_dict(torch.load(path, weights_only=True)["model"])
    return probe.fingerprint(model)


def publish(trained: dict[str, list], folder: Path | None = None, *, replace_sets: bool = True,
            log=print) -> list[str]:
    """Write the finished runs of ``trained`` (name -> TrainedModels) into the shipped set and its
    manifest, as one transaction (:mod:`qinn_lib.experiments.swap`: the new files beside the old,
    the manifest switched atomically, the superseded files removed last). Entries of the same sets
    that are not among them are dropped when ``replace_sets``. Returns the file names written."""
    folder = shipped_dir() if folder is None else Path(folder)
    for set_name, runs in trained.items():
        for run in runs:
            if len(run.history) < run.cfg.epochs:
                raise ShippedModelError(f"{set_name}: run {run.run_dir} is unfinished ({len(run.history)}/{run.cfg.epochs} epochs)")
    written = []
    with swap.transaction(folder, log) as txn:
        if replace_sets:
            for name, entry in txn.manifest["models"].items():
                if entry.get("set") in trained:
                    txn.drop("models", name)
        for set_name, runs in trained.items():
            for run in runs:
                cfg = run.cfg
                name = f"{cfg.kind}-{cfg.fingerprint()}-{run.data.fingerprint}.pt"
                ckpt = _shippable(run.result.checkpoint)
                # The manifest holds each file's sha256 (checked on load); no sidecar hash file.
                staged = txn.stage(name, lambda fh, ckpt=ckpt: torch.save(ckpt, fh))
                txn.put("models", name, {
                    "key": f"{cfg.kind}-{cfg.fingerprint()}", "set": set_name, "kind": cfg.kind,
                    "sha256": file_sha256(staged), "bytes": staged.stat().st_size,
                    "behaviour": _behaviour(cfg.kind, cfg.to_dict(), staged),
                    "config": cfg.to_dict(), "config_fingerprint": cfg.fingerprint(),
                    "data_fingerprint": run.data.fingerprint, "seed": int(cfg.seed), "epochs": len(run.history),
                    "train_seconds": float(sum(h.get("seconds", 0.0) / h.get("lockstep_members", 1) for h in run.history)),
                    "torch": str(torch.__version__), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                    "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                }, staged)
                written.append(name)
    return written


def add_fingerprints(folder: Path | None = None, *, log=print) -> list[str]:
    """Record the behavioural fingerprint of every model whose entry has none (a manifest written
    before fingerprints) or one of an older probe version, from its file (checked against its
    sha256 first); never changes a file or a current fingerprint. Returns the names fingerprinted."""
    folder = shipped_dir() if folder is None else Path(folder)
    with swap.locked(folder):
        swap.recover(folder, log)
        manifest = read_manifest(folder)
        missing = [name for name, e in manifest["models"].items() if not probe.is_current(e.get("behaviour"))]
        for name in missing:
            entry = manifest["models"][name]
            entry["behaviour"] = probe.fingerprint(behaviour_of(folder, name, entry))
        if missing:
            write_manifest(folder, manifest)
    return missing


def refresh(sets: dict[str, list], folder: Path | None = None, *, reuse_runs: bool = False,
            progress: bool = True, log=print) -> list[str]:
    """Train ``sets`` from scratch (a temporary run folder, deleted afterwards) or, with
    ``reuse_runs``, from the finished runs under :func:`qinn_lib.paths.runs_dir` (training what is
    missing there), and publish them (:func:`publish`)."""
    folder = shipped_dir() if folder is None else Path(folder)
    swap.check_folder(folder)  # before the training, whose results would otherwise be lost with the temporary folder
    if reuse_runs:
        return publish(train_fresh(sets, paths.runs_dir(), progress=progress, log=log), folder, log=log)
    with tempfile.TemporaryDirectory(prefix="qinn-shipped-") as tmp:
        return publish(train_fresh(sets, Path(tmp), progress=progress, log=log), folder, log=log)


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
        raise ShippedModelError(f"--only: unknown set(s) {unknown}; choose from {sorted(sets)}")
    return {name: sets[name] for name in only}


def _verify(folder: Path) -> int:
    problems, notes, worst = check_set(folder)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    for n in notes:
        print(f"note: {n}")
    count = len(read_manifest(folder)["models"])
    if problems:
        print(f"{count} shipped model(s) in {folder}: {len(problems)} problem(s)")
        return 1
    print(f"{count} shipped model(s) in {folder}: all match their sha256 and their behavioural fingerprint "
          f"(largest deviation {worst:.2g} x the tolerance {probe.RTOL:g}, torch {torch.__version__})")
    return 0


def _command(args: argparse.Namespace) -> int:
    check_environment()  # every QINN_* variable, before any work (a relative folder made absolute)
    folder = shipped_dir()
    if args.command == "list":
        manifest = read_manifest(folder)
        for name, e in manifest["models"].items():
            print(f"{e.get('set', '?'):>14}  seed {e.get('seed', '?')}  {e.get('epochs', '?')} epochs  "
                  f"{e.get('bytes', 0) / 1024:6.1f} kB  data {e['data_fingerprint']}  {name}")
        print(f"{len(manifest['models'])} shipped model(s) in {folder}")
        for name, e in manifest.get("searches", {}).items():
            print(f"{'search':>14}  {e['finished']} finished trials  {name}")
        return 0
    if args.command == "ship-search":
        print(f"wrote {publish_search(args.name, folder)} to {folder}; commit it with {MANIFEST_NAME}")
        return 0
    if args.command == "verify":
        return _verify(folder)
    if args.command == "recover":
        with swap.locked(folder):
            done = swap.recover(folder, log=None)
        print("\n".join(done) if done else f"nothing to recover in {folder}")
        return 0
    if args.command == "fingerprint":
        added = add_fingerprints(folder)
        print(f"recorded the behavioural fingerprint of {len(added)} shipped model(s) in {folder}"
              + (f"; commit {MANIFEST_NAME}" if added else " (every model had one)"))
        return 0
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.shipped",
        description="The trained models shipped with the package (qinn_lib/shipped_models/): list them, verify "
                    "their hashes and behaviour, retrain and replace them, or retrain and compare with them.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the shipped models")
    sub.add_parser("verify", help="check every file against its sha256 and every model against its behavioural "
                                  "fingerprint in the manifest")
    sub.add_parser("recover", help="finish or undo what an interrupted refresh or ship-search left")
    sub.add_parser("fingerprint", help="record the behavioural fingerprint of models whose entry has none or an old one")
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
    add_debug_option(parser)
    args = parser.parse_args(argv)
    interrupted = {"refresh": "the shipped set was left complete (the old one, or the new one if it had been "
                              "switched to; `python -m qinn_lib.shipped verify` says which)",
                   "ship-search": "the shipped set was left as it was"}.get(args.command, "")
    return run_cli(lambda: _command(args), prog=parser.prog, debug=args.debug, interrupted=interrupted)

