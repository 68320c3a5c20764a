"""The results store: one JSON per experiment, profile and seed under data/results/<profile>/.

Each file carries the full config it came from, the config's hash, the metrics with their
SHA-256 (``metrics_sha256``), and the environment (package version, git commit, torch, device,
wall time). Reading results for a config whose hash differs raises `StaleResultsError`: old
numbers are never used in silence. A file whose stored config does not hash to its stored
``config_hash``, whose metrics do not match their checksum or lack what their experiment kind
always writes (or of the wrong types, `METRICS_SCHEMA`), raises `CorruptResultsError` with the
command that remakes it. (The checksum catches edits and damage, not a forger: anyone can
recompute it.)

A result is current only if the exact weights it used are current too. A training run records
the SHA-256 of the weights file it wrote (``weights_sha256``); a run that loads weights records
the SHA-256 of each file it loaded (``weights_used``, by dependency key). `load_result` follows
the chain upstream: every dependency's result must exist and be current, record the digest this
result used, and (where its weights file is on disk) still match that file. Retraining anything
upstream therefore makes everything downstream stale. Results written before digests were
recorded have neither field; they stay current only while their upstream has none either, so the
first retraining upstream makes them stale.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

from . import __version__
from .atomic import sha256_of_file, write_text_atomic
from .paths import REPO_ROOT, data_dir, folder_from_env, in_checkout

# Bumped when the meaning of stored metrics changes, so every older file becomes stale.
SCHEMA_VERSION = 1



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
    """data/results (a per-user folder when installed outside the repository, see
    `ssmax.paths`), or $SSMAX_RESULTS_DIR (the tests point it at a temporary folder)."""
    return folder_from_env("SSMAX_RESULTS_DIR", data_dir() / "results")


def checkpoints_root() -> Path:
    """Resumable training checkpoints (optimizer and RNG states too); never committed."""
    return folder_from_env("SSMAX_CHECKPOINT_DIR", data_dir() / "checkpoints")


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
    return results_root() / profile / f"{run_key(experiment, seed)}.json"


def weights_dir(profile: str) -> Path:
    return results_root() / profile / "weights"


def weights_path(profile: str, experiment: str, seed: int) -> Path:
    """Final model weights (a float16 state dict), kept beside the results so evaluations can be
    rerun without retraining."""
    return weights_dir(profile) / f"{run_key(experiment, seed)}.pt"


def run_command(experiment: str, profile: str, seed: int) -> str:
    return f"python -m ssmax run {experiment} --profile {profile} --seed {seed}"


def git_commit() -> Optional[str]:
    """The commit of the code that ran (``+dirty`` if src/ had changes); SSMAX_GIT_COMMIT names it
    where the tree was copied without its git folder (a remote machine, a container)."""
    if os.environ.get("SSMAX_GIT_COMMIT"):
        return os.environ["SSMAX_GIT_COMMIT"]
    if not in_checkout():  # an installed copy: whatever git repository lies around it is not ours
        return None
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


def save_result(profile: str, experiment: str, seed: int, config: Any, metrics: dict, env: dict,
                weights_sha256: Optional[str] = None, weights_used: Optional[dict[str, Optional[str]]] = None) -> Path:
    """Write a run's results; ``weights_sha256``: the digest of the weights file it wrote (a
    training run), ``weights_used``: the digest of each weights file it loaded, by dependency key."""
    path = result_path(profile, experiment, seed)
    jsonable = to_jsonable(metrics)
    payload = {
        "experiment": experiment,
        "profile": profile,
        "seed": seed,
        "config": to_jsonable(config),
        "config_hash": config_hash(config),
        "metrics": jsonable,
        "metrics_sha256": metrics_checksum(jsonable),
        "environment": env,
    }
    if weights_sha256 is not None:
        payload["weights_sha256"] = weights_sha256
    if weights_used:
        payload["weights_used"] = dict(weights_used)
    write_json_atomic(path, payload)
    return path


# --- the identity of weights files ----------------------------------------------------------

@functools.lru_cache(maxsize=512)
def _cached_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return sha256_of_file(Path(path))


def file_sha256(path: Path) -> Optional[str]:
    """SHA-256 of a file's bytes (None if there is none); cached while its size, modification
    time and inode stay the same, so checking a chain of results rereads nothing."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return None
    return _cached_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _split_dependency(key: str) -> tuple[str, int]:
    name, sep, seed = key.rpartition("--seed")
    if not sep or not seed.isdigit():
        raise ValueError(f"a dependency key is 'experiment--seedS'; got {key!r}")
    return name, int(seed)


