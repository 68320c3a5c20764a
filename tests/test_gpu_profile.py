"""The gpu profile on a CPU: every config builds, each distinct model trains for two steps (batch
1), and the FLOP-based estimate of its headline path fits the 10-minute budget of one H100."""

from __future__ import annotations

import json

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from ssmax import estimate
from ssmax import experiments as ex
from ssmax.model import GPT, GPTConfig
from ssmax.train import train


def _training_configs() -> dict[str, ex.ExperimentConfig]:
    configs = {}
    for name in ex.list_experiments():
        for seed in ex.seeds_for(name, "gpu"):
            configs[f"{name}--seed{seed}"] = ex.experiment_config(name, "gpu", seed)
    return configs


def test_every_gpu_config_builds():
    configs = _training_configs()
    assert len(configs) == sum(len(ex.seeds_for(n, "gpu")) for n in ex.list_experiments())
    assert "1024" in ex.describe_profile("gpu")


def test_each_distinct_gpu_model_trains_two_steps_on_the_cpu():
    """The first pretraining experiment of every distinct model config, at the gpu profile's sizes
    (T included), with batch 1: the code path a GPU run takes, minus the GPU."""
    seen = set()
    for key, config in _training_configs().items():
        tc = config.train
        if tc is None or tc.task != "lm" or tc.steps == 0 or tc.model.scaling in seen:
            continue
        seen.add(tc.model.scaling)
        short = dataclasses.replace(tc, steps=2, batch_size=1, warmup_steps=1, eval_every=2, eval_batches=1,
                                    checkpoint_every=2, log_every=1, switch_to_ssmax_at=None)
        outcome = train(short, device=torch.device("cpu"), progress=False)
        assert outcome.metrics["steps"] == [1, 2], key
        assert math.isfinite(outcome.metrics["final_val_loss"]), key
        assert outcome.model.config.block_size == ex.PROFILE_SETTINGS["gpu"].model["block_size"]
    assert seen == {"softmax", "ssmax", "ssmax_fixed", "ssmax_bias", "learned_pn"}


def test_the_gpu_needle_fine_tuning_batches_build():
    """needle-sft at the gpu profile's T: the batch its training loop draws (the model and loop are
    the pretraining ones above)."""
    from ssmax.train import _Batches

    tc = dataclasses.replace(ex.experiment_config("needle-sft-b", "gpu").train, batch_size=2, eval_batches=1)
    x, y, mask = _Batches(tc).next()
    T = ex.PROFILE_SETTINGS["gpu"].model["block_size"]
    assert x.shape == y.shape == mask.shape == (2, T - 1)
    assert int(mask.sum()) == 2 * tc.n_digits


def test_the_headline_path_is_estimated_within_ten_minutes_of_one_h100():
    rows = estimate.headline_estimate("gpu")
    assert [r.experiment for r in rows] == list(estimate.HEADLINE)
    minutes = estimate.headline_minutes("gpu")
    assert 0 < minutes <= estimate.HEADLINE_BUDGET_MIN
    assert "within" in estimate.format_estimate("gpu")


def test_flops_per_token_match_the_six_n_rule_plus_attention():
    """The counter's training FLOPs per token: 6 x the matmul weights (embedding lookups are not
    matmuls) plus attention's 2 x 2 T d per layer, forward, times 3 with the backward."""
    config = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64)
    n_matmul = GPT(config).num_parameters() - config.vocab_size * config.n_embd - (2 * config.n_layer + 1) * config.n_embd
    expected = 6 * n_matmul + 3 * config.n_layer * 4 * 64 * config.n_embd
    assert estimate.flops_per_token(config, 64, train=True) == pytest.approx(expected, rel=1e-9)
    assert estimate.flops_per_token(config, 64, train=False) == pytest.approx(expected / 3, rel=1e-9)


def test_the_reproduce_page_shows_the_current_estimate():
    page = (Path(__file__).resolve().parents[1] / "book" / "reproduce.md").read_text()
    assert estimate.format_estimate("gpu") in page, "rerun `python -m ssmax.estimate` and paste it into book/reproduce.md"
    assert estimate.format_measured("gpu") in page, "rerun `python -m ssmax.estimate` and paste it into book/reproduce.md"


def test_the_measured_gpu_rate_is_read_from_its_stored_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    assert estimate.format_measured("gpu").startswith("measured: none yet")
    result = estimate.measure_training("smoke", "cpu", steps=1, warmup=0)
    assert result["training"]["softmax"]["tokens_per_s"] > 0 and result["mixed_precision"] is False
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "cuda-smoke.json").write_text(json.dumps(result))
    assert "softmax" in estimate.format_measured("smoke") and "at T = " in estimate.format_measured("smoke")
