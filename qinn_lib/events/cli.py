"""``python -m qinn_lib.events``: generate (or load) the event sample and print a summary.

``python -m qinn_lib.events --n-events 100000 --seed 1234 [--cache-dir DIR] [--regenerate]``
loads the Pythia sample from the cache (:func:`qinn_lib.events.cache.load_events`) and generates
it first if it is not there. ``--lhe FILE`` reads a user's LHE file instead
(:func:`~qinn_lib.events.cache.load_lhe_events`). The summary gives the split sizes, the
fingerprint, the cut efficiency, the cross-section before and after the cuts, the lepton
flavours and the time taken. Arguments are checked (Pythia's seed range included) before
anything runs.
"""

from __future__ import annotations

import argparse
from typing import Iterable

from qinn_lib.errors import add_debug_option, run_cli
from qinn_lib.events.cache import load_events, load_lhe_events
from qinn_lib.events.pythia import SEED_RANGE
from qinn_lib.events.sample import EventSample
from qinn_lib.settings import check_environment


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    lo, hi = SEED_RANGE
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"seed must be in [{lo}, {hi}] (Pythia's range), got {value}")
    return value


def _summary(sample: EventSample) -> Iterable[str]:
    m = sample.meta
    yield (f"events     : {sample.n_events} (train {len(sample.train)}, val {len(sample.val)}, "
           f"test {len(sample.test)}), fingerprint {sample.fingerprint}")
    yield f"source     : {m.get('generator')} {m.get('version', '')}".rstrip() + (
        f", seed {m['seed']}" if "seed" in m else f", {m.get('source')}")
    n_total = m.get("n_generated", m.get("n_read"))
    eff_err = f" +- {m['cut_efficiency_err']:.4f}" if "cut_efficiency_err" in m else ""
    yield f"efficiency : {m['cut_efficiency']:.4f}{eff_err} ({m['n_passed']} of {n_total} pass the cuts)"
    if "n_no_lepton_pair" in m and m["n_no_lepton_pair"]:
        yield f"no l+l- pair: {m['n_no_lepton_pair']} events skipped"
    sig_err = f" +- {m['sigma_err_pb']:.4g}" if "sigma_err_pb" in m else ""
    yield f"sigma      : {m['sigma_pb']:.4g}{sig_err} pb before cuts, {m['sigma_fiducial_pb']:.4g} pb after cuts"
    if m.get("weights_uniform") is False:
        yield (f"weights    : unequal; sigma after cuts uses the weighted fraction passing "
               f"({m['cut_efficiency_weighted']:.4f}); the features are an unweighted sample")
    yield f"flavours   : {m.get('n_ee')} ee, {m.get('n_mumu')} mumu"
    if m.get("loaded_from_cache"):
        yield f"time       : loaded from cache in {m['load_seconds']:.2f} s (generation took {m['seconds']:.1f} s)"
    else:
        yield f"time       : {m['seconds']:.2f} s"
    if "cache_file" in m:
        yield f"cache      : {m['cache_file']}"


def main(argv: list[str] | None = None) -> int:
    """``python -m qinn_lib.events``: generate (or load) the event sample and print a summary."""
    parser = argparse.ArgumentParser(
        prog="python -m qinn_lib.events",
        description="Generate pp -> Z j -> l+l- j events with Pythia 8 (cached), or read an LHE file.",
    )
    parser.add_argument("--n-events", type=_positive_int, default=None,
                        help="events after cuts (default 100000, the paper's sample size)")
    parser.add_argument("--seed", type=_seed, default=None, help="Pythia random seed (default 1234)")
    parser.add_argument("--lhe", metavar="FILE", default=None,
                        help="read this LHE file (e.g. MadGraph output) instead of running Pythia")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="cache folder (default: data/ in the repository, or $QINN_DATA_DIR)")
    parser.add_argument("--regenerate", action="store_true", help="regenerate even if a cache exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.lhe is not None:
        clash = [flag for flag, v in (("--n-events", args.n_events), ("--seed", args.seed),
                                      ("--cache-dir", args.cache_dir), ("--regenerate", args.regenerate))
                 if v not in (None, False)]
        if clash:
            parser.error(f"--lhe reads events from a file; {', '.join(clash)} do(es) not apply")

    def body() -> int:
        check_environment()  # every QINN_* variable, before any work
        if args.lhe is not None:
            sample = load_lhe_events(args.lhe)
        else:
            sample = load_events(
                100_000 if args.n_events is None else args.n_events,
                1234 if args.seed is None else args.seed,
                cache_dir=args.cache_dir, progress=not args.no_progress, regenerate=args.regenerate,
            )
        for line in _summary(sample):
            print(line)
        return 0

    return run_cli(body, prog=parser.prog, debug=args.debug,
                   interrupted="nothing was cached (the cache is written only once generation is complete)")

