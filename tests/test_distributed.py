"""Multi-process training: `torchrun --nproc_per_node 2 -m ssmax run ...` on 2 CPU processes
(gloo) takes the steps one process takes on the same global batch, rank 0 alone writes, and a
killed multi-process run resumes to exactly its uninterrupted metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssmax import distributed
from ssmax import experiments as ex

from conftest import smoke_env, ssmax_cli

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "pretrain-f"  # softmax, then switched to SSMax: the switch re-wraps the DDP model


def _torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "ssmax", *args]


def _result(env: dict) -> dict:
    return json.loads((Path(env["SSMAX_RESULTS_DIR"]) / "smoke" / f"{EXPERIMENT}--seed0.json").read_text())


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> dict:
    env = smoke_env(tmp_path_factory.mktemp("ddp"))
    proc = subprocess.run(_torchrun(["run", EXPERIMENT, "--profile", "smoke"]), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _result(env)


def test_two_processes_take_the_steps_of_one_on_the_same_global_batch(two_process_run, tmp_path):
    env = smoke_env(tmp_path)
    single = ssmax_cli(["run", EXPERIMENT, "--profile", "smoke"], env)
    assert single.returncode == 0, single.stderr[-3000:]
    one, two = _result(env), two_process_run
    assert one["environment"]["world_size"] == 1 and two["environment"]["world_size"] == 2
    assert one["config_hash"] == two["config_hash"]  # the same experiment, whatever the process count
    m1, m2 = one["metrics"], two["metrics"]
    # gradients averaged over two half batches equal the whole batch's up to float rounding
    assert m1["steps"] == m2["steps"] and m1["eval_steps"] == m2["eval_steps"]
    assert m2["train_loss"] == pytest.approx(m1["train_loss"], rel=1e-5)
    assert m2["val_loss"] == pytest.approx(m1["val_loss"], rel=1e-5)
    assert m2["final_val_loss"] == pytest.approx(m1["final_val_loss"], rel=1e-5)
    assert torch.allclose(torch.tensor(m2["learned_s"]), torch.tensor(m1["learned_s"]), rtol=1e-4)
    assert m2["scaling_after_training"] == "ssmax"


def test_a_killed_two_process_run_resumes_to_its_uninterrupted_metrics(two_process_run, tmp_path):
    env = smoke_env(tmp_path)
    ckpt = Path(env["SSMAX_CHECKPOINT_DIR"]) / "smoke" / f"{EXPERIMENT}--seed0.pt"
    # its own session, so that the kill reaches torchrun and both workers, and nothing else
    proc = subprocess.Popen(_torchrun(["run", EXPERIMENT, "--profile", "smoke"]), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    results = Path(env["SSMAX_RESULTS_DIR"]) / "smoke" / f"{EXPERIMENT}--seed0.json"
    assert ckpt.exists() and not results.exists(), "the run should have been killed after its first checkpoint"
    assert 0 < torch.load(ckpt, weights_only=True)["step"] < ex.experiment_config(EXPERIMENT, "smoke").train.steps

    resumed = subprocess.run(_torchrun(["run", EXPERIMENT, "--profile", "smoke"]), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _result(env)["metrics"] == two_process_run["metrics"]
    assert not ckpt.exists()


def test_a_batch_that_does_not_split_evenly_is_refused():
    assert distributed.check_batch_size(16, processes=4) == 4
    with pytest.raises(ValueError, match=r"batch_size \(6\) must be divisible by the number of processes \(4\)"):
        distributed.check_batch_size(6, processes=4)


def test_a_single_process_touches_no_process_group():
    assert distributed.world_size() == 1 and distributed.is_main()
    x = torch.arange(6.0).view(3, 2)
    assert distributed.local_share(x, None) == (x, None)
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model
