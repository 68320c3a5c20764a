"""The results store: one JSON per experiment, profile and seed under data/results/<profile>/.

Each file carries the full config it came from, the config's hash, the metrics with their
SHA-256 (``metrics_sha256``), and the environment (package version, git commit, torch, device,
wall time). Reading results for a config whose hash differs raises `StaleResultsError`: old
numbers are never used in silence. A file whose stored config does not hash to its stored
``config_hash``, whose metrics do not match their checksum or lack what their experiment kind
always writes, raises `CorruptResultsError` with the command that remakes it. (The checksum
catches edits and damage, not a forger: anyone can recompute it.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from . import __version__
from .atomic import write_text_atomic

# Bumped when the meaning of stored metrics changes, so every older file becomes stale.
SCHEMA_VERSION = 1

REPO_ROOT = Path(__file__).resolve().parents[2]


class ResultsError(RuntimeError):
    """Base class for results that cannot be used."""


class MissingResultsError(ResultsError):
    pass


class StaleResultsError(ResultsError):
    pass


class CorruptResultsError(ResultsError):
    pass


# What each experiment kind (``config["kind"]``) always writes into ``metrics``; a results file
# without these keys was not written by this package. Unknown kinds only need a dict.
REQUIRED_METRICS: dict[str, tuple[str, ...]] = {
    "pretrain": ("steps", "train_loss", "eval_steps", "val_loss", "final_val_loss", "n_parameters",
                 "scaling_after_training"),
    "needle_sft": ("steps", "train_loss", "eval_steps", "val_loss", "val_exact", "final_val_loss",
                   "final_val_exact", "n_parameters", "scaling_after_training"),
    "lengthgen": ("curves", "n_documents", "length", "heldout_loss", "heldout_tokens", "context_free_loss"),
    "needle_eval": (),  # one grid per test-time theta ("theta_x1", "theta_x50"), by protocol
    "needle_score": ("fixed_depth", "random_trials"),
    "theta_study": ("factors", "loss", "needle"),
    "set_task": ("set_sizes", "accuracy", "target_weight"),
}
# the cross-check on Hugging Face's Llama (ssmax.hf_crosscheck) writes what its counterparts write
REQUIRED_METRICS["hf_pretrain"] = REQUIRED_METRICS["pretrain"]
REQUIRED_METRICS["hf_lengthgen"] = REQUIRED_METRICS["lengthgen"]


def results_root() -> Path:
    """data/results, or $SSMAX_RESULTS_DIR (the tests point it at a temporary folder)."""
    return Path(os.environ.get("SSMAX_RESULTS_DIR", REPO_ROOT / "data" / "results"))


def checkpoints_root() -> Path:
    """Resumable training checkpoints (optimizer and RNG states too); never committed."""
    return Path(os.environ.get("SSMAX_CHECKPOINT_DIR", REPO_ROOT / "data" / "checkpoints"))


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and obj != obj:  # NaN is not valid JSON
        return None
    return obj


def config_hash(config: Any) -> str:
    """Hash of the canonical JSON of a config (and the schema version): what 'current' means."""
    payload = json.dumps({"schema": SCHEMA_VERSION, "config": to_jsonable(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def metrics_checksum(metrics: Any) -> str:
    """SHA-256 of the canonical JSON of the (JSON-ready) metrics."""
    return hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()


def result_path(profile: str, experiment: str, seed: int) -> Path:
    return results_root() / profile / f"{experiment}--seed{seed}.json"


def weights_dir(profile: str) -> Path:
    return results_root() / profile / "weights"


def weights_path(profile: str, experiment: str, seed: int) -> Path:
    """Final model weights (a float16 state dict), kept beside the results so evaluations can be
    rerun without retraining."""
    return weights_dir(profile) / f"{experiment}--seed{seed}.pt"


def run_command(experiment: str, profile: str, seed: int) -> str:
    return f"python -m ssmax run {experiment} --profile {profile} --seed {seed}"


def git_commit() -> Optional[str]:
    """The commit of the code that ran (``+dirty`` if src/ had changes); SSMAX_GIT_COMMIT names it
    where the tree was copied without its git folder (a remote machine, a container)."""
    if os.environ.get("SSMAX_GIT_COMMIT"):
        return os.environ["SSMAX_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("+dirty" if dirty else "")) if commit else None


def environment(device: torch.device, wall_time_s: float) -> dict:
    return {
        "ssmax_version": __version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(),
        "wall_time_s": round(wall_time_s, 2),
        # peak resident memory of the whole process so far (Linux reports KiB)
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def device_label(env: dict) -> str:
    """The machine a results file's ``environment`` records, e.g. "NVIDIA H200" (its device
    name, else the torch device)."""
    return str(env.get("device_name") or env.get("device", "unknown"))


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write whole or not at all, safe against concurrent writers (see `ssmax.atomic`)."""
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write and delete a probe file in it, so that a run fails at once,
    naming the folder, instead of after its training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass  # created, written (empty) and deleted
    except OSError as err:
        reason = err.strerror or str(err)
        raise PermissionError(f"cannot write to {folder} ({reason}): make it writable, or point "
                              f"SSMAX_RESULTS_DIR / SSMAX_CHECKPOINT_DIR at a writable folder") from err


