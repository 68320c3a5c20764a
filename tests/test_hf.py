"""ssmax.hf: SSMax as a transformers attention function, on tiny random Llama, Qwen2 and Mistral
models built in code (nothing is downloaded), and the cross-check experiment at the smoke profile."""

from __future__ import annotations

import math

import pytest
import torch

transformers = pytest.importorskip("transformers")

from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,  # noqa: E402
                          Qwen2Config, Qwen2ForCausalLM)

from ssmax import functional  # noqa: E402
from ssmax import hf  # noqa: E402

T = 48  # max_position_embeddings of the tiny models
WINDOW = 12  # the sliding window of the Qwen2 and Mistral models (shorter than the sequences)
COMMON = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=T, bos_token_id=None, eos_token_id=None,
              pad_token_id=None, initializer_range=0.2)  # peaked attention: differences show
FAMILIES = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**COMMON)),
    # layer 0 full attention, layer 1 a sliding window
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**COMMON, use_sliding_window=True, sliding_window=WINDOW,
                                                  max_window_layers=1)),
    "mistral": lambda: MistralForCausalLM(MistralConfig(**COMMON, sliding_window=WINDOW)),
}


def tiny(family: str, seed: int = 0):
    torch.manual_seed(seed)
    return FAMILIES[family]().eval()


def enabled(family: str, seed: int = 0, **kwargs):
    """A tiny model with SSMax and s spread over heads and layers (so a mix-up of heads shows)."""
    model = hf.enable(tiny(family, seed), **kwargs)
    with torch.no_grad():
        for i, m in enumerate(hf._attention_modules(model)):
            m.ssmax_s.copy_(torch.linspace(0.2, 0.6, m.ssmax_s.numel()) + 0.1 * i)
    return model


