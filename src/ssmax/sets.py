"""Set tasks where only the number of items n changes between training and test, and the set model.

No positions anywhere: an example is an unordered set of n items and one query, so a model
trained on small sets and tested on large ones meets nothing new but n. That isolates attention
fading from everything else that goes wrong beyond a language model's training length.

Tasks (`sample_batch`):
  maxret  max retrieval (Velickovic et al. 2024): each item is a priority p ~ U[0,1] and one of
          ``n_classes`` classes; the answer is the class of the max-priority item.
  keyret  key retrieval: each item is a (key, value) pair, the key a random vector in R^key_dim
          with i.i.d. N(0, 1/key_dim) entries (norm close to 1, distinct with probability 1),
          the value one of ``n_classes``; the query is the key of one item; the answer is that
          item's value.

The set model (`SetModel`): an MLP embeds each item; one attention layer with a query (a learned
token for maxret, the query key through an MLP for keyret) reads the set; an MLP maps the result
to class logits. Its logits are either ``q.k / sqrt(d)`` ("dot") or ``g cos(q, k)`` with a
learnable gain g: capped, ``g = g_max sigmoid(rho)`` ("capped": the margin between the key item
and the others can never exceed 2 g_max), or free, ``g = exp(rho)`` ("free"). The softmax variants
multiply those logits by ``ssmax.attention.QueryScale`` with n = each example's set size, the same
module the language model uses; ASEntmax multiplies them by its own length scale and takes
1.5-entmax instead of softmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import QueryScale

TASKS = ("maxret", "keyret")
VARIANTS = ("softmax", "ssmax", "ssmax_fixed", "asentmax")
LOGIT_MODES = ("dot", "capped", "free")
EVAL_VARIANTS = ("logn", "adaptive_temperature")  # applied to trained softmax models, no retraining

# Velickovic et al. (2024), "softmax is not enough", their published JAX listing: a degree-4
# polynomial in the Shannon entropy H of the attention row, highest power first (jnp.polyval),
# applied only where H > 0.5, never below 1.
ADAPTIVE_TEMPERATURE_POLY = (-0.037, 0.481, -2.3, 4.917, -1.791)
ADAPTIVE_TEMPERATURE_MIN_ENTROPY = 0.5


def set_s_init(min_size: int, max_size: int) -> float:
    """1 / mean log n over the training set sizes (n uniform on {min..max}): SSMax's factor
    s log n then averages 1 where the model trains, as `default_s_init` does for sequences."""
    if not 2 <= min_size <= max_size:
        raise ValueError(f"need 2 <= min_size <= max_size; got {min_size}, {max_size}")
    sizes = range(min_size, max_size + 1)
    return 1.0 / (sum(math.log(n) for n in sizes) / len(sizes))


# --- the tasks --------------------------------------------------------------------------------

@dataclass
class SetBatch:
    features: Tensor  # (B, N, feature_dim) float: the priority (maxret) or the key (keyret)
    classes: Tensor  # (B, N) long: the class (maxret) or the value (keyret) of each item
    query: Optional[Tensor]  # (B, query_dim) for keyret, None for maxret (learned query token)
    mask: Optional[Tensor]  # (B, N) bool, True for real items; None when every set has N items
    n: Tensor  # (B,) long: set size of each example
    target: Tensor  # (B,) long: index of the item that holds the answer
    label: Tensor  # (B,) long: the answer


def feature_dim(task: str, key_dim: int) -> int:
    return 1 if check_task(task) == "maxret" else key_dim


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    return task


def sample_batch(task: str, sizes: Tensor, generator: torch.Generator, n_classes: int = 10,
                 key_dim: int = 64) -> SetBatch:
    """One batch of sets with the given sizes (padded to the largest, with a mask if they differ).
    All randomness comes from ``generator``, so a seed fixes the sets exactly."""
    check_task(task)
    sizes = torch.as_tensor(sizes, dtype=torch.long)
    if sizes.ndim != 1 or sizes.numel() == 0 or int(sizes.min()) < 2:
        raise ValueError(f"sizes must be a non-empty 1-D tensor of set sizes >= 2; got {sizes.tolist()[:8]}")
    B, N = sizes.numel(), int(sizes.max())
    valid = torch.arange(N)[None, :] < sizes[:, None]
    mask = None if bool(valid.all()) else valid
    classes = torch.randint(0, n_classes, (B, N), generator=generator)
    if task == "maxret":
        priority = torch.rand(B, N, generator=generator, dtype=torch.float64)
        priority = priority.masked_fill(~valid, -1.0)  # padding never wins
        target = priority.argmax(dim=1)
        features = priority.float().clamp(min=0.0)[..., None]
        query = None
    else:
        features = torch.randn(B, N, key_dim, generator=generator) / math.sqrt(key_dim)
        target = (torch.rand(B, generator=generator) * sizes).long().clamp(max=sizes - 1)
        query = features[torch.arange(B), target]
    if mask is not None:
        features = features.masked_fill(~valid[..., None], 0.0)
    label = classes[torch.arange(B), target]
    return SetBatch(features, classes, query, mask, sizes, target, label)


# --- the model --------------------------------------------------------------------------------

def _mlp(d_in: int, width: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, d_out))


class ItemEmbedding(nn.Module):
    """MLP of an item's features and its one-hot class; the first layer's class columns are an
    embedding lookup (the same map as a linear layer on the concatenation, without the one-hot)."""

    def __init__(self, d_features: int, n_classes: int, width: int):
        super().__init__()
        self.features = nn.Linear(d_features, width)
        self.classes = nn.Embedding(n_classes, width)
        self.out = nn.Linear(width, width)
        # initialised as the one linear layer on [features, one-hot class] would be: uniform
        # within 1/sqrt(fan_in), so neither part drowns the other (an embedding's N(0, 1)
        # would make the class 8x louder than a key and slow learning the match)
        bound = 1 / math.sqrt(d_features + n_classes)
        for weight in (self.features.weight, self.features.bias, self.classes.weight):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, features: Tensor, classes: Tensor) -> Tensor:
        return self.out(torch.relu(self.features(features) + self.classes(classes)))


class ASEntmaxScale(nn.Module):
    """ASEntmax's query scale (Vasylenko et al. 2025): delta + beta (log n)^gamma per head, with
    beta = softplus(W_b h) and gamma = gamma_range tanh(W_g h) functions of the query's hidden
    state h (the reference code's "adapt-softplus-tanh", delta = 1, gamma_range = 2). The
    reference uses log(position + 2) = log(n + 1) to avoid log 1 = 0; set sizes here are >= 2,
    so we use log n, the same n as SSMax."""

    def __init__(self, width: int, n_head: int, delta: float = 1.0, gamma_range: float = 2.0):
        super().__init__()
        self.beta_proj = nn.Linear(width, n_head)
        self.gamma_proj = nn.Linear(width, n_head)
        self.delta, self.gamma_range = delta, gamma_range

    def forward(self, h_query: Tensor, n: Tensor) -> Tensor:
        """Factor of shape (B, H) for query states (B, width) and set sizes n (B,)."""
        beta = F.softplus(self.beta_proj(h_query))
        gamma = self.gamma_range * torch.tanh(self.gamma_proj(h_query))
        return self.delta + beta * torch.log(n.float())[:, None] ** gamma


def adaptive_temperature(logits: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Velickovic et al.'s inverse temperature beta >= 1 for each attention row (..., N):
    poly(H) where the row's softmax entropy H exceeds 0.5, else 1; shape (..., 1)."""
    probs = _masked_softmax(logits, mask)
    entropy = -torch.special.xlogy(probs, probs).sum(-1, keepdim=True)
    beta = torch.zeros_like(entropy)
    for c in ADAPTIVE_TEMPERATURE_POLY:  # Horner, highest power first
        beta = beta * entropy + c
    return torch.where(entropy > ADAPTIVE_TEMPERATURE_MIN_ENTROPY, beta.clamp(min=1.0), torch.ones_like(beta))


def _masked_softmax(logits: Tensor, mask: Optional[Tensor]) -> Tensor:
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return torch.softmax(logits, dim=-1)


def asentmax_probs(logits: Tensor, mask: Optional[Tensor], alpha: float, n_iter: int) -> Tensor:
    """alpha-entmax of the (already scaled) logits along the last axis, via the `entmax`
    package's bisection (imported here, so nothing else needs the package)."""
    from entmax import entmax_bisect

    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return entmax_bisect(logits, alpha=alpha, dim=-1, n_iter=n_iter)


@dataclass
class Attention:
    """What one attention read produced: the weights and the pieces the chapter measures."""
    probs: Tensor  # (B, H, N)
    raw_logits: Tensor  # (B, H, N): before any n-dependent factor (the "margin" logits)
    factor: Tensor  # (B, H): the inverse temperature that multiplied them


class SetModel(nn.Module):
    def __init__(self, task: str, variant: str, logits: str = "dot", width: int = 64, n_head: int = 1,
                 n_classes: int = 10, key_dim: int = 64, s_init: float = 1.0, gain_max: float = 8.0,
                 gain_init: float = 2.0, entmax_alpha: float = 1.5, entmax_iters: int = 30):
        super().__init__()
        check_task(task)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
        if logits not in LOGIT_MODES:
            raise ValueError(f"logits must be one of {LOGIT_MODES}; got {logits!r}")
        if width % n_head:
            raise ValueError(f"width ({width}) must be divisible by n_head ({n_head})")
        if logits == "capped" and not 0 < gain_init < gain_max:
            raise ValueError(f"need 0 < gain_init < gain_max for capped logits; got {gain_init}, {gain_max}")
        self.task, self.variant, self.logit_mode = task, variant, logits
        self.n_head, self.head_dim = n_head, width // n_head
        self.gain_max, self.entmax_alpha, self.entmax_iters = gain_max, entmax_alpha, entmax_iters
        self.items = ItemEmbedding(feature_dim(task, key_dim), n_classes, width)
        if task == "maxret":
            self.query_token = nn.Parameter(torch.randn(width))
        else:
            self.query_mlp = _mlp(key_dim, width, width)
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.head = _mlp(width, width, n_classes)
        if variant == "asentmax":
            self.length_scale = ASEntmaxScale(width, n_head)
        else:
            self.query_scale = QueryScale(variant, n_head, s_init)
        if logits == "capped":  # g = g_max sigmoid(rho)
            self.rho = nn.Parameter(torch.tensor(math.log(gain_init / (gain_max - gain_init))))
        elif logits == "free":  # g = exp(rho)
            self.rho = nn.Parameter(torch.tensor(math.log(gain_init)))

    def gain(self) -> Optional[Tensor]:
        if self.logit_mode == "capped":
            return self.gain_max * torch.sigmoid(self.rho)
        if self.logit_mode == "free":
            return torch.exp(self.rho)
        return None

    def read(self, batch: SetBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Raw attention logits (B, H, N), item states x (B, N, width) and query states
        (B, width): everything that does not depend on how the logits become weights.

        With one query per set, q.(W_k x_j) = (W_k^T q).x_j, so "dot" logits project the query
        into item space instead of every item into key space (same numbers, a third of the
        work at 16k items); cosine logits need each key's norm and project the items."""
        x = self.items(batch.features, batch.classes)
        B = x.shape[0]
        h_q = self.query_token.expand(B, -1) if self.task == "maxret" else self.query_mlp(batch.query)
        q = self.q_proj(h_q).unflatten(-1, (self.n_head, self.head_dim))  # (B, H, D)
        if self.logit_mode == "dot":
            w_k = self.k_proj.weight.unflatten(0, (self.n_head, self.head_dim))  # (H, D, width)
            raw = torch.einsum("bhw,bnw->bhn", torch.einsum("bhd,hdw->bhw", q, w_k), x) / math.sqrt(self.head_dim)
        else:
            k = self.k_proj(x).unflatten(-1, (self.n_head, self.head_dim))  # (B, N, H, D)
            dots = torch.einsum("bhd,bnhd->bhn", F.normalize(q, dim=-1), k)
            raw = self.gain() * dots / k.norm(dim=-1).transpose(1, 2).clamp(min=1e-12)
        return raw, x, h_q

    def factor(self, n: Tensor, h_q: Tensor) -> Tensor:
        """The model's own inverse temperature, (B, H): 1 for softmax, s log n for SSMax, ..."""
        if self.variant == "asentmax":
            return self.length_scale(h_q, n)
        f = self.query_scale(n.float())  # (H, B, 1) or None
        return torch.ones(n.shape[0], self.n_head, device=n.device) if f is None else f[..., 0].T

    def attend(self, raw: Tensor, h_q: Tensor, n: Tensor, mask: Optional[Tensor] = None,
               eval_variant: Optional[str] = None, train_max_size: int = 16) -> Attention:
        """Turn raw logits into weights. ``eval_variant`` applies an inference-time fix to a
        softmax model: "logn" multiplies by log n / log n_train beyond the largest training size
        (Qwen's LogN, `ssmax.baselines.qwen_logn`), "adaptive_temperature" is Velickovic et
        al.'s entropy-based temperature."""
        factor = self.factor(n, h_q)
        if eval_variant is not None:
            if self.variant != "softmax":
                raise ValueError(f"eval_variant applies to softmax models only; this one is {self.variant!r}")
            if eval_variant not in EVAL_VARIANTS:
                raise ValueError(f"eval_variant must be one of {EVAL_VARIANTS}; got {eval_variant!r}")
        if eval_variant == "logn":
            from .baselines import qwen_logn

            factor = factor * qwen_logn(train_max_size)(n.float())[:, None]
        mask_h = None if mask is None else mask[:, None, :]
        logits = raw * factor[..., None]
        if eval_variant == "adaptive_temperature":
            beta = adaptive_temperature(logits, mask_h)
            factor = factor * beta[..., 0]
            logits = logits * beta
        if self.variant == "asentmax":
            probs = asentmax_probs(logits, mask_h, self.entmax_alpha, self.entmax_iters)
        else:
            probs = _masked_softmax(logits, mask_h)
        return Attention(probs, raw, factor)

    def forward(self, batch: SetBatch, eval_variant: Optional[str] = None) -> tuple[Tensor, Attention]:
        raw, x, h_q = self.read(batch)
        att = self.attend(raw, h_q, batch.n, batch.mask, eval_variant)
        return self.classify(att, x), att

    def classify(self, att: Attention, x: Tensor) -> Tensor:
        """Class logits from the attention output sum_j a_j W_v x_j = W_v (sum_j a_j x_j) per head."""
        pooled = torch.einsum("bhn,bnw->bhw", att.probs.to(x.dtype), x)  # (B, H, width)
        values = self.v_proj(pooled).unflatten(-1, (self.n_head, self.head_dim))  # (B, H, H, D)
        out = torch.diagonal(values, dim1=1, dim2=2).transpose(1, 2)  # head h's block of its own sum
        return self.head(out.flatten(1))


# --- what the chapter measures ----------------------------------------------------------------

def target_weight(att: Attention, target: Tensor) -> Tensor:
    """Attention on the item that holds the answer, (B,), averaged over heads."""
    idx = target[:, None, None].expand(-1, att.probs.shape[1], 1)
    return att.probs.gather(-1, idx)[..., 0].mean(1)


def attention_entropy(att: Attention) -> Tensor:
    """Shannon entropy of each attention row, (B,), averaged over heads (0 log 0 = 0)."""
    return -torch.special.xlogy(att.probs, att.probs).sum(-1).mean(1)


def effective_margin(att: Attention, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """The margin Delta that makes chapter 1's two-level formula exact for each set, (B,):

        target weight = 1 / (1 + (n - 1) exp(-F Delta)),
        Delta = -(1/F) log( mean_{j != target} exp(-F (z_target - z_j)) ),

    with z the raw logits and F the softmax's inverse temperature. For two-level logits it is the
    gap itself; in general a soft minimum of the gaps. Averaged over heads."""
    raw, factor = att.raw_logits, att.factor[..., None]  # (B,H,N), (B,H,1)
    idx = target[:, None, None].expand(-1, raw.shape[1], 1)
    z_t = raw.gather(-1, idx)
    scaled = factor * (raw - z_t)  # F (z_j - z_t)
    others = torch.ones_like(raw, dtype=torch.bool).scatter(-1, idx, False)
    if mask is not None:
        others &= mask[:, None, :]
    scaled = scaled.masked_fill(~others, float("-inf"))
    count = others.sum(-1).clamp(min=1)
    log_mean = torch.logsumexp(scaled.double(), dim=-1) - torch.log(count.double())
    return (-log_mean / factor[..., 0].double()).mean(1).float()


def top_two_gap(att: Attention, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Raw logit of the target minus the largest other raw logit, (B,), averaged over heads."""
    raw = att.raw_logits
    idx = target[:, None, None].expand(-1, raw.shape[1], 1)
    z_t = raw.gather(-1, idx)[..., 0]
    others = raw.scatter(-1, idx, float("-inf"))
    if mask is not None:
        others = others.masked_fill(~mask[:, None, :], float("-inf"))
    return (z_t - others.amax(-1)).mean(1)


def two_level_weight(n: Tensor, margin: Tensor, factor: Tensor) -> Tensor:
    """Chapter 1's top weight 1 / (1 + (n - 1) e^{-F Delta}), broadcasting n, Delta and F."""
    n = torch.as_tensor(n, dtype=torch.float64)
    return torch.sigmoid(torch.as_tensor(factor, dtype=torch.float64) * torch.as_tensor(margin, dtype=torch.float64)
                         - torch.log((n - 1).clamp(min=1e-300)))
