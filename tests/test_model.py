"""The model: causality, fused vs explicit attention, cached decoding, and the switch to SSMax."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssmax.attention import SCALINGS, default_s_init
from ssmax.model import GPT, GPTConfig, switch_to_ssmax


def tiny_model(scaling: str, seed: int = 0, block_size: int = 32, position: str = "rope") -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(scaling=scaling, block_size=block_size, n_layer=2, n_head=2, n_embd=32,
                          position=position))
    # move s, b, p_n away from their initial values so a bug in how they enter cannot hide
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() < 2 and not name.endswith("norm.weight"):
                p.add_(0.3 * torch.rand_like(p))
    return model.eval()


def test_default_s_init_matches_mean_log_n():
    for T in (128, 1024):
        mean_log = sum(math.log(n) for n in range(1, T + 1)) / T
        assert default_s_init(T) == pytest.approx(1 / mean_log, rel=1e-12)
    assert default_s_init(1024) == pytest.approx(0.1685, abs=1e-4)  # paper-notes §1.5


@pytest.mark.parametrize("scaling", SCALINGS)
def test_changing_a_future_token_changes_no_earlier_logit(scaling):
    model = tiny_model(scaling)
    idx = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[:, 15] = (changed[:, 15] + 1) % 256
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.equal(a[:, :15], b[:, :15])
    assert not torch.allclose(a[:, 15:], b[:, 15:])


@pytest.mark.parametrize("scaling", SCALINGS)
def test_fused_and_explicit_attention_agree(scaling):
    model = tiny_model(scaling)
    idx = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fused = model(idx, attn_impl="fused")
        explicit = model(idx, attn_impl="explicit")
    rel = (fused - explicit).norm() / fused.norm()
    assert rel <= 1e-5


@pytest.mark.parametrize("scaling", SCALINGS)
def test_attention_rows_are_the_explicit_probabilities_of_those_rows(scaling):
    model = tiny_model(scaling)
    idx = torch.randint(0, 256, (1, 32), generator=torch.Generator().manual_seed(3))
    rows = torch.tensor([0, 7, 31])
    logits, maps = model.attention_rows(idx, rows)
    assert torch.allclose(logits, model(idx), atol=1e-6)
    assert len(maps) == 2 and maps[0].shape == (1, 2, 3, 32)
    assert torch.allclose(maps[0].sum(-1), torch.ones(1, 2, 3), atol=1e-6)
    assert torch.all(maps[0][:, :, 1, 8:] == 0)  # row 7 cannot see keys 8..31
    assert torch.allclose(maps[0][:, :, 0, 0], torch.ones(1, 2))  # the first token sees only itself


def test_ssmax_scales_queries_by_s_log_n():
    """With s = 1/log n at one position the ssmax model's attention there equals softmax's."""
    torch.manual_seed(0)
    soft = GPT(GPTConfig(scaling="softmax", block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        soft.blocks[0].attn.qkv.weight.mul_(20)  # peaked attention, so a wrong factor shows
    ss = GPT(GPTConfig(scaling="ssmax", block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    ss.load_state_dict(soft.state_dict(), strict=False)
    n = 10
    with torch.no_grad():
        ss.blocks[0].attn.query_scale.s.fill_(1 / math.log(n))
    idx = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(4))
    _, soft_maps = soft.attention_rows(idx, torch.tensor([n - 1]))
    _, ss_maps = ss.attention_rows(idx, torch.tensor([n - 1, n]))
    assert torch.allclose(soft_maps[0][:, :, 0], ss_maps[0][:, :, 0], atol=1e-6)
    assert not torch.allclose(soft.attention_rows(idx, torch.tensor([n]))[1][0], ss_maps[0][:, :, 1:], atol=1e-3)


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("rope_theta", [None, 500_000.0])
def test_generate_with_cache_equals_repeated_full_forwards(scaling, rope_theta):
    model = tiny_model(scaling, block_size=16)
    prompt = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(5))
    fast = model.generate(prompt, 20, rope_theta=rope_theta)  # runs past block_size too
    slow = prompt
    with torch.no_grad():
        for _ in range(20):
            nxt = model(slow, rope_theta)[:, -1].argmax(-1, keepdim=True)
            slow = torch.cat([slow, nxt], dim=1)
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("position", ["rope", "none"])
@pytest.mark.parametrize("scaling", SCALINGS)
def test_cached_decoding_gives_the_logits_of_one_full_pass(scaling, position):
    """Prefill, then a multi-token chunk (bottom-right causal mask), then one token at a time:
    every logit equals the full forward pass's, so each cached query gets the right n."""
    from ssmax.attention import KVCache

    model = tiny_model(scaling, position=position)
    idx = torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(6))
    cache = KVCache(model.config.n_layer)
    with torch.no_grad():
        parts = [model(idx[:, :12], cache=cache), model(idx[:, 12:18], cache=cache)]
        parts += [model(idx[:, t : t + 1], cache=cache) for t in range(18, 24)]
        full = model(idx)
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