def tokens(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, COMMON["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


# --- the attention function against the reference ------------------------------------------

def _probs_through_sdpa(module, q, k, positions, mask=None, window=None) -> torch.Tensor:
    """The attention probabilities the registered function computes: values = identity, so the
    output row of query i is its probability row."""
    S = k.shape[2]
    v = torch.eye(S).expand(k.shape[0], k.shape[1], S, S)
    out, _ = hf.ssmax_attention_forward(module, q, k, v, mask, scaling=module.scaling, position_ids=positions,
                                        sliding_window=window)
    return out.transpose(1, 2)  # (B, H, q, S)


@pytest.mark.parametrize("case", ["causal", "packed", "sliding"])
def test_attention_weights_equal_the_reference_ssmax(case):
    """softmax(s_h log n · q·k/√d) of `ssmax.functional.ssmax`, per head (GQA: 4 query heads
    share 2 key heads), with n = keys the query sees: causal, two packed documents, a window."""
    model = enabled("llama")
    module = model.model.layers[0].self_attn
    S, D = 20, module.head_dim
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 4, S, D, generator=gen), torch.randn(1, 2, S, D, generator=gen)
    i, j = torch.arange(S)[:, None], torch.arange(S)[None, :]
    allowed, window = j <= i, None
    positions = torch.arange(S)
    if case == "packed":  # documents of 8 and 12 tokens
        doc = (torch.arange(S) >= 8).long()
        allowed &= doc[:, None] == doc[None, :]
        positions = torch.cat([torch.arange(8), torch.arange(12)])
    if case == "sliding":
        window = 6
        allowed &= j > i - window
    mask = None if case == "causal" else allowed[None, None]
    got = _probs_through_sdpa(module, q, k, positions[None], mask, window)
    logits = (q @ k.repeat_interleave(2, dim=1).transpose(-1, -2)) * module.scaling
    n = allowed.sum(-1).float()  # the keys each query sees, counted from the mask
    expected = functional.ssmax(logits.masked_fill(~allowed, -math.inf), s=module.ssmax_s.detach()[:, None, None],
                                n=n[:, None])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(hf.key_counts(positions, window), n)


def test_default_s_makes_the_factor_one_at_the_training_length():
    model = hf.enable(tiny("llama"))
    s = hf.scale_parameters(model)
    assert s.shape == (2, 4)
    torch.testing.assert_close(s * math.log(T), torch.ones_like(s))
    assert model.config.ssmax == {"s_init": pytest.approx(1 / math.log(T)), "learn_s": True, "train_len": T}
    assert hf.scale_parameters(hf.enable(tiny("llama"), train_len=1000)).mean().item() == pytest.approx(1 / math.log(1000))


# --- whole models ---------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_factor_one_reproduces_the_unmodified_model(family):
    """Every token at position T-1 (so n = T for every query, or the window where that is
    shorter): with s = 1/log n the factor is 1 and the logits are the plain model's."""
    x = tokens(2, 30)
    kwargs = dict(attention_mask=torch.ones_like(x), position_ids=torch.full_like(x, T - 1))
    plain = tiny(family)(x, **kwargs).logits
    model = tiny(family)
    if family == "qwen2":  # layer 0 full (n = T), layer 1 sliding (n = WINDOW): set each layer's s
        hf.enable(model)
        with torch.no_grad():
            model.model.layers[1].self_attn.ssmax_s.fill_(1 / math.log(WINDOW))
    else:
        hf.enable(model, s_init=1 / math.log(WINDOW if family == "mistral" else T))  # Mistral: all layers windowed
    torch.testing.assert_close(model(x, **kwargs).logits, plain, atol=2e-5, rtol=1e-4)
    # and SSMax does change the model elsewhere
    assert (model(x).logits - tiny(family)(x).logits).abs().max() > 0.05


@pytest.mark.parametrize("family", FAMILIES)
def test_cached_generation_equals_the_full_forward(family):
    """Greedy decoding with the KV cache (each new query with its own n, past the window) gives
    the logits of one forward pass over the whole sequence."""
    model = enabled(family)
    prompt = tokens(1, 10)
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=14, do_sample=False,
                         output_logits=True, return_dict_in_generate=True)
    stepped = torch.stack(out.logits, dim=1)  # (1, 14, vocab): logits that chose each new token
    full = model(out.sequences).logits[:, prompt.shape[1] - 1:-1]
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_sequences_equal_separate_ones(family):
    """Two documents in one row, position_ids restarting at the second: n restarts too, and the
    logits are those of each document alone."""
    model = enabled(family)
    a, b = tokens(1, 9, seed=2), tokens(1, 20, seed=3)
    positions = torch.cat([torch.arange(9), torch.arange(20)])[None]
    with pytest.raises(ValueError, match="pass use_cache=False"):  # transformers would build no block mask
        model(torch.cat([a, b], 1), position_ids=positions)
    packed = model(torch.cat([a, b], 1), position_ids=positions, use_cache=False).logits
    torch.testing.assert_close(packed[:, :9], model(a).logits, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[:, 9:], model(b).logits, atol=1e-5, rtol=1e-4)


def test_left_padded_batch_generates_what_each_prompt_alone_does():
    """position_ids from the attention mask (as generate() builds them): n counts real tokens."""
    model = enabled("mistral")
    short, long = tokens(1, 5, seed=4), tokens(1, 9, seed=5)
    batch = torch.cat([torch.cat([torch.zeros(1, 4, dtype=torch.long), short], 1), long])
    mask = torch.tensor([[0] * 4 + [1] * 5, [1] * 9])
    out = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False)
    for row, prompt in enumerate((short, long)):
        alone = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
        assert torch.equal(out[row, -6:], alone[0, -6:])


def test_gradients_reach_s_and_fixed_s_is_a_buffer():
    model = enabled("qwen2").train()
    x = tokens(2, 16)
    model(x, labels=x).loss.backward()
    grads = [m.ssmax_s.grad for m in hf._attention_modules(model)]
    assert all(g is not None and bool((g != 0).all()) for g in grads)
    fixed = hf.enable(tiny("qwen2"), s_init=0.3, learn_s=False)
    assert not any("ssmax_s" in name for name, _ in fixed.named_parameters())
    assert sum(k.endswith("ssmax_s") for k in fixed.state_dict()) == 2


