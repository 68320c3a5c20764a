"""Command line: `python -m ssmax list | run NAME [--profile P] [--seed S] | reproduce --profile P`.

Every error the package raises on purpose (bad input, missing, stale or corrupt results, an
unusable checkpoint, a corpus that fails its checksum, an unwritable folder, a diverged run)
prints one line, ``error: ...``, and exits with status 2; Ctrl-C exits with 130 and says how to
resume (also while the package is still being imported), SIGTERM to ``reproduce --jobs`` stops its
workers and exits with 143. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

try:  # importing torch takes seconds: Ctrl-C meanwhile is one line, not a traceback
    from . import distributed
    from . import experiments as ex
    from . import parallel
    from .checkpoint import CheckpointError
    from .data import CorpusChecksumError
    from .device import DEVICE_CHOICES, pick_device
    from .results import ResultsError, result_path
except KeyboardInterrupt:
    print("interrupted while starting; nothing was run", file=sys.stderr)
    sys.exit(130)

# errors whose message is the whole story: shown as one line, without a traceback
USER_ERRORS = (ValueError, parallel.WorkerFailed, ResultsError, CheckpointError, CorpusChecksumError, OSError, FloatingPointError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ssmax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list experiments and the seeds each profile runs")
    run = sub.add_parser("run", help="run one experiment (and any missing dependency)")
    run.add_argument("name", help="experiment name (see `list`)")
    run.add_argument("--profile", default="cpu", choices=ex.PROFILES)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    run.add_argument("--reuse", action="store_true", help="keep current results instead of rerunning")
    rep = sub.add_parser("reproduce", help="rerun every experiment of a profile")
    rep.add_argument("--profile", required=True, choices=ex.PROFILES)
    rep.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    rep.add_argument("--reuse", action="store_true", help="keep current results (resume a reproduce run)")
    rep.add_argument("--headline", action="store_true",
                     help="only pretrain, needle-sft and needle-eval of (a) and (b), seed 0")
    rep.add_argument("--jobs", type=int, default=1,
                     help="worker processes for runs that share no weights (small models on a GPU "
                          "or many cores); results are those of one process")
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, (ValueError, ResultsError)) else f"{type(err).__name__}: {text}"


def _resume_hint(args: argparse.Namespace) -> str:
    """How to resume: `run` resumes by itself; `reproduce` keeps finished runs only with --reuse."""
    if args.command == "reproduce" and not args.reuse:
        jobs = f" --jobs {args.jobs}" if args.jobs != 1 else ""
        headline = " --headline" if args.headline else ""
        return (f"rerun with --reuse to resume (`python -m ssmax reproduce --profile {args.profile}{jobs}{headline} "
                f"--reuse`; without it, finished runs are recomputed)")
    return "rerun the same command to resume from the last checkpoint"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except USER_ERRORS as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {_resume_hint(args)}", file=sys.stderr)
        return 130
    except parallel.Terminated:
        print(f"terminated; the workers were stopped; {_resume_hint(args)}", file=sys.stderr)
        return 143


def _check_before_running(args: argparse.Namespace) -> None:
    """What can be known before hours of work start: the device exists, --jobs is not run under
    torchrun, and the gpu profile is not started on a CPU by accident."""
    device = pick_device(args.device)  # --device cuda without CUDA: one line now, not two tracebacks later
    if args.command == "reproduce" and args.jobs != 1 and distributed.launched_world_size() > 1:
        raise ValueError("--jobs starts its own worker processes and cannot run under torchrun; "
                         "use torchrun without --jobs, or --jobs without torchrun")
    if args.profile == "gpu" and args.device == "auto" and device.type == "cpu":
        raise ValueError("the gpu profile is sized for a GPU (hours of one H100) and this machine has no CUDA "
                         "device; pass --device cpu to run it on the CPU anyway, or use --profile cpu")


def _main(args: argparse.Namespace) -> int:
    if args.command == "list":
        for name in ex.list_experiments():
            seeds = {p: list(ex.seeds_for(name, p)) for p in ex.PROFILES}
            print(f"{name:26s} seeds {json.dumps(seeds)}")
        for name in ex.CROSSCHECK_EXPERIMENTS:  # not run by `reproduce`; need the hf extra
            seeds = {p: list(ex.seeds_for(name, p)) for p in ex.PROFILES}
            print(f"{name:26s} seeds {json.dumps(seeds)}  (cross-check on transformers' Llama: pip install -e '.[hf]')")
        return 0
    if args.command == "run":
        ex.check_experiment(args.name)
        ex.check_seed(args.name, args.profile, args.seed)
        _check_before_running(args)
        t0 = time.perf_counter()
        result = ex.run(args.name, args.profile, args.seed, device=args.device, force=not args.reuse)
        print(f"{args.name} seed {args.seed} ({args.profile}): done in {time.perf_counter() - t0:.1f} s "
              f"-> {result_path(args.profile, args.name, args.seed)}")
        final = result["metrics"].get("final_val_loss")
        if final is not None:
            print(f"final validation loss {final:.4f}")
        return 0
    _check_before_running(args)
    if args.jobs != 1:
        if args.headline:
            raise ValueError("--jobs runs the whole profile; leave out --headline or --jobs")
        times = parallel.reproduce_parallel(args.profile, args.jobs, device=args.device, force=not args.reuse)
    else:
        times = ex.reproduce(args.profile, device=args.device, force=not args.reuse, headline=args.headline)
    for key, seconds in times.items():
        print(f"{key:32s} {seconds:8.1f} s")
    print(f"{'wall' if args.jobs != 1 else 'total':32s} "
          f"{(max if args.jobs != 1 else sum)(times.values()):8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