# --- what the metrics of each kind look like -------------------------------------------------

# A small type language: "num" (int or float; null stands for NaN), "int", "str", "bool",
# [spec] a list of spec, {"*": spec} an object of spec values, {key: spec} an object that holds
# at least these keys (others allowed), ("opt", spec) a key that may be absent or null.
_NUM, _INT, _STR = "num", "int", "str"
_CURVE = {"curve": [_NUM], "windows": {"*": _NUM}, "document_windows": ("opt", {"*": [_NUM]})}
_NEEDLE_GRID = {"context_lengths": [_INT], "depths": [_NUM], "trials": _INT, "exact": [[_NUM]],
                "first_digit": ("opt", [[_NUM]]), "digit_accuracy": ("opt", [[_NUM]]),
                "bits_per_digit": ("opt", [[_NUM]])}
_NEEDLE_SCORES = {"context_len": _INT, "depths": [_NUM], "scores": [[[_NUM]]], "top_score": [_NUM],
                  "outcomes": ("opt", [_STR]), "bits_per_digit": ("opt", [_NUM])}
_TRAINING = {"steps": [_INT], "train_loss": [_NUM], "eval_steps": [_INT], "val_loss": [_NUM],
             "final_val_loss": _NUM, "n_parameters": _INT, "scaling_after_training": _STR,
             "lr": ("opt", [_NUM]), "learned_s": ("opt", [[_NUM]]), "learned_b": ("opt", [[_NUM]]),
             "learned_p_n": ("opt", [_NUM])}
METRICS_SCHEMA: dict[str, Any] = {
    "pretrain": _TRAINING,
    "needle_sft": {**_TRAINING, "val_exact": [_NUM], "final_val_exact": _NUM, "lr_chosen": ("opt", _NUM),
                   "lr_tries": ("opt", [{"lr": _NUM, "final_val_exact": _NUM, "final_val_loss": _NUM}])},
    "lengthgen": {"curves": {"*": _CURVE}, "n_documents": _INT, "length": _INT, "heldout_loss": {"*": _NUM},
                  "heldout_tokens": _INT, "context_free_loss": _NUM},
    "needle_eval": {"*": _NEEDLE_GRID},
    "needle_score": {"fixed_depth": _NEEDLE_SCORES, "random_trials": _NEEDLE_SCORES},
    "theta_study": {"factors": [_NUM], "loss": {"*": {"*": {"mean": [_NUM], "documents": [[_NUM]]}}},
                    "needle": {"context_lengths": [_INT], "exact": [[_NUM]]}},
    "set_task": {"set_sizes": [_INT], "accuracy": [_NUM], "target_weight": [_NUM]},
}


