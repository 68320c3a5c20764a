"""The experiment pipeline end to end on the smoke profile: reproduce, resume after a kill,
determinism, stale/corrupt results and checkpoints, the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssmax import experiments as ex
from ssmax import results as store
from ssmax.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ssmax.train import TrainConfig, batch_loss, train

from conftest import smoke_env, ssmax_cli

REPO = Path(__file__).resolve().parents[1]


def _env(tmp: Path) -> dict:
    return smoke_env(tmp)


def _cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return ssmax_cli(args, env, timeout)


def test_reproduce_smoke_writes_every_experiment_with_its_provenance(results_dir):
    for name in ex.list_experiments():
        for seed in ex.seeds_for(name, "smoke"):
            config = ex.experiment_config(name, "smoke", seed)
            data = store.load_result("smoke", name, seed, config)  # current, not stale
            env = data["environment"]
            for key in ("ssmax_version", "git_commit", "torch_version", "device", "wall_time_s"):
                assert key in env
            assert data["config"]["name"] == name
    # every training experiment left weights that the evaluations can reload
    model, _ = ex.load_weights("needle-sft-b", "smoke", 0, torch.device("cpu"))
    assert model.config.scaling == "ssmax"


def test_results_hold_what_the_chapters_need(results_dir):
    res = ex.results_for(["pretrain-a", "learned-pn", "lengthgen-baselines", "needle-eval-b", "needle-score-a"], "smoke")
    assert len(res["pretrain-a"]) == len(ex.PROFILE_SETTINGS["smoke"].seeds)
    assert len(res["learned-pn"][0]["metrics"]["learned_p_n"]) == ex.PROFILE_SETTINGS["smoke"].model["block_size"]
    curves = res["lengthgen-baselines"][0]["metrics"]["curves"]
    assert {"qwen_logn@theta_x50", "llama4_temp@theta_x1", "log_train_len@theta_x50"} <= set(curves)
    grid = res["needle-eval-b"][0]["metrics"]["theta_x50"]
    assert len(grid["exact"]) == len(grid["context_lengths"]) and len(grid["exact"][0]) == len(grid["depths"])
    score = res["needle-score-a"][0]["metrics"]["random_trials"]
    assert len(score["top_score"]) == ex.PROFILE_SETTINGS["smoke"].needle_score["trials"]


def test_switch_variants_end_as_ssmax(results_dir):
    e = ex.results_for(["pretrain-e", "pretrain-f"], "smoke")
    assert e["pretrain-e"][0]["metrics"]["scaling_after_training"] == "ssmax"
    assert e["pretrain-f"][0]["metrics"]["scaling_after_training"] == "ssmax"
    assert len(e["pretrain-f"][0]["metrics"]["learned_s"]) == ex.PROFILE_SETTINGS["smoke"].model["n_layer"]


def test_a_killed_run_resumes_to_exactly_the_uninterrupted_metrics(tmp_path):
    env = _env(tmp_path)
    full = _cli(["run", "pretrain-f", "--profile", "smoke"], env)
    assert full.returncode == 0, full.stderr[-2000:]
    path = Path(env["SSMAX_RESULTS_DIR"]) / "smoke" / "pretrain-f--seed0.json"
    reference = json.loads(path.read_text())["metrics"]
    path.unlink()

    ckpt = Path(env["SSMAX_CHECKPOINT_DIR"]) / "smoke" / "pretrain-f--seed0.pt"
    proc = subprocess.Popen([sys.executable, "-m", "ssmax", "run", "pretrain-f", "--profile", "smoke"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not path.exists(), "the run should have been killed after its first checkpoint"
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < step < ex.experiment_config("pretrain-f", "smoke").train.steps

    resumed = _cli(["run", "pretrain-f", "--profile", "smoke"], env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(path.read_text())["metrics"] == reference
    assert not ckpt.exists()  # cleaned up once the run is complete


def _tiny_train_config(**overrides) -> TrainConfig:
    base = ex.experiment_config("pretrain-b", "smoke").train
    return dataclasses.replace(base, **overrides)


def test_two_runs_with_the_same_seed_are_identical():
    cfg = _tiny_train_config(steps=6)
    a = train(cfg, device=torch.device("cpu"), progress=False)
    b = train(cfg, device=torch.device("cpu"), progress=False)
    assert a.metrics == b.metrics
    c = train(dataclasses.replace(cfg, seed=1), device=torch.device("cpu"), progress=False)
    assert c.metrics["train_loss"] != a.metrics["train_loss"]


def test_a_nan_loss_stops_the_run_naming_the_step(monkeypatch):
    import ssmax.train as train_module

    calls = {"n": 0}

    def poisoned(model, x, y, mask):
        calls["n"] += 1
        loss = batch_loss(model, x, y, mask)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(train_module, "batch_loss", poisoned)
    with pytest.raises(FloatingPointError, match="at step 3"):
        train(_tiny_train_config(steps=6, eval_every=100), device=torch.device("cpu"), progress=False)


def test_needle_sft_loss_counts_only_the_answer():
    from ssmax.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16))
    x = torch.randint(0, 256, (2, 16))
    y = torch.randint(0, 256, (2, 16))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, -3:] = True
    expected = torch.nn.functional.cross_entropy(model(x)[:, -3:].flatten(0, 1), y[:, -3:].flatten())
    assert torch.allclose(batch_loss(model, x, y, mask), expected)


def test_stale_corrupt_and_missing_results_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    config = ex.experiment_config("pretrain-a", "smoke", 0)
    with pytest.raises(store.MissingResultsError, match="python -m ssmax run pretrain-a --profile smoke --seed 0"):
        store.load_result("smoke", "pretrain-a", 0, config)
    metrics = {"steps": [1], "train_loss": [1.0], "eval_steps": [1], "val_loss": [1.0], "final_val_loss": 1.0,
               "n_parameters": 1, "scaling_after_training": "softmax"}  # what METRICS_SCHEMA asks of pretraining
    store.save_result("smoke", "pretrain-a", 0, config, metrics, {})
    assert store.load_result("smoke", "pretrain-a", 0, config)["metrics"]["final_val_loss"] == 1.0
    changed = dataclasses.replace(config, train=dataclasses.replace(config.train, lr=1e-4))
    with pytest.raises(store.StaleResultsError, match="stale results: rerun `python -m ssmax run pretrain-a"):
        store.load_result("smoke", "pretrain-a", 0, changed)
    path = store.result_path("smoke", "pretrain-a", 0)
    path.write_text(path.read_text()[:40])  # truncated
    with pytest.raises(store.CorruptResultsError, match="not valid JSON"):
        store.load_result("smoke", "pretrain-a", 0, config)
    path.write_text(json.dumps({"metrics": {}}))
    with pytest.raises(store.CorruptResultsError, match="lacks the fields"):
        store.load_result("smoke", "pretrain-a", 0, config)


def test_notebook_facing_loader_lists_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path / "empty"))
    with pytest.raises(store.MissingResultsError, match="make reproduce PROFILE=cpu") as err:
        ex.results_for(["pretrain-a", "pretrain-c"], "cpu")
    assert "python -m ssmax run pretrain-c --profile cpu --seed 0" in str(err.value)


def test_checkpoints_from_another_config_or_damaged_are_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 3}, "hash-a")
    assert load_checkpoint(path, "hash-a")["step"] == 3
    with pytest.raises(CheckpointError, match="another config"):
        load_checkpoint(path, "hash-b")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path, "hash-a")


def test_train_refuses_a_checkpoint_of_another_config(tmp_path):
    cfg = _tiny_train_config(steps=4, checkpoint_every=2)
    ckpt = tmp_path / "run.pt"
    save_checkpoint(ckpt, {"step": 2}, "not-this-config")
    with pytest.raises(CheckpointError, match="another config"):
        train(cfg, device=torch.device("cpu"), checkpoint_path=ckpt, progress=False)


@pytest.mark.parametrize("args, message", [
    (["run", "pretrain-z", "--profile", "smoke"], "unknown experiment 'pretrain-z'; did you mean 'pretrain-f' or 'pretrain-e' or 'pretrain-d'?"),
    (["run", "pretrain-d", "--profile", "smoke", "--seed", "1"], "seed for pretrain-d in profile smoke must be one of (0,)"),
    (["run", "pretrain-a", "--profile", "laptop"], "invalid choice: 'laptop'"),
    (["reproduce"], "the following arguments are required: --profile"),
])
def test_cli_bad_input_names_the_allowed_values(tmp_path, args, message):
    proc = _cli(args, _env(tmp_path), timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_cli_list_names_every_experiment(tmp_path):
    proc = _cli(["list"], _env(tmp_path), timeout=60)
    assert proc.returncode == 0
    for name in ex.list_experiments():
        assert name in proc.stdout


@pytest.mark.parametrize("kwargs, message", [
    (dict(profile="laptop", retrain=False, device="auto"), "profile must be one of"),
    (dict(profile="cpu", retrain="yes", device="auto"), "retrain must be True or False"),
    (dict(profile="cpu", retrain=False, device="tpu"), "device must be one of"),
])
def test_notebook_parameters_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ex.check_notebook_parameters(**kwargs)


@pytest.mark.parametrize("overrides, message", [
    (dict(steps=-1), "steps must be a non-negative integer"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(task="rl"), "task must be one of"),
    (dict(lr=0.0), "lr must be > 0"),
])
def test_bad_train_config_names_the_parameter(overrides, message):
    with pytest.raises(ValueError, match=message):
        _tiny_train_config(**overrides)


def test_needle_fine_tuning_halves_its_rate_until_validation_accepts_it(tmp_path, monkeypatch):
    """The learning-rate ladder is a rule on validation data: with a target no run can reach,
    every rung is tried at half the previous rate, each is recorded, and the best is kept."""
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SSMAX_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    smoke = ex.PROFILE_SETTINGS["smoke"]
    monkeypatch.setitem(ex.PROFILE_SETTINGS, "smoke",
                        dataclasses.replace(smoke, sft_halvings=1, sft_target_exact=1.01))
    result = ex.run("needle-sft-a", "smoke", 0, device="cpu", progress=False)
    tries = result["metrics"]["lr_tries"]
    assert [t["lr"] for t in tries] == pytest.approx([smoke.sft["lr"], smoke.sft["lr"] / 2])
    exacts = [t["final_val_exact"] for t in tries]
    assert result["metrics"]["lr_chosen"] == tries[exacts.index(max(exacts))]["lr"]
    assert result["metrics"]["final_val_exact"] == max(exacts)
    assert not list((tmp_path / "checkpoints").rglob("*.pt")), "the ladder's checkpoints are removed at its end"


def test_a_needle_fine_tuning_trained_to_a_criterion_stops_at_the_first_check_that_reaches_it(
        tmp_path, monkeypatch):
    """The criterion stops training at the first validation check whose exact match reaches it;
    the schedule stays the one of the full run; each try records the steps it took."""
    import ssmax.train as train_module
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("SSMAX_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    real = train_module.evaluate_batches
    checks = []

    def evaluate(model, batches, device):
        out = real(model, batches, device)
        if "val_exact" not in out:  # the pretraining run that the fine-tuning starts from
            return out
        checks.append(out)
        return {**out, "val_exact": 1.0} if len(checks) == 1 else out

    monkeypatch.setattr(train_module, "evaluate_batches", evaluate)
    smoke = ex.PROFILE_SETTINGS["smoke"]
    monkeypatch.setitem(ex.PROFILE_SETTINGS, "smoke", dataclasses.replace(smoke, sft_halvings=1))
    result = ex.run("needle-sft-a", "smoke", 0, device="cpu", progress=False)
    every = smoke.sft["eval_every"]
    assert every < smoke.sft["steps"], "the smoke profile must check before its last step for this test"
    assert result["metrics"]["stopped_at"] == every
    assert result["metrics"]["eval_steps"] == [every]
    assert result["metrics"]["lr_tries"] == [{**result["metrics"]["lr_tries"][0], "steps": every}]
    assert len(result["metrics"]["lr_tries"]) == 1, "a try that reached the criterion reached the target"


def test_train_to_a_criterion_rejects_a_criterion_outside_0_1():
    smoke = ex.experiment_config("needle-sft-a", "smoke", 0)
    with pytest.raises(ValueError, match="stop_at_val_exact must be in"):
        train(smoke.train, device=torch.device("cpu"), stop_at_val_exact=1.5)


def test_the_ladder_keeps_the_first_rate_that_reaches_the_target():
    tries = [{"final_val_exact": 0.5}, {"final_val_exact": 0.95}, {"final_val_exact": 1.0}]
    assert ex._ladder_choice(tries, 0.9) == 1
    assert ex._ladder_choice(tries[:1] + [{"final_val_exact": 0.4}], 0.9) == 0
    assert ex._ladder_choice([{"final_val_exact": None}, {"final_val_exact": 0.1}], 0.9) == 1


def test_reproduce_with_several_jobs_writes_the_same_results(results_dir, tmp_path):
    """`reproduce --jobs 2` deals independent runs to 2 processes; every results file holds the
    same metrics (same checksum) as the one-process reproduce of the session fixture."""
    proc = ssmax_cli(["reproduce", "--profile", "smoke", "--jobs", "2"], smoke_env(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = {p.name: json.loads(p.read_text())["metrics_sha256"] for p in (results_dir / "smoke").glob("*.json")}
    two = {p.name: json.loads(p.read_text())["metrics_sha256"]
           for p in (tmp_path / "results" / "smoke").glob("*.json")}
    assert one and one == two


def test_parallel_groups_keep_every_run_with_what_it_loads():
    from ssmax import parallel
    shares = parallel.deal("cpu", 4)
    where = {key: i for i, share in enumerate(shares) for key in share}
    assert sorted(where) == sorted(ex.run_keys("cpu"))
    for (name, seed), i in where.items():
        for dep in ex.experiment_config(name, "cpu", seed).depends_on:
            dep_name, dep_seed = dep.rsplit("--seed", 1)
            assert where[dep_name, int(dep_seed)] == i, f"{name} seed {seed} apart from {dep}"


@pytest.mark.parametrize("args, message", [(["--jobs", "0"], "jobs must be a positive integer"),
                                           (["--jobs", "2", "--headline"], "--jobs runs the whole profile")])
def test_reproduce_jobs_bad_input(tmp_path, args, message):
    proc = ssmax_cli(["reproduce", "--profile", "smoke", *args], smoke_env(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
