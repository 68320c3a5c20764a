"""ssmax.cost: training tokens and budget groups read from results files, the reference
comparison, the estimate's guard, and the benchmark's checks as numbers (the appendix's tables)."""

from __future__ import annotations

import json

import pytest

from ssmax import bench
from ssmax.book import cost


def _result(experiment: str, seed: int, kind: str, train: dict | None, metrics: dict, device: str, wall: float,
            init_from: str | None = None, config_hash: str = "h") -> dict:
    return {"experiment": experiment, "seed": seed, "config_hash": config_hash, "metrics": metrics,
            "config": {"kind": kind, "train": train, "init_from": init_from, "name": experiment},
            "environment": {"device": device, "device_name": device, "wall_time_s": wall}}


def _write(folder, result):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{result['experiment']}--seed{result['seed']}.json").write_text(json.dumps(result))


def test_training_tokens_count_steps_batch_context_and_every_learning_rate_try():
    pre = _result("pretrain-a", 0, "pretrain", {"steps": 10, "batch_size": 4, "model": {"block_size": 32}},
                  {"final_val_loss": 1.0}, "cpu", 1.0)
    sft = _result("needle-sft-a", 0, "needle_sft", {"steps": 5, "batch_size": 2},
                  {"lr_tries": [{}, {}]}, "cpu", 1.0, init_from="pretrain-a--seed0")
    stored = {"pretrain-a--seed0": pre, "needle-sft-a--seed0": sft}
    assert cost.training_tokens(pre, stored) == 10 * 4 * 32
    assert cost.training_tokens(sft, stored) == 5 * 2 * 32 * 2  # context of the model it starts from
    evaluation = _result("lengthgen-a", 0, "lengthgen", None, {}, "cpu", 1.0, init_from="pretrain-a--seed0")
    assert cost.training_tokens(evaluation, stored) == 0


def test_reference_comparison_pairs_runs_by_experiment_and_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    train = {"steps": 10, "batch_size": 4, "model": {"block_size": 32}}
    _write(tmp_path / "reference-cpu", _result("pretrain-a", 0, "pretrain", train, {"final_val_loss": 1.30},
                                               "cpu", 200.0))
    _write(tmp_path / "reference-cpu", _result("pretrain-a", 7, "pretrain", train, {"final_val_loss": 9.0},
                                               "cpu", 200.0))  # no partner: left out
    ours = tmp_path / "ours"
    _write(ours, _result("pretrain-a", 0, "pretrain", train, {"final_val_loss": 1.31}, "NVIDIA H200", 50.0))
    monkeypatch.setattr(cost, "_read_folder", lambda folder, checked=True: {
        p.stem: json.loads(p.read_text()) for p in sorted((tmp_path / folder).glob("*--seed*.json"))})
    rows = cost.reference_comparison("ours")
    assert [r["key"] for r in rows] == ["pretrain-a--seed0"]
    assert rows[0]["reference_device"] == "cpu" and rows[0]["profile_device"] == "NVIDIA H200"
    summary = cost.reference_summary(rows)["final validation loss"]
    assert summary["runs"] == 1 and summary["max_abs_diff"] == pytest.approx(0.01)
    assert cost.reference_runs("no-such-folder") == {}


def test_estimate_needs_a_positive_speed():
    assert cost.estimated_minutes(60_000, 1_000) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tokens_per_s must be > 0"):
        cost.estimated_minutes(1, 0)


def test_bench_checks_agree_with_the_printed_checks():
    result = bench.load_benchmark("cpu")  # the committed benchmark
    checks = cost.bench_checks(result)
    printed = bench.format_checks(result)
    for c in checks["layer"]:
        assert f"fused SSMax / softmax time = {c['ratio']:.3f}" in printed
    assert f"~T^{checks['memory_exponent']:.2f}" in printed
    assert f"SSMax at {checks['training_ratio']:.1%} of softmax's tokens/s" in printed
    tables = cost.bench_tables(result)
    assert {"layer_time", "layer_memory", "training"} <= set(tables)


def test_two_core_times_use_measured_runs_only(tmp_path, monkeypatch):
    """A run's own 2-core time, else its reference run's, else its experiment's or kind's mean per
    learning-rate try; a GPU run or one with other threads is never a measurement."""
    from ssmax import experiments as ex

    def res(name, seed, kind, device, threads, wall, tries=1):
        r = _result(name, seed, kind, None, {"lr_tries": [{}] * tries} if tries > 1 else {}, device, wall)
        r["environment"]["torch_threads"] = threads
        return r

    folders = {
        "cpu": {"pretrain-a--seed0": res("pretrain-a", 0, "pretrain", "cuda", 1, 10.0),
                 "pretrain-a--seed1": res("pretrain-a", 1, "pretrain", "cpu", 2, 300.0),
                 "pretrain-b--seed0": res("pretrain-b", 0, "pretrain", "cpu", 8, 100.0),  # 8 threads: not 2 cores
                 "needle-sft-b--seed0": res("needle-sft-b", 0, "needle_sft", "cuda", 1, 9.0, tries=3)},
        "reference-cpu": {"pretrain-a--seed0": res("pretrain-a", 0, "pretrain", "cpu", 2, 360.0),
                          "needle-sft-a--seed0": res("needle-sft-a", 0, "needle_sft", "cpu", 2, 240.0)}}
    monkeypatch.setattr(cost, "_read_folder", lambda folder, checked=True: folders.get(folder, {}))
    monkeypatch.setattr(ex, "run_keys", lambda profile: [("pretrain-a", 0), ("pretrain-a", 1), ("pretrain-b", 0),
                                                         ("needle-sft-b", 0), ("lengthgen-a", 0)])
    rows = {r["key"]: r for r in cost.two_core_times("cpu")}
    assert rows["pretrain-a--seed1"]["source"] == "measured" and rows["pretrain-a--seed1"]["minutes"] == 5.0
    assert rows["pretrain-a--seed0"]["source"] == "reference run" and rows["pretrain-a--seed0"]["minutes"] == 6.0
    assert rows["pretrain-b--seed0"]["source"] == "same kind"  # mean of the 2-core pretrainings
    assert rows["pretrain-b--seed0"]["minutes"] == pytest.approx((300 + 360) / 2 / 60)
    assert rows["needle-sft-b--seed0"]["source"] == "same kind"  # three tries of (a)'s one
    assert rows["needle-sft-b--seed0"]["minutes"] == pytest.approx(3 * 240 / 60)
    assert rows["lengthgen-a--seed0"]["source"] == "not measured"
    summary = {s["kind"]: s for s in cost.two_core_summary(list(rows.values()))}
    assert summary["pretraining"]["runs"] == 3 and summary["pretraining"]["measured"] == 2
    assert summary["per-position loss"]["minutes"] != summary["per-position loss"]["minutes"]  # nan
