"""Checkpoints that refuse to be misused: each carries the hash of the config that wrote it.

A truncated or corrupted file, or one from another config, raises `CheckpointError` with the
path and what to do, instead of silently training or evaluating the wrong model.

Checkpoint and weights files are data from elsewhere (a pulled branch, a download), so they are
read with ``torch.load(..., weights_only=True)``: tensors and plain Python values (dicts, lists,
tuples, str, int, float, bool, None) only. A file that holds anything else (a pickled object,
which could run code when loaded) is refused, and nothing in it runs.

A file is serialized in memory and then written atomically: identical contents give identical
bytes (no temporary file name inside the archive), and a failed write (a full disk) raises
`CheckpointError` naming the file, with the previous file kept.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import Any, Optional

import torch

from .atomic import write_atomic


class CheckpointError(RuntimeError):
    pass


def serialize(data: Any) -> bytes:
    """``torch.save`` into memory: the archive's inner folder is always "archive", so the same
    data gives the same bytes wherever and whenever it is saved."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return buffer.getvalue()


def _write_bytes(tmp: Path, blob: bytes) -> None:
    with open(tmp, "wb") as f:
        f.write(blob)


def save_checkpoint(path: Path, payload: dict[str, Any], config_hash: str) -> str:
    """Atomic save (`ssmax.atomic.write_atomic`): a kill mid-write leaves the previous file, and
    concurrent writers of one path take turns. A failed write (disk full, folder gone) raises
    `CheckpointError` naming the file. Returns the SHA-256 of the bytes written (what a result
    records as the identity of weights)."""
    blob = serialize({"config_hash": config_hash, **payload})
    try:
        write_atomic(path, lambda tmp: _write_bytes(tmp, blob))
    except OSError as err:
        reason = err.strerror or str(err)
        raise CheckpointError(f"could not write {path} ({reason}); the previous file, if any, is kept: free some "
                              f"space or point SSMAX_CHECKPOINT_DIR / SSMAX_RESULTS_DIR elsewhere, then rerun "
                              f"to resume") from err
    return hashlib.sha256(blob).hexdigest()


def _load(path: Path, map_location: Any, mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``; anything but tensors and plain values is
    refused (`pickle.UnpicklingError`) before it is built."""
    return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)


def _refusal(path: Path, err: Exception) -> str:
    if isinstance(err, pickle.UnpicklingError):
        return (f"{path} was refused: it holds objects other than tensors and plain values (nothing in it "
                f"was run); delete it and rerun")
    return f"{path} is unreadable ({type(err).__name__}: {' '.join(str(err).split())[:200]}); delete it and rerun"


def load_checkpoint(path: Path, config_hash: str, map_location: Any = "cpu") -> dict[str, Any]:
    try:
        payload = _load(path, map_location)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises several types for a damaged zip/pickle
        raise CheckpointError(f"checkpoint {_refusal(path, err)}") from err
    if not isinstance(payload, dict) or "config_hash" not in payload:
        raise CheckpointError(f"checkpoint {path} has no config hash; delete it and rerun")
    if payload["config_hash"] != config_hash:
        raise CheckpointError(f"checkpoint {path} was written by another config (hash {payload['config_hash']}, "
                              f"expected {config_hash}); delete it or rerun that experiment")
    return payload


def checkpoint_problem(path: Path, config_hash: str) -> Optional[str]:
    """Why the checkpoint at ``path`` cannot be used for ``config_hash`` (None if it can, or if
    there is none). Reads lazily (memory-mapped), so checking a large file costs little."""
    if not path.exists():
        return None
    try:
        payload = _load(path, "cpu", mmap=True)
    except pickle.UnpicklingError:
        return "refused: it holds objects other than tensors and plain values"
    except Exception as err:  # a damaged or non-zip file
        return f"unreadable ({type(err).__name__})"
    if not isinstance(payload, dict) or "config_hash" not in payload:
        return "it has no config hash"
    if payload["config_hash"] != config_hash:
        return f"written by another config (hash {payload['config_hash']}, expected {config_hash})"
    return None
