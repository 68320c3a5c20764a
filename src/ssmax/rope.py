"""Rotary position embedding (RoPE) whose base theta can be changed at evaluation time.

The paper extends context at test time by multiplying theta by 50 with no further training, so
theta is an argument of every call rather than a fixed buffer.
"""

from __future__ import annotations

import torch
from torch import Tensor


def rope_angles(head_dim: int, positions: Tensor, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin of shape (len(positions), head_dim // 2), in float32.

    Frequencies theta^(-2k/d), k = 0..d/2-1, as in RoFormer and Llama.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE; got {head_dim}")
    if theta <= 0:
        raise ValueError(f"rope theta must be > 0; got {theta}")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64) / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().to(torch.float32), angles.sin().to(torch.float32)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[..., k], x[..., k + d/2]) of x (B, H, T, D) by the given angles (T, D/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)
