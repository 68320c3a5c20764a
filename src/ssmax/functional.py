"""Scalable-Softmax (SSMax) as plain functions, and the closed forms chapter 1 derives.

SSMax(z)_i = n^{s z_i} / sum_j n^{s z_j} = softmax((s log n + b) z)_i.

In attention the factor ``s log n + b`` depends only on the query (through the number of keys
``n`` it sees), so it can multiply the queries before a fused attention kernel; `query_scale`
computes that factor. `ssmax` is the stand-alone function, for anything that is not attention.
"""

from __future__ import annotations

import math
import numbers
from typing import Union

import torch
from torch import Tensor

Scalar = Union[float, int, Tensor]

__all__ = [
    "ssmax",
    "query_scale",
    "causal_key_counts",
    "softmax_max",
    "softmax_max_bound",
    "ssmax_max_bound",
    "required_logit",
]


def _as_tensor(value: Scalar, like: Tensor) -> Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def query_scale(n: Scalar, s: Scalar, b: Scalar | None = None) -> Tensor:
    """The per-query inverse temperature ``s * log(n) (+ b)``.

    ``n`` is the number of keys the query attends to: ``i + 1`` for the 0-based causal position
    ``i`` (see `causal_key_counts`). Computed in float32 or wider so that ``log n`` stays exact
    for n up to 10^7 whatever dtype the queries have; cast the result to the queries' dtype.
    ``n < 1`` raises a ValueError for CPU tensors and numbers (not checked on accelerators).
    """
    n_t = torch.as_tensor(n)
    if not n_t.is_floating_point() or n_t.dtype in (torch.float16, torch.bfloat16):
        n_t = n_t.to(torch.float32)
    # checked on the CPU only: on an accelerator the check would force a device-to-host sync
    # on every call (the model's own path builds n with causal_key_counts, always >= 1)
    if n_t.device.type == "cpu" and bool((n_t < 1).any()):
        raise ValueError(f"n must be >= 1 (the number of keys a query sees); got min {n_t.min().item()}")
    scale = torch.as_tensor(s, dtype=n_t.dtype, device=n_t.device) * torch.log(n_t)
    if b is not None:
        scale = scale + torch.as_tensor(b, dtype=n_t.dtype, device=n_t.device)
    return scale