@pytest.mark.parametrize("scaling", ["softmax", "ssmax"])
def test_nope_model_ignores_theta_and_still_sees_order(scaling):
    """position="none": no rotation at all, so a rope_theta override changes nothing; order still
    matters through the causal mask (a token's logits depend on which tokens came before it)."""
    model = tiny_model(scaling, position="none")
    idx = torch.randint(0, 256, (2, 24), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        base = model(idx)
        assert torch.equal(base, model(idx, rope_theta=500_000.0))
        assert torch.allclose(base, model(idx, attn_impl="explicit"), atol=1e-5)
        swapped = idx.clone()
        swapped[:, [3, 4]] = swapped[:, [4, 3]]
        assert not torch.allclose(model(swapped)[:, 10], base[:, 10])
    rope = tiny_model(scaling)
    with torch.no_grad():
        assert not torch.allclose(rope(idx), rope(idx, rope_theta=500_000.0))


def test_weight_decay_only_on_matrices():
    model = tiny_model("ssmax_bias")
    decay, no_decay = model.param_groups(0.1)
    assert all(p.dim() >= 2 for p in decay["params"])
    names_no_decay = {n for n, p in model.named_parameters() if any(p is q for q in no_decay["params"])}
    assert any(n.endswith(".s") for n in names_no_decay) and any(n.endswith(".b") for n in names_no_decay)
    assert any("norm" in n for n in names_no_decay)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1
    pn = tiny_model("learned_pn")
    assert any(p is pn.p_n for p in pn.param_groups(0.1)[1]["params"])


def test_bad_config_names_the_allowed_values():
    with pytest.raises(ValueError, match="scaling must be one of"):
        GPTConfig(scaling="sparsemax")
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match=r"position must be one of \('rope', 'none'\); got 'alibi'"):
        GPTConfig(position="alibi")


def _train_toy(model: GPT, steps: int = 150) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(7)
    for _ in range(steps):
        x = _toy_batch(gen)
        loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


def _toy_batch(gen: torch.Generator) -> torch.Tensor:
    """Sequences with structure attention can use: a random 8-token motif repeated."""
    motif = torch.randint(0, 16, (16, 8), generator=gen)
    return motif.repeat(1, 5)[:, :33]


def _loss(model: GPT) -> float:
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        x = _toy_batch(gen)
        return F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).item()


def test_switching_a_trained_softmax_model_to_ssmax_keeps_its_loss_close():
    torch.manual_seed(0)
    model = GPT(GPTConfig(scaling="softmax", block_size=32, n_layer=2, n_head=2, n_embd=32))
    untrained = _loss(model)
    _train_toy(model.train())
    model.eval()
    before = _loss(model)
    assert before < 0.5 * untrained  # the toy model learned the copying task
    switch_to_ssmax(model)
    after = _loss(model)
    assert model.config.scaling == "ssmax"
    assert abs(after - before) < 0.25 * (untrained - before)
    with pytest.raises(ValueError, match="softmax model"):
        switch_to_ssmax(model)
