"""Rotary position embedding (RoPE) whose base theta can be changed at evaluation time.

The paper extends context at test time by multiplying theta by 50 with no further training, so
theta is an argument of every call rather than a fixed buffer. `apply_rope_scaled` rotates the
queries and multiplies them by SSMax's factor in one pass (the factor rides in the tables).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def check_theta(theta: object, name: str = "rope_theta") -> float:
    """``theta`` as a float if it is a finite number > 0 (a 0-d tensor counts); else a
    ValueError naming it: NaN or inf would give finite, silently wrong angles."""
    if torch.is_tensor(theta) and theta.dim() == 0 and theta.is_floating_point():
        theta = theta.item()
    if isinstance(theta, bool) or not isinstance(theta, numbers.Real) or not math.isfinite(float(theta)) \
            or not float(theta) > 0:
        raise ValueError(f"{name} must be a finite number > 0; got {theta!r}")
    return float(theta)


def rope_angles(head_dim: int, positions: Tensor, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin of shape (len(positions), head_dim // 2), in float32.

    Frequencies theta^(-2k/d), k = 0..d/2-1, as in RoFormer and Llama.
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE; got {head_dim}")
    theta = check_theta(theta, "rope theta")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float64) / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().to(torch.float32), angles.sin().to(torch.float32)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[..., k], x[..., k + d/2]) of x (B, H, T, D) by the given angles (T, D/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)


def apply_rope_scaled(x: Tensor, cos: Tensor, sin: Tensor, factor: Tensor) -> Tensor:
    """rope(x) * factor with the factor folded into the tables, for the SSMax queries.

    RoPE is linear, so rope(x) * f = x1 (cos f) - x2 (sin f) | x1 (sin f) + x2 (cos f): the
    per-head, per-position factor f (H, T, 1) scales the (T, D/2) tables, not a (B, H, T, D)
    tensor, and no pass over the queries is added. Forward and backward are written out (see
    `_RopeScaled`): fused multiply-adds, and for the factor's gradient one product and one
    reduction, instead of autograd's generic backward through four scaled-table products.
    Computed in float32 (float64 for float64 input), like `apply_rope`; not bit-identical to
    rotating, then multiplying (the rounding differs).
    """
    if torch.is_grad_enabled() and (x.requires_grad or factor.requires_grad):
        return _RopeScaled.apply(x, cos, sin, factor)
    return _rotate_scaled(x, cos, sin, factor)  # decoding, evaluation: no autograd bookkeeping


def _working(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _rotate_scaled(x: Tensor, cos: Tensor, sin: Tensor, factor: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    xw = _working(x)
    x1, x2 = xw[..., :half], xw[..., half:]
    cos_f, sin_f = cos * factor, sin * factor  # (H, T, D/2)
    rotated = torch.cat((torch.addcmul(x1 * cos_f, x2, sin_f, value=-1), torch.addcmul(x1 * sin_f, x2, cos_f)), dim=-1)
    return rotated.to(x.dtype)


class _RopeScaled(torch.autograd.Function):
    """y = R x * f, R the rotation by the RoPE angles. With u = R^T g (g the gradient of y):
    dL/dx = f u, and dL/df = sum over batch and dimension of u * x (u . x = g . R x)."""

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor, factor: Tensor) -> Tensor:
        ctx.save_for_backward(x, cos, sin, factor)
        return _rotate_scaled(x, cos, sin, factor)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, cos, sin, factor = ctx.saved_tensors
        half = grad.shape[-1] // 2
        gw = _working(grad)
        g1, g2 = gw[..., :half], gw[..., half:]
        unrotated = torch.cat((torch.addcmul(g1 * cos, g2, sin), torch.addcmul(g2 * cos, g1, sin, value=-1)), dim=-1)  # R^T g
        grad_factor = None
        if ctx.needs_input_grad[3]:
            per_query = (unrotated * _working(x)).sum(-1, keepdim=True)  # (B, H, T, 1)
            one_batch = per_query.shape[0] == 1 and factor.dim() == 3  # then no sum over the batch
            grad_factor = (per_query[0] if one_batch else per_query.sum_to_size(factor.shape)).to(factor.dtype)
        grad_x = (unrotated * factor).to(x.dtype) if ctx.needs_input_grad[0] else None
        return grad_x, None, None, grad_factor
