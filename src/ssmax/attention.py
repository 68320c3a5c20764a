"""Causal self-attention with one switch, `scaling`, for softmax and the SSMax variants.

Every variant is "multiply the queries by a per-head, per-query factor, then run ordinary
attention", so the fused kernel (`scaled_dot_product_attention`) does the real work:

    softmax      factor 1                                   the paper's (a)
    ssmax        s_h log n, s_h learnable per head          (b)
    ssmax_fixed  log n (s = 1, no parameter)                (c)
    ssmax_bias   s_h log n + b_h, both learnable            (d)
    learned_pn   s_h p_n + b_h, p_n learnable per position   (Fig. 2), p shared by all layers

n is the number of keys the query sees: past_len + i + 1 for new query i. With RoPE the factor is
folded into the queries' rotation tables (`rope.apply_rope_scaled`), so SSMax adds no pass over
the queries; without RoPE (position="none") it multiplies them.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .functional import causal_key_counts
from .rope import apply_rope, apply_rope_scaled

SCALINGS = ("softmax", "ssmax", "ssmax_fixed", "ssmax_bias", "learned_pn")

# A function of the key counts n (float32, shape (T,)) returning an extra factor of shape (T,)
# that multiplies the queries of every head; used for inference-time baselines.
QueryScaleFn = Callable[[Tensor], Tensor]


def default_s_init(block_size: int) -> float:
    """1 / mean_{n <= T} log n: makes s log n average to 1 over the training positions,
    so a model starts (or is switched) with logits unchanged on average."""
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 to define s_init; got {block_size}")
    mean_log_n = math.lgamma(block_size + 1) / block_size
    return 1.0 / mean_log_n


class QueryScale(nn.Module):
    """The per-head factor that multiplies the queries; holds s (and b) for its layer."""

    def __init__(self, scaling: str, n_head: int, s_init: float):
        super().__init__()
        if scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}; got {scaling!r}")
        self.scaling = scaling
        self.n_head = n_head
        if scaling in ("ssmax", "ssmax_bias"):
            self.s = nn.Parameter(torch.full((n_head,), float(s_init)))
        elif scaling == "learned_pn":
            self.s = nn.Parameter(torch.ones(n_head))
        if scaling in ("ssmax_bias", "learned_pn"):
            self.b = nn.Parameter(torch.zeros(n_head))

    def forward(self, n: Optional[Tensor], p_n: Optional[Tensor] = None,
                log_n: Optional[Tensor] = None) -> Optional[Tensor]:
        """Factor of shape (H, T, 1) for key counts n (T,), or None for plain softmax.
        ``log_n`` (= log n, precomputed once per forward for all layers) replaces n if given."""
        if self.scaling == "softmax":
            return None
        if self.scaling == "learned_pn":
            if p_n is None:
                raise ValueError("scaling='learned_pn' needs the shared per-position p_n")
            base = p_n
        else:
            base = torch.log(n) if log_n is None else log_n
        s = torch.ones(self.n_head, device=base.device) if self.scaling == "ssmax_fixed" else self.s.float()
        factor = s[:, None, None] * base[None, :, None]
        if hasattr(self, "b"):
            factor = factor + self.b.float()[:, None, None]
        return factor

    def extra_repr(self) -> str:
        return f"scaling={self.scaling!r}, n_head={self.n_head}"


class KVCache:
    """Keys (after RoPE) and values of the tokens seen so far, one entry per layer."""

    def __init__(self, n_layer: int):
        self.keys: list[Optional[Tensor]] = [None] * n_layer
        self.values: list[Optional[Tensor]] = [None] * n_layer

    def __len__(self) -> int:
        """Tokens cached so far (read it before a forward pass: layer 0 grows first)."""
        return 0 if self.keys[-1] is None else self.keys[-1].shape[2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


def causal_mask(query_len: int, key_len: int, device: torch.device) -> Tensor:
    """Boolean mask (query_len, key_len), True where attending is allowed; queries are the
    last query_len positions of the key_len tokens (bottom-right aligned, as with a cache)."""
    past = key_len - query_len
    q_pos = torch.arange(past, key_len, device=device)[:, None]
    k_pos = torch.arange(key_len, device=device)[None, :]
    return k_pos <= q_pos


def explicit_attention_probs(q: Tensor, k: Tensor, query_positions: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) for queries at the given absolute positions, causally masked,
    in float32. q is (B, H, R, D) already multiplied by its factor; k is (B, H, S, D).

    Materialises only R x S, so attention maps of a few rows of a 16k-token context are cheap.
    """
    logits = torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
    allowed = torch.arange(k.shape[2], device=k.device)[None, :] <= query_positions[:, None]
    logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.softmax(logits, dim=-1)


def position_and_scale(q: Tensor, k: Tensor, cos: Optional[Tensor], sin: Optional[Tensor],
                       factor: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """RoPE on q and k (cos None: no positional encoding), with the query factor (H, T, 1), if
    any, folded into the queries' rotation; without RoPE the factor multiplies q directly."""
    if cos is None:
        return (q if factor is None else q * factor.to(q.dtype)), k
    q = apply_rope(q, cos, sin) if factor is None else apply_rope_scaled(q, cos, sin, factor)
    return q, apply_rope(k, cos, sin)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, scaling: str, s_init: float):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_head = n_head
        self.head_dim = n_embd // n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)
        self.query_scale = QueryScale(scaling, n_head, s_init)

    def forward(
        self,
        x: Tensor,
        cos: Optional[Tensor],
        sin: Optional[Tensor],
        p_n: Optional[Tensor] = None,
        cache: Optional[KVCache] = None,
        past_len: int = 0,
        layer: int = 0,
        query_scale_fn: Optional[QueryScaleFn] = None,
        impl: str = "fused",
        probe_rows: Optional[Tensor] = None,
        n: Optional[Tensor] = None,
        log_n: Optional[Tensor] = None,
    ) -> tuple[Tensor, Optional[Tensor]]:
        """Returns the attention output and, if ``probe_rows`` (absolute query positions) is
        given, the attention probabilities of those rows, shape (B, H, R, keys). ``n`` and
        ``log_n``, the key counts of the queries and their log, are computed here unless the
        caller passes them (the model computes them once for all layers)."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        if n is None:
            n = causal_key_counts(T, past_len, device=x.device)
        factor = self.query_scale(n, p_n, log_n=log_n)
        if query_scale_fn is not None:
            extra = query_scale_fn(n).to(device=x.device, dtype=torch.float32)[None, :, None]
            factor = extra if factor is None else factor * extra
        q, k = position_and_scale(q, k, cos, sin, factor)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        if k.shape[2] != past_len + T:
            raise ValueError(f"past_len={past_len} does not match the cache ({k.shape[2] - T} cached tokens)")

        if impl == "fused":
            if past_len == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif T == 1:
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                mask = causal_mask(T, k.shape[2], x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif impl == "explicit":
            positions = torch.arange(past_len, past_len + T, device=x.device)
            y = torch.matmul(explicit_attention_probs(q, k, positions), v.float()).to(q.dtype)
        else:
            raise ValueError(f"impl must be 'fused' or 'explicit'; got {impl!r}")

        probs = None
        if probe_rows is not None:
            local = probe_rows - past_len
            if bool(((local < 0) | (local >= T)).any()):
                raise ValueError(f"probe_rows must lie in [{past_len}, {past_len + T}); got {probe_rows.tolist()}")
            probs = explicit_attention_probs(q[:, :, local], k, probe_rows)

        y = y.transpose(1, 2).reshape(B, T, C)
        return self.proj(y), probs
