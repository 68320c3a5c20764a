"""Run a profile's experiments in several processes (`python -m ssmax reproduce --jobs N`).

The cpu profile's models are small: one of them leaves a GPU (or a many-core machine) mostly
idle. Runs that share no weights are independent, so the runs are grouped into the connected
parts of the dependency graph (a pretraining with everything built on its weights) and the parts
are dealt out to N worker processes, each running its share in the registry's order (which puts
every dependency first). Results are the same as those of one process: each run is the same
seeded, deterministic computation whichever process does it.

The workers never outlive the command: Ctrl-C (which reaches the workers too) or SIGTERM to the
parent stops every worker before the parent exits, without tracebacks; a rerun with ``--reuse``
resumes. ``--jobs`` is capped at the machine's CPU cores (each worker needs one, and memory), with
a warning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Optional

from . import experiments as ex
from .checkpoint import CheckpointError
from .results import ResultsError, run_key

class WorkerFailed(RuntimeError):
    """A worker process of ``reproduce --jobs`` exited with an error (its message is above)."""


class Terminated(Exception):
    """The parent of ``reproduce --jobs`` got SIGTERM; its workers have been stopped."""


# what a worker reports in one line (the same kinds `python -m ssmax` reports so)
_WORKER_ERRORS = (ValueError, ResultsError, CheckpointError, OSError, FloatingPointError)


# rough relative cost of a run by kind, to balance the workers
_COST = {"pretrain": 4.0, "needle_sft": 4.0, "set_task": 1.0}


def independent_groups(profile: str) -> list[list[tuple[str, int]]]:
    """The runs split into groups that share no weights (union of each run with what it loads)."""
    keys = ex.run_keys(profile)
    parent = {run_key(n, s): run_key(n, s) for n, s in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for name, seed in keys:
        for dep in ex.experiment_config(name, profile, seed).depends_on:
            parent.setdefault(dep, dep)
            parent[root(run_key(name, seed))] = root(dep)
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, seed in keys:
        groups.setdefault(root(run_key(name, seed)), []).append((name, seed))
    return list(groups.values())


def _cost(profile: str, group: list[tuple[str, int]]) -> float:
    return sum(_COST.get(ex.experiment_config(n, profile, s).kind, 1.0) for n, s in group)


def deal(profile: str, jobs: int) -> list[list[tuple[str, int]]]:
    """The groups dealt to ``jobs`` workers, largest first to the least loaded; each worker's
    runs in the registry's order."""
    order = {key: i for i, key in enumerate(ex.run_keys(profile))}
    shares: list[list[tuple[str, int]]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for group in sorted(independent_groups(profile), key=lambda g: -_cost(profile, g)):
        i = load.index(min(load))
        shares[i] += group
        load[i] += _cost(profile, group)
    return [sorted(share, key=order.__getitem__) for share in shares if share]


def capped_jobs(jobs: int, cores: Optional[int] = None) -> int:
    """``jobs``, at most the number of CPU cores (each worker runs on at least one, and each
    holds a model, the corpus and its own torch in memory); says so on stderr when it caps."""
    cores = cores or os.cpu_count() or 1
    if jobs > cores:
        print(f"warning: --jobs {jobs} is more than this machine's {cores} CPU cores; running {cores} workers",
              file=sys.stderr, flush=True)
        return cores
    return jobs


def run_share(worker: int, share: list, profile: str, device: str, force: bool, threads: int) -> int:
    """A worker's body: its runs in order; one line and status 2 on an error the CLI reports in
    one line, status 130 without a traceback on Ctrl-C (the parent reports it)."""
    import torch

    torch.set_num_threads(threads)
    try:
        for name, seed in share:
            ex.run(name, profile, seed, device=device, force=force, progress=False)
            print(f"worker {worker}: {name} seed {seed} done", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        return 130
    except _WORKER_ERRORS as err:
        print(f"worker {worker}: error: {' '.join(str(err).split())}", file=sys.stderr, flush=True)
        return 2
    return 0


def _stop(procs: list) -> None:
    """Stop the workers still running: SIGTERM, then SIGKILL after 10 s (a checkpoint write is
    atomic, so a kill loses at most the steps since the last checkpoint)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _raise_terminated(signum, frame) -> None:
    raise Terminated(f"got signal {signum}")


def reproduce_parallel(profile: str, jobs: int, device: str = "auto", force: bool = True) -> dict[str, float]:
    """Run every experiment of ``profile`` in ``jobs`` processes (capped, `capped_jobs`); returns
    each worker's wall time. Each worker's log goes to stderr prefixed by its number; a failed
    worker fails the whole. Ctrl-C or SIGTERM stops every worker before this returns."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
    ex.check_profile(profile)
    jobs = capped_jobs(jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    procs: list[subprocess.Popen] = []
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        for i, share in enumerate(deal(profile, jobs)):
            script = ("import sys\n"
                      "try:\n    from ssmax.parallel import run_share\n"
                      "except KeyboardInterrupt:\n    sys.exit(130)\n"  # Ctrl-C while importing torch
                      "sys.exit(run_share(%d, %r, %r, %r, %r, %d))" % (i, share, profile, device, force, threads))
            procs.append(subprocess.Popen([sys.executable, "-c", script]))
        times = {}
        failed = []
        for i, proc in enumerate(procs):
            code = proc.wait()
            if code == 130 or code == -signal.SIGINT:
                raise KeyboardInterrupt
            if code != 0:
                failed.append(i)
            times[f"worker {i}"] = time.perf_counter() - t0
    finally:
        _stop(procs)
        signal.signal(signal.SIGTERM, previous)
    if failed:
        raise WorkerFailed(f"reproduce --jobs {jobs}: worker(s) {failed} failed (see their messages above); "
                           f"rerun with --reuse to keep what finished")
    return times
