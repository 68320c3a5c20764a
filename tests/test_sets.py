"""The set tasks and the set model (chapter "fading in isolation"): the data are right by
construction, the model is a set function, its attention is `QueryScale`'s, the inference-time
fixes and ASEntmax are what their papers define, and every set experiment runs on smoke."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssmax import experiments as ex
from ssmax import results as store
from ssmax import sets, sets_run
from ssmax.attention import QueryScale


def _batch(task: str, sizes, seed: int = 0) -> sets.SetBatch:
    return sets.sample_batch(task, torch.tensor(sizes), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("task", sets.TASKS)
def test_batches_have_the_documented_shapes_and_masks(task):
    b = _batch(task, [4, 9, 16])
    f = sets.feature_dim(task, 64)
    assert b.features.shape == (3, 16, f) and b.classes.shape == (3, 16)
    assert b.mask.tolist()[0] == [True] * 4 + [False] * 12
    assert (b.features[~b.mask] == 0).all()
    assert (b.target < b.n).all()
    assert _batch(task, [8, 8]).mask is None  # equal sizes: no padding
    assert (b.query is None) == (task == "maxret")


def test_maxret_answer_is_the_class_of_the_max_priority_item():
    b = _batch("maxret", [4, 7, 16, 16], seed=3)
    for i, n in enumerate(b.n.tolist()):
        p = b.features[i, :n, 0]
        assert b.target[i] == p.argmax() and b.label[i] == b.classes[i, p.argmax()]


def test_keyret_query_names_one_present_key_and_keys_are_distinct():
    b = _batch("keyret", [5, 16, 12], seed=4)
    for i, n in enumerate(b.n.tolist()):
        keys = b.features[i, :n]
        assert torch.equal(b.query[i], keys[b.target[i]]) and b.label[i] == b.classes[i, b.target[i]]
        assert torch.cdist(keys, keys).add(torch.eye(n) * 9).min() > 0  # no two keys alike
        assert (keys @ b.query[i]).argmax() == b.target[i]


def test_sample_batch_refuses_bad_input():
    with pytest.raises(ValueError, match="task must be one of"):
        _batch("sort", [4])
    with pytest.raises(ValueError, match="set sizes >= 2"):
        _batch("maxret", [1, 4])


def _model(task="maxret", variant="softmax", logits=None, **kw) -> sets.SetModel:
    torch.manual_seed(0)
    logits = logits or ("dot" if task == "maxret" else "capped")
    return sets.SetModel(task, variant, logits, **kw).double().eval()


def _double(b: sets.SetBatch) -> sets.SetBatch:
    return dataclasses.replace(b, features=b.features.double(), query=None if b.query is None else b.query.double())


@pytest.mark.parametrize("task, logits", [("maxret", "dot"), ("keyret", "capped"), ("keyret", "free")])
@pytest.mark.parametrize("n_head", [1, 2])
def test_fast_read_equals_textbook_attention(task, logits, n_head):
    m = _model(task, "ssmax", logits, n_head=n_head)
    b = _double(_batch(task, [5, 9, 16]))
    out, att = m(b)
    x = m.items(b.features, b.classes)
    h_q = m.query_token.expand(3, -1) if task == "maxret" else m.query_mlp(b.query)
    D = 64 // n_head
    q = m.q_proj(h_q).view(3, n_head, D)
    k = m.k_proj(x).view(3, 16, n_head, D).transpose(1, 2)
    v = m.v_proj(x).view(3, 16, n_head, D).transpose(1, 2)
    if logits == "dot":
        z = torch.einsum("bhd,bhnd->bhn", q, k) / math.sqrt(D)
    else:
        z = m.gain() * torch.einsum("bhd,bhnd->bhn", F.normalize(q, dim=-1), F.normalize(k, dim=-1))
    factor = m.query_scale.s[None, :, None] * torch.log(b.n.double())[:, None, None]
    a = torch.softmax((z * factor).masked_fill(~b.mask[:, None], float("-inf")), -1)
    expected = m.head(torch.einsum("bhn,bhnd->bhd", a, v).flatten(1))
    torch.testing.assert_close(att.probs, a)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("variant", sets.VARIANTS)
@pytest.mark.parametrize("task", sets.TASKS)
def test_the_set_model_ignores_the_order_of_the_items(task, variant):
    m = _model(task, variant)
    b = _double(_batch(task, [16, 16], seed=5))
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    shuffled = dataclasses.replace(b, features=b.features[:, perm], classes=b.classes[:, perm],
                                   target=torch.argsort(perm)[b.target])
    out, att = m(b)
    out_p, att_p = m(shuffled)
    torch.testing.assert_close(out, out_p)
    torch.testing.assert_close(sets.target_weight(att, b.target), sets.target_weight(att_p, shuffled.target))


def test_padding_changes_nothing():
    m = _model("keyret", "asentmax")
    b = _double(_batch("keyret", [6, 16], seed=2))
    alone = sets.SetBatch(b.features[:1, :6], b.classes[:1, :6], b.query[:1], None, b.n[:1], b.target[:1], b.label[:1])
    torch.testing.assert_close(m(b)[0][:1], m(alone)[0])


@pytest.mark.parametrize("variant, expected", [("softmax", lambda n: torch.ones_like(n)),
                                               ("ssmax", lambda n: sets.set_s_init(4, 16) * torch.log(n)),
                                               ("ssmax_fixed", torch.log)])
def test_the_factor_is_query_scale_with_each_examples_own_n(variant, expected):
    m = _model("maxret", variant, s_init=sets.set_s_init(4, 16))
    assert isinstance(m.query_scale, QueryScale) and m.query_scale.scaling == variant
    b = _double(_batch("maxret", [4, 7, 16]))
    _, att = m(b)
    torch.testing.assert_close(att.factor[:, 0], expected(b.n.double()), check_dtype=False)


def test_s_init_makes_s_log_n_average_one_over_the_training_sizes():
    s = sets.set_s_init(4, 16)
    assert abs(np.mean([s * math.log(n) for n in range(4, 17)]) - 1) < 1e-12
    with pytest.raises(ValueError, match="min_size"):
        sets.set_s_init(1, 16)


def test_logn_factor_is_one_up_to_the_training_size_then_log_base_16():
    m = _model("maxret", "softmax")
    b = _double(_batch("maxret", [16, 16]))
    raw, x, h_q = m.read(b)
    for n, factor in ((16, 1.0), (256, 2.0), (4096, 3.0)):
        att = m.attend(raw, h_q, torch.full((2,), n), eval_variant="logn", train_max_size=16)
        torch.testing.assert_close(att.factor, torch.full((2, 1), factor, dtype=att.factor.dtype))
    with pytest.raises(ValueError, match="softmax models only"):
        _model("maxret", "ssmax").attend(raw, h_q, b.n, eval_variant="logn")
    with pytest.raises(ValueError, match="eval_variant must be one of"):
        m.attend(raw, h_q, b.n, eval_variant="yarn")


def test_adaptive_temperature_is_velickovic_et_al_polynomial():
    flat = torch.zeros(1, 100, dtype=torch.float64)  # entropy log 100 = 4.61 > 0.5
    H = math.log(100)
    expected = np.polyval([-0.037, 0.481, -2.3, 4.917, -1.791], H)  # highest power first
    assert expected > 1
    torch.testing.assert_close(sets.adaptive_temperature(flat), torch.tensor([[expected]], dtype=torch.float64))
    sharp = torch.tensor([[20.0, 0.0, 0.0]], dtype=torch.float64)  # entropy < 0.5: untouched
    assert sets.adaptive_temperature(sharp).item() == 1.0
    mid = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # entropy 0.58 > 0.5, poly < 1: clamped to 1
    assert np.polyval(sets.ADAPTIVE_TEMPERATURE_POLY, -(torch.softmax(mid, -1) * torch.log_softmax(mid, -1)).sum()) < 1
    assert sets.adaptive_temperature(mid).item() == 1.0
    masked = sets.adaptive_temperature(torch.zeros(1, 8, dtype=torch.float64), torch.tensor([[True] * 4 + [False] * 4]))
    assert masked.item() == pytest.approx(np.polyval(sets.ADAPTIVE_TEMPERATURE_POLY, math.log(4)))


def test_asentmax_reduces_to_softmax_as_alpha_goes_to_one_and_is_sparse_at_1_5():
    logits = torch.randn(4, 1, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    near_softmax = sets.asentmax_probs(logits, None, alpha=1.001, n_iter=60)
    torch.testing.assert_close(near_softmax, torch.softmax(logits, -1), atol=5e-3, rtol=0)
    sparse = sets.asentmax_probs(logits, None, alpha=1.5, n_iter=60)
    torch.testing.assert_close(sparse.sum(-1), torch.ones(4, 1, dtype=torch.float64))
    assert (sparse == 0).any()
    # the whole model: beta -> 0 makes the length scale delta = 1, so alpha -> 1 gives the softmax model
    m = _model("maxret", "asentmax", entmax_alpha=1.001, entmax_iters=60)
    with torch.no_grad():
        m.length_scale.beta_proj.bias.fill_(-40.0)
    b = _double(_batch("maxret", [6, 16]))
    raw, x, h_q = m.read(b)
    att = m.attend(raw, h_q, b.n, b.mask)
    torch.testing.assert_close(att.factor, torch.ones_like(att.factor))
    soft = torch.softmax(raw.masked_fill(~b.mask[:, None], float("-inf")), -1)
    torch.testing.assert_close(att.probs, soft, atol=5e-3, rtol=0)


def test_asentmax_scale_is_delta_plus_beta_log_n_to_the_gamma():
    scale = sets.ASEntmaxScale(8, 2).double()
    h = torch.randn(3, 8, dtype=torch.float64)
    n = torch.tensor([4, 100, 5000])
    beta = F.softplus(scale.beta_proj(h))
    gamma = 2 * torch.tanh(scale.gamma_proj(h))
    torch.testing.assert_close(scale(h, n), 1 + beta * torch.log(n.double())[:, None] ** gamma)


def test_effective_margin_is_the_gap_for_two_level_logits_and_inverts_the_weight():
    raw = torch.full((2, 1, 10), -1.0, dtype=torch.float64)
    raw[:, 0, 3] = 2.0
    att = sets.Attention(torch.softmax(raw * 0.7, -1), raw, torch.full((2, 1), 0.7, dtype=torch.float64))
    target = torch.tensor([3, 3])
    torch.testing.assert_close(sets.effective_margin(att, target).double(), torch.full((2,), 3.0, dtype=torch.float64),
                               atol=1e-6, rtol=0)
    # in general: target weight == 1 / (1 + (n - 1) e^{-F Delta}) exactly
    raw = torch.randn(5, 1, 30, dtype=torch.float64)
    factor = torch.rand(5, 1, dtype=torch.float64) + 0.5
    att = sets.Attention(torch.softmax(raw * factor[..., None], -1), raw, factor)
    target = torch.randint(0, 30, (5,))
    delta = sets.effective_margin(att, target).double()
    torch.testing.assert_close(sets.two_level_weight(30, delta, factor[:, 0]), sets.target_weight(att, target),
                               atol=1e-5, rtol=0)


def test_model_refuses_bad_settings():
    with pytest.raises(ValueError, match="variant must be one of"):
        sets.SetModel("maxret", "ssmax_bias")
    with pytest.raises(ValueError, match="logits must be one of"):
        sets.SetModel("maxret", "softmax", "cosine")
    with pytest.raises(ValueError, match="gain_init < gain_max"):
        sets.SetModel("keyret", "softmax", "capped", gain_init=9.0, gain_max=8.0)


def test_gain_cap_rule_and_names():
    assert sets_run.gain_max_from_rule() == 8.0  # 1 / (1 + 15 e^{-g}) >= 0.99 <=> g >= 7.30
    names = sets_run.set_experiment_names()
    assert {"maxret-softmax", "maxret-ssmax", "maxret-ssmax_fixed", "maxret-asentmax",
            "keyret-ssmax-bounded", "keyret-asentmax-unbounded"} <= set(names) and len(names) == 12
    assert set(names) <= set(ex.list_experiments())
    assert sets_run.parse_name("keyret-ssmax_fixed-bounded") == ("keyret-bounded", "keyret", "ssmax_fixed")
    with pytest.raises(ValueError, match="unknown set experiment"):
        sets_run.parse_name("keyret-ssmax")
    assert ex.seeds_for("maxret-ssmax", "cpu") == (0, 1, 2)


def test_a_killed_set_run_resumes_to_the_same_model(tmp_path, monkeypatch):
    cfg = dataclasses.replace(sets_run.set_run_config("keyret-ssmax-bounded", "smoke", 0), steps=8, checkpoint_every=3)
    ref, ref_hist = sets_run.train_set_model(cfg, torch.device("cpu"), "h")
    calls = {"n": 0}
    real = sets_run.sample_batch

    def dies_at_step_five(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kw)

    ckpt = tmp_path / "run.pt"
    monkeypatch.setattr(sets_run, "sample_batch", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        sets_run.train_set_model(cfg, torch.device("cpu"), "h", ckpt)
    monkeypatch.setattr(sets_run, "sample_batch", real)
    assert ckpt.exists()
    resumed, hist = sets_run.train_set_model(cfg, torch.device("cpu"), "h", ckpt)
    assert hist == ref_hist
    for (k, a), (_, b) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_every_set_experiment_runs_on_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SSMAX_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    for name in sets_run.set_experiment_names():
        result = ex.run(name, "smoke", 0, device="cpu", progress=False)
        m = result["metrics"]
        sizes = list(sets_run.SET_PROFILES["smoke"].test_sizes)
        assert m["set_sizes"] == sizes
        for key in ("accuracy", "target_weight", "entropy", "margin", "trials"):
            assert len(m[key]) == len(sizes), key
        assert all(0 <= a <= 1 for a in m["accuracy"]) and all(0 <= w <= 1 for w in m["target_weight"])
        assert len(m["val"]["accuracy"]) == 13  # n = 4..16
        _, _, variant = sets_run.parse_name(name)
        assert (m["theory"] is None) == (variant == "asentmax")
        assert set(m["eval_variants"]) == (set(sets.EVAL_VARIANTS) if variant == "softmax" else set())
        assert (m["learned_s"] is not None) == (variant == "ssmax")
        assert (m["gain"] is None) == name.startswith("maxret")
        assert store.has_current_result("smoke", name, 0, ex.experiment_config(name, "smoke", 0))
    assert not list((tmp_path / "ckpt").rglob("*.pt"))
