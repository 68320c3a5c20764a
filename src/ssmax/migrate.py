"""One-time migration: record the identity of the weights in results written before results did.

    python -m ssmax.migrate weight-digests --profile cpu

Results written before ``weights_sha256`` / ``weights_used`` existed (see `ssmax.results`) name
their upstream runs by config hash only. Where the weights file a training run wrote is still on
disk, written by the very config its results record (and, for the committed cpu results, in the
same commit: the results and weights of ``data/results/cpu/`` were last changed together), its
SHA-256 is added to that run's results, and every result computed from it gets the same digest
in ``weights_used``. Nothing is recomputed and the metrics and their checksum are untouched; each
file changed says so (``weights_digests_added_later``). A run whose weights are not on disk
(fine-tuning seeds 1 and 2 of the cpu profile are not committed) gets no digest, and nor do the
results computed from it: they stay current until that run is retrained, which then records a
digest and makes them stale.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from . import experiments as ex
from . import results as store
from .checkpoint import CheckpointError, load_checkpoint

NOTE = "by python -m ssmax.migrate from the weights files on disk, not at run time"


def _weights_digest(profile: str, name: str, seed: int, config_hash: str) -> Optional[str]:
    """The SHA-256 of the run's weights file if it is there and was written by ``config_hash``."""
    path = store.weights_path(profile, name, seed)
    if not path.exists():
        return None
    try:
        load_checkpoint(path, config_hash)
    except CheckpointError:
        return None
    return store.file_sha256(path)


def add_weight_digests(profile: str, dry_run: bool = False) -> list[str]:
    """Add ``weights_sha256`` and ``weights_used`` to the results of ``profile`` that lack them
    (upstream runs first); returns the keys of the files changed."""
    changed = []
    recorded: dict[str, str] = {}  # digests added by this pass (a dry run writes none)
    crosscheck = [(name, seed) for name in ex.CROSSCHECK_EXPERIMENTS for seed in ex.seeds_for(name, profile)]
    for name, seed in ex.run_keys(profile) + crosscheck:
        path = store.result_path(profile, name, seed)
        if not path.exists():
            continue
        data = store.read_result_file(path)
        if "weights_sha256" in data or "weights_used" in data:
            continue  # written with digests (or migrated already)
        update: dict = {}
        if data["config"]["kind"] in ("pretrain", "needle_sft", "hf_pretrain"):
            digest = _weights_digest(profile, name, seed, data["config_hash"])
            if digest is not None:
                update["weights_sha256"] = recorded[store.run_key(name, seed)] = digest
        used = {}
        for key, dep_hash in (data["config"].get("depends_on") or {}).items():
            dep_name, dep_seed = key.rsplit("--seed", 1)
            dep_path = store.result_path(profile, dep_name, int(dep_seed))
            if dep_path.exists():
                dep = store.read_result_file(dep_path)
                digest = dep.get("weights_sha256") or recorded.get(key)
                if dep["config_hash"] == dep_hash and digest:
                    used[key] = digest
        if used:
            update["weights_used"] = used
        if update:
            changed.append(store.run_key(name, seed))
            if not dry_run:
                store.write_json_atomic(path, {**data, **update, "weights_digests_added_later": NOTE})
    return changed


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssmax.migrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    wd = sub.add_parser("weight-digests", help="record the digests of the weights on disk in older results")
    wd.add_argument("--profile", required=True, choices=ex.PROFILES)
    wd.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        changed = add_weight_digests(args.profile, dry_run=args.dry_run)
    except (store.ResultsError, OSError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(f"{'would change' if args.dry_run else 'changed'} {len(changed)} results file(s) of profile {args.profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
