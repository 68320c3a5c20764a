"""Device choice: cuda when present, else cpu; the same code runs on both."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def pick_device(device: str = "auto") -> torch.device:
    """Resolve ``"auto"`` to cuda if available, else cpu; refuse unknown names and absent cuda."""
    if device not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA device; use 'auto' or 'cpu'")
    return torch.device(device)