@pytest.mark.parametrize("learn_s", [True, False])
def test_saved_and_reloaded_model_gives_the_same_logits(tmp_path, learn_s):
    model = enabled("llama", learn_s=learn_s)
    x = tokens(2, 20)
    before = model(x).logits
    model.save_pretrained(tmp_path)
    again = hf.from_pretrained(str(tmp_path))
    assert again.config._attn_implementation == hf.ATTENTION_NAME
    torch.testing.assert_close(again(x).logits, before, atol=0, rtol=0)
    torch.testing.assert_close(hf.scale_parameters(again), hf.scale_parameters(model), atol=0, rtol=0)
    assert any("ssmax_s" in n for n, _ in again.named_parameters()) == learn_s
    # the same through an explicit class and a state_dict round trip
    torch.testing.assert_close(hf.from_pretrained(str(tmp_path), LlamaForCausalLM)(x).logits, before, atol=0, rtol=0)
    fresh = hf.enable(tiny("llama", seed=9), learn_s=learn_s)
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh(x).logits, before, atol=0, rtol=0)


def test_from_pretrained_refuses_a_checkpoint_saved_without_ssmax(tmp_path):
    tiny("llama").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not saved after ssmax.hf.enable"):
        hf.from_pretrained(str(tmp_path))


# --- bad inputs: one clear error each --------------------------------------------------------

def test_padding_without_position_ids_is_refused():
    model = enabled("llama")
    x = tokens(2, 8)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    with pytest.raises(ValueError, match=r"pass position_ids=\(attention_mask.cumsum"):
        model(x, attention_mask=mask)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    model(x, attention_mask=mask, position_ids=positions)  # accepted
    model(x, attention_mask=torch.tensor([[1] * 6 + [0, 0], [1] * 8]))  # right padding needs none


def test_attention_called_without_position_ids_is_refused():
    model = enabled("llama")
    attn = model.model.layers[0].self_attn
    h = torch.randn(1, 5, COMMON["hidden_size"])
    cos_sin = model.model.rotary_emb(h, torch.arange(5)[None])
    with pytest.raises(ValueError, match="needs position_ids"):
        attn(h, position_embeddings=cos_sin, attention_mask=None)
    with pytest.raises(ValueError, match="position_ids of shape"):
        attn(h, position_embeddings=cos_sin, attention_mask=None, position_ids=torch.arange(5)[None, None])


def test_the_attention_function_without_enable_is_refused():
    model = tiny("llama")
    hf.register()
    model.set_attn_implementation(hf.ATTENTION_NAME)
    with pytest.raises(ValueError, match="call ssmax.hf.enable"):
        model(tokens(1, 4))


@pytest.mark.parametrize("make, message", [
    (lambda: torch.nn.Linear(2, 2), "must be a transformers PreTrainedModel"),
    (lambda: _with(tiny("llama"), attention_chunk_size=8), "chunked attention"),
    (lambda: _with(tiny("llama"), layer_types=["full_attention", "linear_attention"]), "layer types"),
    (lambda: _with(tiny("llama"), is_encoder_decoder=True), "causal decoders only"),
])
def test_unsupported_models_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        hf.enable(make())


@pytest.mark.parametrize("kwargs, message", [
    (dict(s_init=-0.1), "s_init must be a finite number >= 0"),
    (dict(s_init=float("nan")), "s_init must be a finite number >= 0"),
    (dict(train_len=1), "train_len must be an integer >= 2"),
    (dict(learn_s="yes"), "learn_s must be True or False"),
])
def test_bad_arguments_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hf.enable(tiny("llama"), **kwargs)


def _with(model, **attrs):
    for k, v in attrs.items():
        setattr(model.config, k, v)
    return model


# --- the cross-check experiment ----------------------------------------------------------------

