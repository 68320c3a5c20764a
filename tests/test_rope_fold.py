"""SSMax's factor folded into the queries' RoPE tables: the same numbers as rotating, then
multiplying (forward and gradients), and softmax models untouched to the bit."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssmax.attention import CausalSelfAttention, QueryScale, causal_mask, explicit_attention_probs
from ssmax.functional import causal_key_counts
from ssmax.model import GPT, GPTConfig
from ssmax.rope import apply_rope, apply_rope_scaled, rope_angles


def _inputs(dtype=torch.float64, B=2, H=3, T=7, D=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, H, T, D, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
    cos, sin = rope_angles(D, torch.arange(T), 10_000.0)
    factor = (torch.rand(H, T, 1, generator=gen, dtype=torch.float64) + 0.5).requires_grad_()
    return x, cos.double(), sin.double(), factor


def _rotate_then_multiply(x, cos, sin, factor):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1) * factor


@pytest.mark.parametrize("batch", [1, 2])
def test_folded_rope_is_rotate_then_multiply_with_its_gradients(batch):
    x, cos, sin, factor = _inputs(B=batch)  # float64 throughout
    folded = apply_rope_scaled(x, cos, sin, factor)
    reference = _rotate_then_multiply(x, cos, sin, factor)
    assert torch.allclose(folded, reference, rtol=1e-12, atol=1e-12)
    assert torch.allclose(folded, apply_rope(x, cos, sin) * factor, atol=1e-5)  # the model's RoPE (float32)
    with torch.no_grad():  # decoding and evaluation skip the autograd function: the same numbers
        assert torch.equal(apply_rope_scaled(x, cos, sin, factor), folded)
    g = torch.randn_like(folded)
    gx, gf = torch.autograd.grad(folded, (x, factor), g)
    rx, rf = torch.autograd.grad(reference, (x, factor), g)
    assert torch.allclose(gx, rx, rtol=1e-12, atol=1e-12) and torch.allclose(gf, rf, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, f: apply_rope_scaled(a, cos, sin, f), (x, factor))


def test_folded_rope_keeps_the_dtype_and_takes_factors_without_gradient():
    x, cos, sin, factor = _inputs(dtype=torch.bfloat16)
    out = apply_rope_scaled(x, cos.float(), sin.float(), factor.detach().float()[None])  # (1, H, T, 1), no grad
    assert out.dtype == torch.bfloat16
    (gx,) = torch.autograd.grad(out.float().sum(), (x,))
    assert gx.dtype == torch.bfloat16
    reference = apply_rope(x, cos.float(), sin.float()).float() * factor.detach().float()
    assert torch.allclose(out.float(), reference, rtol=2e-2, atol=2e-2)


def test_query_scale_takes_a_precomputed_log_n():
    qs = QueryScale("ssmax_bias", n_head=3, s_init=0.3)
    with torch.no_grad():
        qs.s.copy_(torch.tensor([0.2, 0.3, 0.4]))
        qs.b.copy_(torch.tensor([0.1, -0.1, 0.0]))
    n = causal_key_counts(9)
    assert torch.equal(qs(n), qs(None, log_n=torch.log(n)))
    assert qs(n).shape == (3, 9, 1)
    fixed = QueryScale("ssmax_fixed", n_head=3, s_init=0.3)
    assert fixed(None, log_n=torch.log(n)).shape == (3, 9, 1)


# --- softmax untouched: a verbatim copy of the attention forward before the fold -------------

def _old_apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)


def _old_forward(self, x, cos, sin, p_n=None, cache=None, past_len=0, layer=0, query_scale_fn=None,
                 impl="fused", probe_rows=None, **_new_arguments):
    B, T, C = x.shape
    q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
    if cos is not None:  # None: no positional encoding (NoPE)
        q, k = _old_apply_rope(q, cos, sin), _old_apply_rope(k, cos, sin)
    if cache is not None:
        k, v = cache.update(layer, k, v)
    if k.shape[2] != past_len + T:
        raise ValueError(f"past_len={past_len} does not match the cache ({k.shape[2] - T} cached tokens)")

    n = causal_key_counts(T, past_len, device=x.device)
    factor = self.query_scale(n, p_n)
    if query_scale_fn is not None:
        extra = query_scale_fn(n).to(device=x.device, dtype=torch.float32)[None, :, None]
        factor = extra if factor is None else factor * extra
    if factor is not None:
        q = q * factor.to(q.dtype)

    if impl == "fused":
        if past_len == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            mask = causal_mask(T, k.shape[2], x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        positions = torch.arange(past_len, past_len + T, device=x.device)
        y = torch.matmul(explicit_attention_probs(q, k, positions), v.float()).to(q.dtype)
    probs = None
    y = y.transpose(1, 2).reshape(B, T, C)
    return self.proj(y), probs


def _train_three_steps(scaling: str, position: str, old: bool, monkeypatch) -> tuple[list, torch.Tensor, GPT]:
    with monkeypatch.context() as patch:
        if old:
            patch.setattr(CausalSelfAttention, "forward", _old_forward)
        torch.manual_seed(0)
        model = GPT(GPTConfig(scaling=scaling, block_size=32, n_layer=2, n_head=2, n_embd=32, position=position))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(3):
            x = torch.randint(0, 256, (4, 33), generator=gen)
            loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        with torch.no_grad():
            logits = model(torch.randint(0, 256, (2, 32), generator=gen), rope_theta=500_000.0)
    return losses, logits, model


@pytest.mark.parametrize("position", ["rope", "none"])
def test_softmax_models_are_bit_identical_to_before_the_fold(position, monkeypatch):
    old_losses, old_logits, old_model = _train_three_steps("softmax", position, True, monkeypatch)
    new_losses, new_logits, new_model = _train_three_steps("softmax", position, False, monkeypatch)
    assert all(torch.equal(a, b) for a, b in zip(old_losses, new_losses))
    assert torch.equal(old_logits, new_logits)
    for (name, a), b in zip(old_model.named_parameters(), new_model.parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("scaling", ["ssmax", "ssmax_bias", "learned_pn"])
def test_ssmax_models_agree_with_before_the_fold_up_to_rounding(scaling, monkeypatch):
    old_losses, old_logits, _ = _train_three_steps(scaling, "rope", True, monkeypatch)
    new_losses, new_logits, _ = _train_three_steps(scaling, "rope", False, monkeypatch)
    assert torch.allclose(torch.stack(old_losses), torch.stack(new_losses), rtol=1e-5)
    assert torch.allclose(old_logits, new_logits, rtol=1e-4, atol=1e-4)


def test_the_model_computes_log_n_once_per_forward(monkeypatch):
    calls = {"n": 0}
    real_log = torch.log

    def counting_log(t):
        calls["n"] += 1
        return real_log(t)

    model = GPT(GPTConfig(scaling="ssmax", block_size=16, n_layer=3, n_head=2, n_embd=16))
    monkeypatch.setattr(torch, "log", counting_log)
    with torch.no_grad():
        model(torch.zeros(1, 8, dtype=torch.long))
    assert calls["n"] == 1
