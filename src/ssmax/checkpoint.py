"""Checkpoints that refuse to be misused: each carries the hash of the config that wrote it.

A truncated or corrupted file, or one from another config, raises `CheckpointError` with the
path and what to do, instead of silently training or evaluating the wrong model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    pass


def save_checkpoint(path: Path, payload: dict[str, Any], config_hash: str) -> None:
    """Atomic save (temporary file, then rename): a kill mid-write leaves the previous one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"config_hash": config_hash, **payload}, tmp)
    os.replace(tmp, path)


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
