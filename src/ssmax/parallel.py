"""Run a profile's experiments in several processes (`python -m ssmax reproduce --jobs N`).

The cpu profile's models are small: one of them leaves a GPU (or a many-core machine) mostly
idle. Runs that share no weights are independent, so the runs are grouped into the connected
parts of the dependency graph (a pretraining with everything built on its weights) and the parts
are dealt out to N worker processes, each running its share in the registry's order (which puts
every dependency first). Results are the same as those of one process: each run is the same
seeded, deterministic computation whichever process does it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from . import experiments as ex

class WorkerFailed(RuntimeError):
    """A worker process of ``reproduce --jobs`` exited with an error (its message is above)."""


# rough relative cost of a run by kind, to balance the workers
_COST = {"pretrain": 4.0, "needle_sft": 4.0, "set_task": 1.0}


def independent_groups(profile: str) -> list[list[tuple[str, int]]]:
    """The runs split into groups that share no weights (union of each run with what it loads)."""
    keys = ex.run_keys(profile)
    parent = {f"{n}--seed{s}": f"{n}--seed{s}" for n, s in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for name, seed in keys:
        for dep in ex.experiment_config(name, profile, seed).depends_on:
            parent.setdefault(dep, dep)
            parent[root(f"{name}--seed{seed}")] = root(dep)
    groups: dict[str, list[tuple[str, int]]] = {}
    for name, seed in keys:
        groups.setdefault(root(f"{name}--seed{seed}"), []).append((name, seed))
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


def reproduce_parallel(profile: str, jobs: int, device: str = "auto", force: bool = True) -> dict[str, float]:
    """Run every experiment of ``profile`` in ``jobs`` processes; returns each worker's wall time.
    Each worker's log goes to stderr prefixed by its number; a failed worker fails the whole."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
    ex.check_profile(profile)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    procs = []
    t0 = time.perf_counter()
    for i, share in enumerate(deal(profile, jobs)):
        script = ("import sys, torch; torch.set_num_threads(%d)\n"
                  "from ssmax import experiments as ex\n"
                  "for name, seed in %r:\n"
                  "    ex.run(name, %r, seed, device=%r, force=%r, progress=False)\n"
                  "    print(f'worker %d: {name} seed {seed} done', file=sys.stderr, flush=True)\n"
                  % (threads, share, profile, device, force, i))
        procs.append(subprocess.Popen([sys.executable, "-c", script]))
    times = {}
    failed = []
    for i, proc in enumerate(procs):
        if proc.wait() != 0:
            failed.append(i)
        times[f"worker {i}"] = time.perf_counter() - t0
    if failed:
        raise WorkerFailed(f"reproduce --jobs {jobs}: worker(s) {failed} failed (see their messages above); "
                           "rerun the same command to resume")
    return times