def schema_problem(value: Any, spec: Any, where: str = "metrics") -> Optional[str]:
    """Where ``value`` departs from ``spec`` (see `METRICS_SCHEMA`), e.g. "metrics.curves.x.curve[3]
    is a str, not a number"; None if it fits."""
    def kind(v: Any) -> str:
        return "null" if v is None else type(v).__name__

    if isinstance(spec, tuple):  # ("opt", spec)
        return None if value is None else schema_problem(value, spec[1], where)
    if spec == _NUM:
        ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
        return None if ok else f"{where} is a {kind(value)}, not a number"
    if spec == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{where} is a {kind(value)}, not an integer"
    if spec == _STR:
        return None if isinstance(value, str) else f"{where} is a {kind(value)}, not a string"
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"{where} is a {kind(value)}, not a list"
        for i, item in enumerate(value):
            problem = schema_problem(item, spec[0], f"{where}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return f"{where} is a {kind(value)}, not an object"
    if "*" in spec:
        items = [(k, v, spec["*"]) for k, v in value.items()]
    else:
        absent = [k for k, sub in spec.items() if k not in value and not isinstance(sub, tuple)]
        if absent:
            return f"{where} lacks {absent}"
        items = [(k, value[k], sub) for k, sub in spec.items() if k in value]
    for key, item, sub in items:
        problem = schema_problem(item, sub, f"{where}.{key}")
        if problem:
            return problem
    return None


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
    problem = schema_problem(metrics, METRICS_SCHEMA.get(data["config"].get("kind"), {}))
    if problem:
        raise corrupt(problem)
    digest = data.get("weights_sha256")
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise corrupt(f"weights_sha256 is {digest!r}, not a SHA-256")
    used = data.get("weights_used", {})
    if not isinstance(used, dict) or any(v is not None and not (isinstance(v, str) and _SHA256.fullmatch(v))
                                         for v in used.values()):
        raise corrupt("weights_used is not an object of SHA-256 digests")


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
    problem = weights_problem(profile, data)
    if problem:
        raise StaleResultsError(f"stale results: rerun `{command}` ({path}: {problem})")
    return data


def weights_problem(profile: str, data: dict, _seen: Optional[set] = None) -> Optional[str]:
    """Why the weights a result was computed from (or, for a training run, wrote) are not the
    current ones; None if they are. Follows the dependencies upstream (see the module doc)."""
    seen = set() if _seen is None else _seen
    own = data.get("weights_sha256")
    weights = weights_path(profile, data["experiment"], data["seed"])
    on_disk = file_sha256(weights) if own is not None else None
    if on_disk is not None and on_disk != own:
        return f"its weights file {weights} is not the one it recorded (sha256 {on_disk[:12]}..., recorded {own[:12]}...)"
    used = data.get("weights_used") or {}
    for key, dep_hash in (data["config"].get("depends_on") or {}).items():
        name, seed = _split_dependency(key)
        dep_path = result_path(profile, name, seed)
        if not dep_path.exists():
            return f"it was computed from {key}, which has no results at {dep_path}"
        try:
            dep = read_result_file(dep_path)
        except CorruptResultsError as err:
            return f"it was computed from {key}, whose results are unusable ({err})"
        if dep["config_hash"] != dep_hash:
            return f"it was computed from {key} of config hash {dep_hash}; {dep_path} has {dep['config_hash']}"
        if used.get(key) != dep.get("weights_sha256"):
            recorded = (used.get(key) or "none")[:12]
            current = (dep.get("weights_sha256") or "none")[:12]
            return (f"it was computed from weights of {key} (sha256 {recorded}) other than those {dep_path} "
                    f"records ({current}): {key} was retrained since")
        if key not in seen:
            seen.add(key)
            problem = weights_problem(profile, dep, seen)
            if problem:
                return f"its input {key} is stale ({problem})"
    return None


def has_current_result(profile: str, experiment: str, seed: int, config: Any) -> bool:
    """True if the stored result is current and intact; missing, stale and corrupt all count
    as 'not there' (a rerun replaces them)."""
    try:
        load_result(profile, experiment, seed, config)
    except ResultsError:
        return False
    return True


_RESULT_NAME = re.compile(r"(?P<experiment>.+)--seed(?P<seed>[0-9]+)")


def result_files(folder: Path) -> list[Path]:
    """The results files of a folder: ``<experiment>--seed<k>.json`` of a known experiment, sorted;
    a copy ("... (copy).json"), a hidden file or another name is not a run and is skipped."""
    from .experiments import list_experiments  # imported here: experiments imports this module

    known = set(list_experiments())
    out = []
    for path in sorted(Path(folder).glob("*--seed*.json")):
        match = _RESULT_NAME.fullmatch(path.stem)
        if match and match["experiment"] in known and not path.name.startswith("."):
            out.append(path)
    return out


def wall_times(profile: str) -> dict[str, float]:
    """Recorded wall time of every stored run of a profile, ``{"name--seedS": seconds}``."""
    folder = results_root() / profile
    out = {}
    for path in result_files(folder):
        data = read_result_file(path)
        out[path.stem] = float(data["environment"].get("wall_time_s", float("nan")))
    return out


def run_key(name: str, seed: int) -> str:
    """The key of one stored run, ``name--seedS``: its results file is ``<key>.json``, its
    weights ``<key>.pt``, and ``init_from`` names the run a later stage starts from by it."""
    return f"{name}--seed{int(seed)}"
