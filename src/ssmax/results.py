"""The results store: one JSON per experiment, profile and seed under data/results/<profile>/.

Each file carries the full config it came from, the config's hash, the metrics, and the
environment (package version, git commit, torch, device, wall time). Reading results for a
config whose hash differs raises `StaleResultsError`: old numbers are never used in silence.
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
from pathlib import Path
from typing import Any, Optional

import torch

from . import __version__

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


def result_path(profile: str, experiment: str, seed: int) -> Path:
    return results_root() / profile / f"{experiment}--seed{seed}.json"


def weights_path(profile: str, experiment: str, seed: int) -> Path:
    """Final model weights (float32 state dict), kept beside the results so evaluations can be
    rerun without retraining."""
    return results_root() / profile / "weights" / f"{experiment}--seed{seed}.pt"


def run_command(experiment: str, profile: str, seed: int) -> str:
    return f"python -m ssmax run {experiment} --profile {profile} --seed {seed}"


def git_commit() -> Optional[str]:
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


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename, so an interrupted write never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def save_result(profile: str, experiment: str, seed: int, config: Any, metrics: dict, env: dict) -> Path:
    path = result_path(profile, experiment, seed)
    write_json_atomic(path, {
        "experiment": experiment,
        "profile": profile,
        "seed": seed,
        "config": to_jsonable(config),
        "config_hash": config_hash(config),
        "metrics": to_jsonable(metrics),
        "environment": env,
    })
    return path


def read_result_file(path: Path) -> dict:
    """Parse one results file, refusing a truncated or malformed one with a clear message."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorruptResultsError(f"{path} is not valid JSON ({err}); delete it and rerun the experiment") from err
    required = ("experiment", "profile", "seed", "config", "config_hash", "metrics", "environment")
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise CorruptResultsError(f"{path} lacks the fields {required}; delete it and rerun the experiment")
    return data


def load_result(profile: str, experiment: str, seed: int, config: Any) -> dict:
    """The stored result for this config; raises if it is missing, corrupt or stale."""
    path = result_path(profile, experiment, seed)
    command = run_command(experiment, profile, seed)
    if not path.exists():
        raise MissingResultsError(f"no results for {experiment} (profile {profile}, seed {seed}) at {path}: "
                                  f"run `{command}` (or `make reproduce PROFILE={profile}`)")
    data = read_result_file(path)
    expected = config_hash(config)
    if data["config_hash"] != expected:
        raise StaleResultsError(f"stale results: rerun `{command}` ({path} has config hash "
                                f"{data['config_hash']}, the current config hashes to {expected})")
    return data


def has_current_result(profile: str, experiment: str, seed: int, config: Any) -> bool:
    try:
        load_result(profile, experiment, seed, config)
    except (MissingResultsError, StaleResultsError):
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
