"""A small Llama-style decoder (pre-norm RMSNorm, SwiGLU MLP, RoPE, untied embeddings) whose
attention is softmax or one of the SSMax variants, chosen by `GPTConfig.scaling`.

The paper's 162M model is this architecture at 12 layers x 768 wide with a GPT-2 vocabulary;
here the vocabulary is bytes (256) and the size is set by the experiment profile.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import SCALINGS, CausalSelfAttention, KVCache, QueryScale, QueryScaleFn, default_s_init
from .rope import check_theta, rope_angles


POSITIONS = ("rope", "none")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _check_positive_finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")


def check_token_ids(idx: Tensor, vocab_size: int) -> None:
    """ValueError naming ``idx`` unless it is an integer tensor (B, T) with T >= 1 and ids in
    [0, vocab_size). The id range is checked for CPU tensors only: on an accelerator it would
    force a device-to-host sync on every call (there an id out of range fails in the embedding)."""
    if not torch.is_tensor(idx):
        raise ValueError(f"idx must be a torch.Tensor of token ids; got {type(idx).__name__}")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValueError(f"idx must hold integer token ids; got dtype {idx.dtype}")
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must have shape (batch, length) with length >= 1; got shape {tuple(idx.shape)}")
    if idx.device.type == "cpu" and idx.numel() and bool(((idx < 0) | (idx >= vocab_size)).any()):
        raise ValueError(f"idx must hold token ids in [0, {vocab_size}); got min {int(idx.min())}, "
                         f"max {int(idx.max())}")


@dataclass
class GPTConfig:
    vocab_size: int = 256
    block_size: int = 256  # the training context length T
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    mlp_hidden: Optional[int] = None  # SwiGLU width; default ~8/3 n_embd rounded to 32
    scaling: str = "softmax"
    s_init: Optional[float] = None  # default 1 / mean_{n<=T} log n
    rope_theta: float = 10_000.0
    norm_eps: float = 1e-5
    position: str = "rope"  # "rope" | "none" (NoPE: causal attention alone carries order)

    def __post_init__(self) -> None:
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}; got {self.scaling!r}")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            _check_positive_int(name, getattr(self, name))
        if self.block_size < 2:
            raise ValueError(f"block_size must be >= 2; got {self.block_size}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"n_embd / n_head must be an even integer (RoPE); got {self.n_embd}/{self.n_head}")
        if self.mlp_hidden is None:
            self.mlp_hidden = 32 * math.ceil(8 * self.n_embd / 3 / 32)
        _check_positive_int("mlp_hidden", self.mlp_hidden)
        if self.s_init is None:
            self.s_init = default_s_init(self.block_size)
        for name in ("s_init", "rope_theta", "norm_eps"):
            _check_positive_finite(name, getattr(self, name))
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}; got {self.position!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, config.scaling, config.s_init)
        self.mlp_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = SwiGLU(config.n_embd, config.mlp_hidden)

    def forward(self, x: Tensor, **attn_kwargs) -> tuple[Tensor, Optional[Tensor]]:
        a, probs = self.attn(self.attn_norm(x), **attn_kwargs)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), probs


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # learned_pn: one scalar per key count n = 1..T shared by every layer and head; starts
        # at 1 (plain softmax) so any log-shape it takes is learned, not put in.
        self.p_n = nn.Parameter(torch.ones(config.block_size)) if config.scaling == "learned_pn" else None
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("down.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _p_n_for(self, n: Tensor) -> Optional[Tensor]:
        if self.p_n is None:
            return None
        # beyond the trained length the last learned value is reused
        index = torch.clamp(n.long() - 1, max=self.config.block_size - 1)
        return self.p_n.float()[index]

    def forward(
        self,
        idx: Tensor,
        rope_theta: Optional[float] = None,
        *,
        cache: Optional[KVCache] = None,
        query_scale_fn: Optional[QueryScaleFn] = None,
        attn_impl: str = "fused",
        probe_rows: Optional[Tensor] = None,
    ) -> Tensor:
        """Logits (B, T, vocab) for token ids idx (B, T).

        idx is checked (`check_token_ids`: integer ids in [0, vocab_size), T >= 1; the range on
        CPU tensors only). rope_theta overrides the trained theta (the paper evaluates with theta x 50);
        query_scale_fn multiplies every head's queries by an extra factor of n (inference-time
        baselines); attn_impl="explicit" materialises the attention matrix (tests);
        probe_rows: see `attention_rows`.
        """
        check_token_ids(idx, self.config.vocab_size)
        logits, _ = self._run(idx, rope_theta, cache, query_scale_fn, attn_impl, probe_rows)
        return logits

    @torch.no_grad()
    def attention_rows(
        self,
        idx: Tensor,
        rows: Tensor,
        rope_theta: Optional[float] = None,
        query_scale_fn: Optional[QueryScaleFn] = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Logits and, per layer, the attention probabilities (B, H, len(rows), T) of the chosen
        query positions only: the forward pass stays fused, and only len(rows) x T of each
        attention matrix is ever formed (the needle score at 16k tokens needs no 16k x 16k)."""
        check_token_ids(idx, self.config.vocab_size)
        rows = torch.as_tensor(rows, device=idx.device, dtype=torch.long)
        return self._run(idx, rope_theta, None, query_scale_fn, "fused", rows)

    def _run(self, idx, rope_theta, cache, query_scale_fn, attn_impl, probe_rows):
        B, T = idx.shape
        past_len = len(cache) if cache is not None else 0
        positions = torch.arange(past_len, past_len + T, device=idx.device)
        theta = self.config.rope_theta if rope_theta is None else check_theta(rope_theta)
        if self.config.position == "rope":
            cos, sin = rope_angles(self.config.n_embd // self.config.n_head, positions, theta)
        else:  # NoPE: no rotation; a rope_theta passed in has nothing to act on
            cos = sin = None
        n = positions.float() + 1
        log_n = torch.log(n) if self.config.scaling in ("ssmax", "ssmax_fixed", "ssmax_bias") else None  # once, not per layer
        p_n = self._p_n_for(n)
        x = self.embed(idx)
        maps = []
        for layer, block in enumerate(self.blocks):
            x, probs = block(x, cos=cos, sin=sin, p_n=p_n, cache=cache, past_len=past_len, layer=layer,
                             query_scale_fn=query_scale_fn, impl=attn_impl, probe_rows=probe_rows, n=n, log_n=log_n)
            maps.append(probs)
        logits = self.lm_head(self.norm(x))
        return logits, (maps if probe_rows is not None else None)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        rope_theta: Optional[float] = None,
        query_scale_fn: Optional[QueryScaleFn] = None,
    ) -> Tensor:
        """Greedy decoding with a KV cache: the prompt in one pass, then one token at a time,
        each new query with its own n = position + 1. Returns idx followed by the new tokens.
        The prompt idx (B, T >= 1) is checked as in `forward`."""
        check_token_ids(idx, self.config.vocab_size)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative integer; got {max_new_tokens!r}")
        cache = KVCache(self.config.n_layer)
        out = idx
        step_input = idx
        for _ in range(max_new_tokens):
            logits = self(step_input, rope_theta, cache=cache, query_scale_fn=query_scale_fn)
            next_token = logits[:, -1].argmax(dim=-1, keepdim=True)
            out = torch.cat([out, next_token], dim=1)
            step_input = next_token
        return out

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay only matrices (rank >= 2), as in the paper's Table 2; s, b, p_n
        and norm gains are never decayed."""
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def scale_parameters(self) -> dict[str, Tensor]:
        """The learned s (and b) of every layer, shape (n_layer, n_head), for the analysis."""
        out: dict[str, Tensor] = {}
        for attr in ("s", "b"):
            values = [getattr(block.attn.query_scale, attr, None) for block in self.blocks]
            if all(v is not None for v in values):
                out[attr] = torch.stack([v.detach().float().cpu() for v in values])
        return out


def switch_to_ssmax(model: GPT, s_init: Optional[float] = None) -> GPT:
    """Turn a softmax model into an SSMax model in place (the paper's variants e and f).

    Each attention layer gets a learnable s per head, set to 1 / mean_{n<=T} log n by default so
    that s log n averages to 1 over the training positions and the logits are unchanged on
    average at the switch. The new parameters live on the model's device.
    """
    if model.config.scaling != "softmax":
        raise ValueError(f"switch_to_ssmax needs a softmax model; this one has scaling={model.config.scaling!r}")
    s = default_s_init(model.config.block_size) if s_init is None else float(s_init)
    device = next(model.parameters()).device
    for block in model.blocks:
        block.attn.query_scale = QueryScale("ssmax", model.config.n_head, s).to(device)
    model.config.scaling = "ssmax"
    model.config.s_init = s
    return model
