"""Checkpoints that refuse to be misused: each carries the hash of the config that wrote it.

A truncated or corrupted file, or one from another config, raises `CheckpointError` with the
path and what to do, instead of silently training or evaluating the wrong model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch

from .atomic import write_atomic


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: Path, payload: dict[str, Any], config_hash: str) -> None:
    """Atomic save (`ssmax.atomic.write_atomic`): a kill mid-write leaves the previous file, and
    concurrent writers of one path take turns."""
    data = {"config_hash": config_hash, **payload}
    write_atomic(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(path: Path, config_hash: str, map_location: Any = "cpu") -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises several types for a damaged zip/pickle
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); "
                              f"delete it and rerun") from err
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
        payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # a damaged or non-zip file
        return f"unreadable ({type(err).__name__})"
    if not isinstance(payload, dict) or "config_hash" not in payload:
        return "it has no config hash"
    if payload["config_hash"] != config_hash:
        return f"written by another config (hash {payload['config_hash']}, expected {config_hash})"
    return None