def causal_key_counts(query_len: int, past_len: int = 0, device: torch.device | str | None = None) -> Tensor:
    """Keys seen by each query in causal attention: ``n_i = past_len + i + 1``.

    With a KV cache holding ``past_len`` earlier tokens the new query ``i`` sees those plus
    itself and the ``i`` new tokens before it.
    """
    for name, value in (("query_len", query_len), ("past_len", past_len)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
    return torch.arange(past_len + 1, past_len + query_len + 1, device=device, dtype=torch.float32)


def _check_number(name: str, value: object) -> None:
    """ValueError unless ``value`` is a real number or a tensor (not None, a str, a bool...)."""
    if torch.is_tensor(value):
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be a real number or tensor; got a tensor of dtype {value.dtype}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number or tensor; got {value!r}")


def _check_finite(name: str, value: Scalar, minimum: float | None = None) -> None:
    """ValueError unless ``value`` is finite (and >= minimum); tensors only on the CPU. A Python
    number is checked as a float64 (1e300 is finite, though not in float32)."""
    _check_number(name, value)
    t = value if torch.is_tensor(value) else torch.as_tensor(float(value), dtype=torch.float64)
    if t.device.type != "cpu":
        return  # on an accelerator the check would force a device-to-host sync on every call
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if minimum is not None and bool((t < minimum).any()):
        raise ValueError(f"{name} must be >= {minimum:g}; got {value!r}")


def ssmax(x: Tensor, s: Scalar, n: Scalar | None = None, b: Scalar = 0.0, dim: int = -1) -> Tensor:
    """softmax((s log n + b) x) along ``dim``.

    ``n`` defaults to the size of ``dim``; ``s``, ``b`` and ``n`` may be floats or tensors that
    broadcast against ``x``. The softmax runs in float32 (or float64 for float64 input) and is
    cast back, so float16/bfloat16 inputs give no NaN or inf.

    Special values, chosen so that nothing comes out silently wrong:

    - ``-inf`` marks a masked entry: it gets exactly 0, even where the factor is 0 (n = 1),
      where a plain ``factor * x`` would give NaN. A row whose entries are all masked returns
      zeros (as masked attention rows do).
    - ``+inf`` or NaN anywhere in a row makes that whole row NaN, as `torch.softmax` does:
      a bad input shows up instead of looking like a masked row.
    - ``x`` must be a floating-point tensor with at least one dimension (integer input is a
      ValueError naming its dtype, not a tensor of integer zeros); ``dim`` must be a valid
      dimension of it.
    - ``s``, ``b`` and ``n`` must be finite; ``s >= 0`` (a negative s would reverse the order of
      the logits) and ``n >= 1``. ``s = 0`` is allowed: with ``b = 0`` it gives the uniform
      distribution over the unmasked entries, the limit of SSMax as s goes to 0. Tensor values
      are checked on the CPU only (on an accelerator the check would force a host sync).
    """
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor; got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x must have at least one dimension (the one ssmax normalises over); got a 0-d tensor")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim must be an integer in [{-x.dim()}, {x.dim() - 1}] for x of shape "
                         f"{tuple(x.shape)}; got {dim!r}")
    _check_finite("s", s, minimum=0.0)
    _check_finite("b", b)
    if n is not None:
        _check_finite("n", n)
    elif x.shape[dim] == 0:
        return torch.empty_like(x)  # nothing to normalise over, as torch.softmax
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xw = x.to(work_dtype)
    if n is None:
        n = x.shape[dim]
    # n in the working dtype, so float64 input gets log n (and the factor) in float64 too
    shapes = {k: tuple(torch.as_tensor(v).shape) for k, v in (("s", s), ("b", b), ("n", n))}
    try:
        factor = query_scale(torch.as_tensor(n, dtype=work_dtype, device=x.device), s, b).to(work_dtype)
        fits = factor.dim() <= x.dim() and torch.broadcast_shapes(factor.shape, x.shape) == x.shape
    except RuntimeError:  # s, b and n do not broadcast together, or not against x
        fits = False
    if not fits:
        raise ValueError(f"s, b and n must broadcast against x of shape {tuple(x.shape)} without changing its "
                         f"shape; got shapes {shapes}")
    if factor.device.type == "cpu" and not bool(torch.isfinite(factor).all()):
        raise ValueError(f"s * log(n) + b overflows {work_dtype} (x's working dtype); got s={s!r}, b={b!r}")
    masked = torch.isneginf(xw)
    logits = torch.where(masked, torch.full_like(xw, -math.inf), _scaled(xw, masked, factor, dim))
    # +inf or NaN poisons its whole row, as in torch.softmax (added, so gradients see it too)
    poisoned = (torch.isnan(xw) | torch.isposinf(xw)).any(dim=dim, keepdim=True)
    logits = logits + torch.where(poisoned, math.nan, 0.0).to(work_dtype)
    # a fully masked row: softmax over zeros (finite, with finite gradients), then zeroed
    fully_masked = masked.all(dim=dim, keepdim=True)
    probs = torch.softmax(logits.masked_fill(fully_masked, 0.0), dim=dim).masked_fill(fully_masked, 0.0)
    return probs.to(x.dtype)