def save_result(profile: str, experiment: str, seed: int, config: Any, metrics: dict, env: dict) -> Path:
    path = result_path(profile, experiment, seed)
    jsonable = to_jsonable(metrics)
    write_json_atomic(path, {
        "experiment": experiment,
        "profile": profile,
        "seed": seed,
        "config": to_jsonable(config),
        "config_hash": config_hash(config),
        "metrics": jsonable,
        "metrics_sha256": metrics_checksum(jsonable),
        "environment": env,
    })
    return path


def _remake_hint(path: Path) -> str:
    """The command that rewrites ``path`` (<root>/<profile>/<name>--seed<S>.json)."""
    name, sep, seed = path.stem.rpartition("--seed")
    if sep and seed.isdigit():
        return f"remake it with `{run_command(name, path.parent.name, int(seed))}`"
    return "delete it and rerun the experiment"


def _parse_result_file(path: Path) -> dict:
    """The JSON of a results file with its top-level fields, or `CorruptResultsError`."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptResultsError(f"{path} is not valid JSON ({err}); {_remake_hint(path)}") from err
    required = ("experiment", "profile", "seed", "config", "config_hash", "metrics", "environment")
    if not isinstance(data, dict) or any(key not in data for key in required):
        missing = required if not isinstance(data, dict) else tuple(k for k in required if k not in data)
        raise CorruptResultsError(f"{path} lacks the fields {missing}; {_remake_hint(path)}")
    return data


def _check_integrity(path: Path, data: dict) -> None:
    """The stored config must hash to the stored config_hash, and the metrics must be an object
    that matches its checksum and holds what its experiment kind always writes."""

    def corrupt(what: str) -> CorruptResultsError:
        return CorruptResultsError(f"{path} is corrupt: {what}; {_remake_hint(path)}")

    if not isinstance(data["config"], dict):
        raise corrupt(f"config is a {type(data['config']).__name__}, not an object")
    recomputed = config_hash(data["config"])
    if recomputed != data["config_hash"]:
        raise corrupt(f"the stored config hashes to {recomputed}, not to the stored config_hash "
                      f"{data['config_hash']} (was it edited?)")
    metrics = data["metrics"]
    if not isinstance(metrics, dict):
        raise corrupt(f"metrics is a {type(metrics).__name__}, not an object")
    if "metrics_sha256" not in data:
        raise corrupt("it has no metrics_sha256 (written before results carried a checksum)")
    if metrics_checksum(metrics) != data["metrics_sha256"]:
        raise corrupt("the metrics do not match their checksum metrics_sha256 (were they edited?)")
    absent = [k for k in REQUIRED_METRICS.get(data["config"].get("kind"), ()) if k not in metrics]
    if absent:
        raise corrupt(f"metrics lack {absent}")


def read_result_file(path: Path) -> dict:
    """Parse one results file and check its integrity, refusing a truncated, malformed or edited
    one with `CorruptResultsError` (naming the file, what is wrong and the command that remakes
    it). Whether the file is *current* is `load_result`'s job."""
    data = _parse_result_file(path)
    _check_integrity(path, data)
    return data


def load_result(profile: str, experiment: str, seed: int, config: Any) -> dict:
    """The stored result for this config; raises if it is missing, stale or corrupt (stale is
    checked first: a file from an older config says so, whatever else it lacks)."""
    path = result_path(profile, experiment, seed)
    command = run_command(experiment, profile, seed)
    if not path.exists():
        raise MissingResultsError(f"no results for {experiment} (profile {profile}, seed {seed}) at {path}: "
                                  f"run `{command}` (or `make reproduce PROFILE={profile}`)")
    data = _parse_result_file(path)
    expected = config_hash(config)
    if data["config_hash"] != expected:
        raise StaleResultsError(f"stale results: rerun `{command}` ({path} has config hash "
                                f"{data['config_hash']}, the current config hashes to {expected})")
    _check_integrity(path, data)
    return data


def has_current_result(profile: str, experiment: str, seed: int, config: Any) -> bool:
    """True if the stored result is current and intact; missing, stale and corrupt all count
    as 'not there' (a rerun replaces them)."""
    try:
        load_result(profile, experiment, seed, config)
    except ResultsError:
        return False
    return True


def wall_times(profile: str) -> dict[str, float]:
    """Recorded wall time of every stored run of a profile, ``{"name--seedS": seconds}``."""
    folder = results_root() / profile
    out = {}
    for path in sorted(folder.glob("*--seed*.json")):
        data = read_result_file(path)
        out[path.stem] = float(data["environment"].get("wall_time_s", float("nan")))
    return out