def test_crosscheck_runs_on_the_smoke_profile(tmp_path, monkeypatch):
    """hf-lengthgen-b at the smoke profile: trains transformers' Llama with ssmax.hf (s learned),
    stores weights and per-position losses at both RoPE bases, and compares with (a)."""
    from ssmax import experiments as ex
    from ssmax import hf_crosscheck as cc

    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SSMAX_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    res = {v: ex.run(f"hf-lengthgen-{v}", "smoke", 0, device="cpu", progress=False) for v in "ab"}
    pre = ex.run("hf-pretrain-b", "smoke", 0, device="cpu", progress=False)  # current: reused, not retrained
    s = torch.tensor(pre["metrics"]["learned_s"])
    assert s.shape == (2, 2) and not torch.allclose(s, torch.full_like(s, ex.GPTConfig(block_size=160).s_init))
    curves = res["b"]["metrics"]["curves"]
    assert set(curves) == {"model@theta_x1", "model@theta_x50"}
    assert len(curves["model@theta_x1"]["curve"]) == 4 * 160
    assert curves["model@theta_x1"]["curve"] != curves["model@theta_x50"]["curve"]
    from ssmax.book import cost
    from ssmax.book import crosscheck as bc
    verdict = bc.verdict({f"lengthgen-{v}": [r] for v, r in res.items()}, "transformers Llama", 1)
    windows = [p.label.split(" over ")[1].split("]")[0] + "]" for p in verdict.parts]
    assert windows == ["(T,2T]", "(T,4T]"]  # beyond T, judged per window; the smoke curves end at 4T
    # one model per variant (and, at this size, losses at the context-free floor): nothing is decided
    assert verdict.kind == "inconclusive" and all(p.outcome.kind == "inconclusive" for p in verdict.parts)
    assert "hf-pretrain-b" not in ex.list_experiments()  # not part of reproduce / the chapters
    # nor of the profile's cost table (the page reports its runs)
    assert cost.runs("smoke") == []


@pytest.mark.parametrize("scaling", ["softmax", "ssmax"])
def test_the_crosscheck_llama_computes_what_our_model_computes(scaling):
    """With the Llama's weights copied into our GPT, both give the same logits, at the trained
    RoPE base and at x50: the two implementations differ only in code and initialisation."""
    from ssmax import hf_crosscheck as cc
    from ssmax.model import GPT, GPTConfig
    config = GPTConfig(scaling=scaling, n_layer=2, n_head=2, n_embd=32, block_size=64)
    torch.manual_seed(0)
    llama = cc.HFLanguageModel(config).eval()
    with torch.no_grad():
        for p in llama.parameters():
            p.mul_(5 if p.dim() == 2 else 1)  # peaked attention, so that positions matter
        if scaling == "ssmax":
            for m in hf._attention_modules(llama.llama):
                m.ssmax_s.uniform_(0.1, 0.6)
    ours = GPT(config).eval()
    ours.load_state_dict(cc.gpt_state_dict(llama))
    x = tokens(2, 150)  # past T = 64
    for theta in (None, 50 * config.rope_theta):
        torch.testing.assert_close(llama(x, theta), ours(x, theta), atol=1e-4, rtol=1e-4)
    assert (llama(x) - llama(x, 50 * config.rope_theta)).abs().max() > 0.05


def test_the_crosscheck_page_words_follow_the_paired_interval():
    from ssmax.book import crosscheck as bc
    from ssmax.book import decide as d
    seeds = ("seed 0", "seed 1", "seed 2")
    e = d.paired(dict(zip(seeds, (1.9, 2.0, 4.1))), dict(zip(seeds, (1.0, 1.0, 3.0))), True)  # 0.9, 1.0, 1.1
    assert e.mean == pytest.approx(1.0) and e.sd == pytest.approx(0.1)
    assert e.interval[0] == pytest.approx(1.0 - 4.303 * 0.1 / math.sqrt(3), rel=1e-3)
    assert bc.direction(e) == "SSMax higher"
    assert bc.direction(d.paired({"seed 0": 1.0, "seed 1": 1.1}, {"seed 0": 1.05, "seed 1": 1.0}, True)) == "interval holds 0"
    assert bc.direction(d.paired({"seed 0": 1.0}, {"seed 0": 2.0}, True)) == "one seed: no interval"


def test_bench_times_ssmax_hf_against_sdpa_in_the_same_module():
    from ssmax import bench
    rows = bench.hf_attention_table(torch.device("cpu"), (32,), heads=2, head_dim=8, reps=2)
    assert [r["T"] for r in rows] == [32] and rows[0]["ratio"] > 0 and rows[0]["reps"] == 2
    assert "x" in bench.format_hf({"hf_attention": rows}) and "T =     32" in bench.format_hf({"hf_attention": rows})