def _scaled(xw: Tensor, masked: Tensor, factor: Tensor, dim: int) -> Tensor:
    """factor * x for the unmasked entries, without overflow: where the factor is the same along
    ``dim`` (always, unless n varies along it), x is first shifted by its row maximum (row
    minimum for a negative factor), which softmax ignores, so factor * (x - shift) is <= 0 and
    never inf - inf = NaN ([3e38, -3e38, 1] with s = 10 stays finite)."""
    finite = xw.masked_fill(~torch.isfinite(xw), 0.0)  # masked, +inf, NaN: handled by the caller
    aligned = factor.reshape((1,) * (xw.dim() - factor.dim()) + tuple(factor.shape))
    if aligned.shape[dim] != 1:
        return factor * finite
    top = finite.masked_fill(masked, -math.inf).amax(dim=dim, keepdim=True)
    bottom = finite.masked_fill(masked, math.inf).amin(dim=dim, keepdim=True)
    shift = torch.where(aligned >= 0, top, bottom)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift)).detach()  # fully masked rows
    info = torch.finfo(xw.dtype)
    return aligned * (finite - shift).clamp(info.min, info.max)


# --- theory helpers (chapter 1) -------------------------------------------------------------

def softmax_max(z: Tensor, dim: int = -1) -> Tensor:
    """The largest output of softmax(z): the quantity that fades as n grows."""
    return torch.softmax(z.to(torch.float64), dim=dim).amax(dim=dim)


def softmax_max_bound(n: Scalar, gap: Scalar) -> Tensor:
    """Upper bound on max softmax(z) for n logits spread over a range ``gap = z_max - z_min``.

    max_i softmax(z)_i <= 1 / (1 + (n - 1) e^{-gap}); equality when the other n - 1 logits all
    sit at z_max - gap. Tends to 0 as n grows unless the gap grows like log n.
    """
    _check_finite("n", n, minimum=1.0)
    _check_number("gap", gap)
    n_t = torch.as_tensor(n, dtype=torch.float64)
    gap_t = torch.as_tensor(gap, dtype=torch.float64)
    # 1/(1 + (n-1) e^{-gap}) = sigmoid(gap - log(n-1)); n = 1 gives 1.
    return torch.where(n_t > 1, torch.sigmoid(gap_t - torch.log(torch.clamp(n_t - 1, min=1.0))),
                       torch.ones_like(n_t * gap_t))


def ssmax_max_bound(n: Scalar, gap: Scalar, s: Scalar) -> Tensor:
    """SSMax's counterpart: 1 / (1 + (n - 1) n^{-s gap}).

    Tends to 1 if gap > 1/s and to 0 if gap < 1/s as n grows: a fixed margin suffices.
    """
    _check_finite("n", n, minimum=1.0)
    _check_finite("s", s)
    _check_number("gap", gap)
    n_t = torch.as_tensor(n, dtype=torch.float64)
    gap_t = torch.as_tensor(gap, dtype=torch.float64)
    s_t = torch.as_tensor(s, dtype=torch.float64)
    return softmax_max_bound(n_t, s_t * torch.log(n_t) * gap_t)


def required_logit(n: int, target: float, s: float | None = None, tol: float = 1e-10) -> float:
    """The z_max whose output reaches ``target`` when the other n - 1 logits are evenly spaced
    in [0, 1] (the paper's Fig. 3). ``s=None`` means plain softmax; otherwise SSMax with that s.

    Output probability is increasing in z_max, so bisection finds it to ``tol``.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n must be an integer >= 2; got {n!r}")
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not 0.0 < target < 1.0:
        raise ValueError(f"target must be a number in (0, 1); got {target!r}")
    if s is not None and (isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s) or s <= 0):
        raise ValueError(f"s must be None (softmax) or a finite number > 0; got {s!r}")
    others = torch.linspace(0.0, 1.0, n - 1, dtype=torch.float64)
    factor = 1.0 if s is None else s * math.log(n)

    def prob(z_max: float) -> float:
        logits = torch.cat([others, torch.tensor([z_max], dtype=torch.float64)]) * factor
        return torch.softmax(logits, dim=0)[-1].item()

    lo, hi = 0.0, 1.0
    while prob(hi) < target:
        hi *= 2.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if prob(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)
