"""Issue 24, "Hardening, second round": no code runs from a data file, no result outlives the
model it measured, nothing lost on a failed write. One test (or group) per item, numbered as in
the issue, written as the user's command where there is one (smoke profile, temporary folders)."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch

from ssmax import bench
from ssmax.book import cost
from ssmax import experiments as ex
from ssmax import results as store
from ssmax.checkpoint import CheckpointError, save_checkpoint
from ssmax.functional import causal_key_counts, required_logit, softmax_max_bound, ssmax
from ssmax.model import GPT, GPTConfig

from conftest import smoke_env, ssmax_cli

REPO = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _one_error_line(stderr: str) -> str:
    """The one line `error: ...` that ends ``stderr`` (after any progress bar), no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
    return errors[0]


def _use(env: dict, monkeypatch) -> Path:
    """Point this process at the folders of ``env``; returns the results root."""
    monkeypatch.setenv("SSMAX_RESULTS_DIR", env["SSMAX_RESULTS_DIR"])
    monkeypatch.setenv("SSMAX_CHECKPOINT_DIR", env["SSMAX_CHECKPOINT_DIR"])
    return Path(env["SSMAX_RESULTS_DIR"])


# --- 1. a pickle payload in a weights or checkpoint file runs nothing ---------------------------

class _Payload:
    """Unpickled by a full (weights_only=False) load, it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, config_hash: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config_hash": config_hash, "model_config": {}, "state_dict": {}, "x": _Payload(marker)}, path)


def test_a_pickle_payload_in_weights_or_checkpoints_runs_nothing(tmp_path, monkeypatch, capsys):
    from ssmax.__main__ import main

    env = smoke_env(tmp_path)
    root = _use(env, monkeypatch)
    ex.run("pretrain-a", "smoke", progress=False)
    marker = tmp_path / "pwned"
    weights = root / "smoke" / "weights" / "pretrain-a--seed0.pt"
    config_hash = store.config_hash(ex.experiment_config("pretrain-a", "smoke", 0))
    _plant(weights, marker, config_hash)

    with pytest.raises(CheckpointError, match="was refused: it holds objects other than tensors"):
        ex.load_weights("pretrain-a", "smoke", 0, torch.device("cpu"))
    rebuilt = ssmax_cli(["run", "lengthgen-a", "--profile", "smoke"], env)  # loads pretrain-a's weights
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert torch.load(weights, weights_only=True)["state_dict"]  # a clean rebuild replaced it

    ckpt = Path(env["SSMAX_CHECKPOINT_DIR"]) / "smoke" / "pretrain-b--seed0.pt"
    _plant(ckpt, marker, store.config_hash(ex.experiment_config("pretrain-b", "smoke", 0).train))
    assert main(["run", "pretrain-b", "--profile", "smoke"]) == 0
    err = capsys.readouterr().err
    assert "not resuming from" in err and "refused" in err
    assert not marker.exists()

    _plant(ckpt, marker, "h")  # the payload is live: a full unpickling would run it
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


# --- 2. results are written before the checkpoint is removed ------------------------------------

def test_a_failed_results_write_keeps_the_checkpoint_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    from ssmax.__main__ import main
    from ssmax import train as train_module

    root = _use(smoke_env(tmp_path), monkeypatch)
    real_save = store.save_result

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "save_result", full_disk)
    assert main(["run", "pretrain-a", "--profile", "smoke"]) == 2
    assert "No space left on device" in _one_error_line(capsys.readouterr().err)
    ckpt = tmp_path / "ckpt" / "smoke" / "pretrain-a--seed0.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 8  # kept: the last checkpoint before step 12

    monkeypatch.setattr(store, "save_result", real_save)
    resumed_from = []
    real_load = train_module.load_checkpoint
    monkeypatch.setattr(train_module, "load_checkpoint",
                        lambda *a, **k: resumed_from.append(real_load(*a, **k)["step"]) or real_load(*a, **k))
    assert main(["run", "pretrain-a", "--profile", "smoke"]) == 0
    assert resumed_from == [8] and not ckpt.exists()
    assert store.result_path("smoke", "pretrain-a", 0).exists() and (root / "smoke").is_dir()


# --- 3. retraining upstream makes everything downstream stale -----------------------------------

def _retrain_with_other_weights(name: str, seed: int = 0) -> None:
    """What a retrain that changes the weights but not the config does (e.g. under torchrun):
    new weights, and results that record them."""
    path = store.weights_path("smoke", name, seed)
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key] + 1e-2
    config = ex.experiment_config(name, "smoke", seed)
    digest = save_checkpoint(path, {k: v for k, v in payload.items() if k != "config_hash"}, store.config_hash(config))
    old = store.read_result_file(store.result_path("smoke", name, seed))
    store.save_result("smoke", name, seed, config, old["metrics"], old["environment"], weights_sha256=digest,
                      weights_used=old.get("weights_used"))


def test_retraining_upstream_makes_everything_downstream_stale(tmp_path, monkeypatch):
    _use(smoke_env(tmp_path), monkeypatch)
    for name in ("lengthgen-a", "needle-eval-a"):
        ex.run(name, "smoke", progress=False)
    cfg = {n: ex.experiment_config(n, "smoke", 0) for n in ("lengthgen-a", "needle-sft-a", "needle-eval-a")}
    weights = store.weights_path("smoke", "pretrain-a", 0)
    before = weights.read_bytes()

    # an identical retrain writes identical bytes: nothing downstream goes stale
    ex.run("pretrain-a", "smoke", force=True, progress=False)
    assert weights.read_bytes() == before
    for name, config in cfg.items():
        store.load_result("smoke", name, 0, config)

    _retrain_with_other_weights("pretrain-a")
    for name, config in cfg.items():  # needle-eval-a: through needle-sft-a, two steps downstream
        with pytest.raises(store.StaleResultsError, match="pretrain-a--seed0 was retrained since"):
            store.load_result("smoke", name, 0, config)
    ex.run("needle-eval-a", "smoke", progress=False)  # `run needle-eval-a --reuse`: remakes the chain
    for name in ("needle-sft-a", "needle-eval-a"):
        store.load_result("smoke", name, 0, cfg[name])
    with pytest.raises(store.StaleResultsError):
        store.load_result("smoke", "lengthgen-a", 0, cfg["lengthgen-a"])  # not rerun yet


def test_the_committed_results_are_current_and_record_the_committed_weights():
    results = ex.results_for(ex.list_experiments(), "cpu")
    assert sum(len(r) for r in results.values()) == len(store.result_files(store.results_root() / "cpu"))
    results.update(ex.results_for(list(ex.CROSSCHECK_EXPERIMENTS), "cpu"))  # the cross-check's, outside the profile
    digests = {f"{r['experiment']}--seed{r['seed']}": r.get("weights_sha256") for rs in results.values() for r in rs}
    for path in sorted((store.results_root() / "cpu" / "weights").glob("*.pt")):
        assert digests[path.stem] == store.file_sha256(path), path


# --- 4. after Ctrl-C, reproduce names --reuse ---------------------------------------------------

def test_reproduce_ctrl_c_says_rerun_with_reuse(monkeypatch, capsys):
    from ssmax.__main__ import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "reproduce", interrupted)
    assert main(["reproduce", "--profile", "smoke"]) == 130
    err = capsys.readouterr().err
    assert "rerun with --reuse to resume (`python -m ssmax reproduce --profile smoke --reuse`" in err


# --- 5, 11. SIGTERM or Ctrl-C to reproduce --jobs stops every worker, without tracebacks --------

def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["SIGTERM to the parent", "Ctrl-C to the process group"])
def test_a_signal_to_reproduce_jobs_stops_every_worker(tmp_path, how):
    proc = subprocess.Popen([sys.executable, "-m", "ssmax", "reproduce", "--profile", "smoke", "--jobs", "2"],
                            cwd=REPO, env=smoke_env(tmp_path), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert len(workers) == 2, "the workers did not start"
    time.sleep(2)  # let them get into their imports / first run
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if how.startswith("SIGTERM") else 130), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "--reuse" in err.strip().splitlines()[-1]
    time.sleep(0.5)
    assert not [w for w in workers if _alive(w)]


# --- 6. torchrun + --jobs is refused at once ----------------------------------------------------

def test_torchrun_with_jobs_is_refused_cleanly(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside this interpreter")
    t0 = time.monotonic()
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "ssmax", "reproduce",
                           "--profile", "smoke", "--jobs", "2"], cwd=REPO, env=smoke_env(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0 and time.monotonic() - t0 < 180
    assert "error: --jobs starts its own worker processes and cannot run under torchrun" in proc.stderr
    assert "DistributedDataParallel" not in proc.stderr and "ProcessGroup" not in proc.stderr
    assert not (tmp_path / "results" / "smoke").exists()


# --- 7. --jobs is capped at the CPU cores, with a warning ---------------------------------------

def test_reproduce_jobs_is_capped_with_a_warning(monkeypatch, capsys):
    from ssmax import parallel
    from ssmax.__main__ import main

    started = []

    class FakeWorker:
        def __init__(self, args, **kwargs):
            started.append(args)

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(parallel.subprocess, "Popen", FakeWorker)
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 3)
    assert main(["reproduce", "--profile", "smoke", "--jobs", "1000", "--device", "cpu"]) == 0
    assert len(started) == 3
    assert "warning: --jobs 1000 is more than this machine's 3 CPU cores; running 3 workers" in capsys.readouterr().err


# --- 8, 21. library inputs ----------------------------------------------------------------------

@pytest.mark.parametrize("theta", [math.nan, math.inf, -math.inf, 0.0, "x", None])
def test_the_forward_refuses_a_bad_rope_theta(theta):
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8))
    idx = torch.zeros(1, 4, dtype=torch.long)
    if theta is None:  # None means the trained theta
        assert torch.isfinite(model(idx, rope_theta=theta)).all()
        return
    with pytest.raises(ValueError, match="rope_theta must be a finite number > 0"):
        model(idx, rope_theta=theta)


def test_ssmax_edge_inputs_give_values_or_one_clear_error():
    assert ssmax(torch.randn(3, 0), s=0.4).shape == (3, 0)  # nothing to normalise, as torch.softmax
    out = ssmax(torch.randn(3, 4, dtype=torch.float64), s=1e300)  # finite in float64
    assert torch.isfinite(out).all() and torch.allclose(out.sum(-1), torch.ones(3, dtype=torch.float64))
    huge = ssmax(torch.tensor([3e38, -3e38, 1.0]), s=10)
    assert torch.equal(huge, torch.tensor([1.0, 0.0, 0.0]))
    x = torch.randn(2, 7, requires_grad=True)  # the shift changes nothing else
    ref = torch.softmax(0.6 * math.log(7) * x, -1)
    assert torch.allclose(ssmax(x, s=0.6), ref, atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: ssmax(torch.randn(3, 4), s=1e300), "s * log(n) + b overflows torch.float32"),
    (lambda: ssmax(torch.randn(3, 4), s=torch.ones(5)), "s, b and n must broadcast against x of shape (3, 4)"),
    (lambda: ssmax(torch.randn(3, 4), s="x"), "s must be a real number or tensor; got 'x'"),
    (lambda: ssmax(torch.randn(3, 4), s=None), "s must be a real number or tensor; got None"),
    (lambda: required_logit(10, 0.5, s=math.nan), "s must be None (softmax) or a finite number > 0; got nan"),
    (lambda: softmax_max_bound(-5, 1.0), "n must be >= 1"),
    (lambda: causal_key_counts(2.5), "query_len must be an integer >= 0; got 2.5"),
    (lambda: GPTConfig(rope_theta="x"), "rope_theta must be a finite number > 0; got 'x'"),
])
def test_library_inputs_are_one_value_error_naming_them(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


# --- 9. a full disk during a checkpoint save is one line, the old checkpoint kept ---------------

def test_a_full_disk_during_a_checkpoint_save_is_one_line(tmp_path, monkeypatch, capsys):
    from ssmax import checkpoint
    from ssmax.__main__ import main

    _use(smoke_env(tmp_path), monkeypatch)
    real_write = checkpoint._write_bytes
    writes = []

    def fills_up(tmp, blob):
        writes.append(tmp)
        if len(writes) == 2:  # the second checkpoint (step 8): half written, then the disk is full
            with open(tmp, "wb") as f:
                f.write(blob[: len(blob) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(tmp, blob)

    monkeypatch.setattr(checkpoint, "_write_bytes", fills_up)
    assert main(["run", "pretrain-a", "--profile", "smoke"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    ckpt = tmp_path / "ckpt" / "smoke" / "pretrain-a--seed0.pt"
    assert f"could not write {ckpt} (No space left on device); the previous file, if any, is kept" in line
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    assert not list(ckpt.parent.glob(".*.tmp"))


# --- 10. a renamed state-dict key is detected ---------------------------------------------------

def test_weights_with_a_renamed_key_are_refused_or_rebuilt(tmp_path, monkeypatch):
    from ssmax.__main__ import main

    _use(smoke_env(tmp_path), monkeypatch)
    ex.run("pretrain-a", "smoke", progress=False)
    path = store.weights_path("smoke", "pretrain-a", 0)
    payload = torch.load(path, weights_only=True)
    sd = payload["state_dict"]
    sd["renamed.weight"] = sd.pop(next(iter(sd)))
    config = ex.experiment_config("pretrain-a", "smoke", 0)
    save_checkpoint(path, {k: v for k, v in payload.items() if k != "config_hash"}, store.config_hash(config))
    result = store.result_path("smoke", "pretrain-a", 0)  # results from before digests: only the keys tell
    data = json.loads(result.read_text())
    data.pop("weights_sha256")
    result.write_text(json.dumps(data))

    with pytest.raises(CheckpointError, match=r"do not fit their model \(missing \['.*'\], unexpected \['renamed.weight'\]\)"):
        ex.load_weights("pretrain-a", "smoke", 0, torch.device("cpu"))
    assert not ex._is_current("pretrain-a", "smoke", 0, config)
    assert main(["run", "pretrain-a", "--profile", "smoke", "--reuse"]) == 0
    assert "renamed.weight" not in torch.load(path, weights_only=True)["state_dict"]


# --- 11. --device cuda without CUDA is checked before anything starts ---------------------------

@NO_CUDA
def test_jobs_with_cuda_on_a_machine_without_it_is_one_line(monkeypatch, capsys):
    from ssmax import parallel
    from ssmax.__main__ import main

    monkeypatch.setattr(parallel.subprocess, "Popen", lambda *a, **k: pytest.fail("a worker was started"))
    assert main(["reproduce", "--profile", "smoke", "--jobs", "2", "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in _one_error_line(capsys.readouterr().err)


# --- 12. a stale result: the notebook's error names the file and the command --------------------

def _tiny_notebook(path: Path, code: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "cpu"\nretrain = False\ndevice = "auto"',
                                          metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in code]
    nbformat.write(nb, path)
    return path


def _execute(path: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssmax.notebooks", "execute", *args, str(path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_stale_result_is_named_with_its_command_by_the_notebook_tool(tmp_path, monkeypatch):
    env = smoke_env(tmp_path)
    _use(env, monkeypatch)
    for seed in (0, 1):
        ex.run("lengthgen-a", "smoke", seed, progress=False)
    _retrain_with_other_weights("pretrain-a", seed=1)
    nb = _tiny_notebook(tmp_path / "stale.ipynb", [
        "from ssmax import experiments\nexperiments.results_for(['lengthgen-a'], profile)"])
    proc = _execute(nb, env, "--profile", "smoke")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    stale = store.result_path("smoke", "lengthgen-a", 1)
    assert "1 result(s) missing, stale or corrupt" in line and str(stale) in line
    assert "python -m ssmax run lengthgen-a --profile smoke --seed 1" in line


# --- 13. a temporary file left by a killed writer is removed ------------------------------------

def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    env = smoke_env(tmp_path)
    folder = Path(env["SSMAX_CHECKPOINT_DIR"]) / "smoke"
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftovers = [folder / f".pretrain-a--seed0.pt.{dead.pid}-k1ll3d.tmp", folder / ".pretrain-a--seed0.pt.olds7yle.tmp"]
    live = folder / f".pretrain-a--seed0.pt.{os.getpid()}-w0rk1ng.tmp"  # a writer still at work
    other = folder / ".pretrain-a--seed0.pt.x.pt.1-abc.tmp"  # not this file's
    for path in [*leftovers, live, other]:
        path.write_bytes(b"x" * 1000)
    proc = ssmax_cli(["run", "pretrain-a", "--profile", "smoke"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not any(p.exists() for p in leftovers)
    assert live.exists() and other.exists()


# --- 14. the cost appendix counts only real runs of known experiments ---------------------------

def test_cost_counts_only_results_files_of_known_experiments(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    folder = tmp_path / "cpu"
    folder.mkdir()
    source = REPO / "data" / "results" / "cpu" / "pretrain-a--seed0.json"
    shutil.copy(source, folder / source.name)
    shutil.copy(source, folder / "pretrain-a--seed0 (copy).json")
    shutil.copy(source, folder / "not-an-experiment--seed0.json")
    rows = cost.runs("cpu")
    assert [r["key"] for r in rows] == ["pretrain-a--seed0"]
    assert set(store.wall_times("cpu")) == {"pretrain-a--seed0"}


# --- 15, 16, 18. bad input at the command line --------------------------------------------------

def test_an_empty_results_dir_variable_is_refused(tmp_path):
    env = {**smoke_env(tmp_path), "SSMAX_RESULTS_DIR": ""}
    proc = ssmax_cli(["run", "pretrain-a", "--profile", "smoke"], env, timeout=120)
    assert proc.returncode == 2
    assert "SSMAX_RESULTS_DIR is set but empty" in _one_error_line(proc.stderr)
    assert not list(REPO.glob("smoke"))


def test_a_misspelled_experiment_gets_did_you_mean(tmp_path):
    proc = ssmax_cli(["run", "pretrian-a", "--profile", "smoke"], smoke_env(tmp_path), timeout=120)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert "did you mean 'pretrain-a'" in line and "`python -m ssmax list` shows all" in line
    assert len(line) < 200


@NO_CUDA
def test_the_gpu_profile_on_a_cpu_asks_for_device_cpu(tmp_path):
    proc = ssmax_cli(["run", "pretrain-a", "--profile", "gpu"], smoke_env(tmp_path), timeout=120)
    assert proc.returncode == 2
    assert "pass --device cpu to run it on the CPU anyway" in _one_error_line(proc.stderr)
    assert not (tmp_path / "results").exists()


# --- 17. metrics of the wrong types are refused, naming the file --------------------------------

def test_metrics_of_the_wrong_types_are_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    shutil.copytree(REPO / "data" / "results" / "cpu", tmp_path / "cpu",
                    ignore=shutil.ignore_patterns("weights", "*.lock"))
    path = tmp_path / "cpu" / "needle-eval-a--seed0.json"
    data = json.loads(path.read_text())
    data["metrics"]["theta_x1"]["exact"] = "0.9"  # a str where rows of numbers belong
    data["metrics_sha256"] = store.metrics_checksum(data["metrics"])  # the checksum recomputed
    path.write_text(json.dumps(data))
    with pytest.raises(store.ResultsError) as err:
        ex.results_for(["needle-eval-a"], "cpu")
    first = str(err.value).splitlines()[0]
    assert f"{path} is corrupt: metrics.theta_x1.exact is a str, not a list" in first
    assert "python -m ssmax run needle-eval-a --profile cpu --seed 0" in first


# --- 19. installed outside the repository ------------------------------------------------------

def test_installed_outside_the_repository(tmp_path):
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "src" / "ssmax", site / "ssmax", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSMAX_")}
    env.pop("XDG_DATA_HOME", None)
    env["HOME"] = str(tmp_path / "home")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import ssmax, ssmax.results as r, ssmax.data as d\n"
            "assert ssmax.__file__.startswith(sys.argv[1]), ssmax.__file__\n"
            "print(r.results_root()); print(r.git_commit())\n"
            "try:\n    d.load_corpus()\nexcept FileNotFoundError as e:\n    print(e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(site)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root, commit, corpus = proc.stdout.strip().splitlines()
    assert root == str(tmp_path / "home" / ".local" / "share" / "ssmax" / "results")
    assert commit == "None"
    assert "git checkout" not in corpus and "run from a clone of the repository" in corpus


# --- 20, 24. byte-stable weights and notebooks --------------------------------------------------

def test_saving_the_same_weights_twice_gives_the_same_bytes(tmp_path):
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8))
    path = tmp_path / "w.pt"
    save_checkpoint(path, {"state_dict": model.state_dict()}, "h")
    first = path.read_bytes()
    save_checkpoint(path, {"state_dict": model.state_dict()}, "h")
    assert path.read_bytes() == first and path.name.encode() not in first


def test_executing_a_notebook_twice_gives_the_same_bytes_on_any_cpu(tmp_path):
    """The injected-parameters cell gets a fixed id; numpy runs without CPU-specific SIMD paths
    (their last-bit differences in log moved pixels of chapter 3's log-scale figures)."""
    from ssmax.notebooks import portable_numpy_env

    nb = _tiny_notebook(tmp_path / "tiny.ipynb", [
        "import os\nprint(os.environ.get('NPY_DISABLE_CPU_FEATURES'))",
        "import matplotlib.pyplot as plt\nimport numpy as np\nfig, ax = plt.subplots()\n"
        "ax.set_xscale('log', base=2)\nax.plot(np.geomspace(4, 4096, 50), np.log(np.geomspace(4, 4096, 50)))\nplt.show()"])
    copies = []
    for run in range(2):
        proc = _execute(nb, smoke_env(tmp_path), "--profile", "smoke")
        assert proc.returncode == 0, proc.stderr[-3000:]
        copies.append(nb.read_bytes())
    assert copies[0] == copies[1]
    cells = nbformat.read(nb, as_version=4).cells
    assert [c.id for c in cells if "injected-parameters" in c.metadata.get("tags", [])] == ["injected-parameters"]
    printed = next(c for c in cells if "NPY_DISABLE_CPU_FEATURES" in c.source).outputs[0]["text"].strip()
    assert printed == portable_numpy_env().get("NPY_DISABLE_CPU_FEATURES", "None")


@pytest.mark.slow
def test_chapter_3_reexecuted_on_the_committed_results_is_byte_identical(tmp_path):
    """`make book` leaves git clean: chapter 3 (log-scale figures) executed again on the
    committed cpu results gives the committed file, byte for byte."""
    committed = REPO / "notebooks" / "03_fading_in_isolation.ipynb"
    copy = tmp_path / committed.name
    shutil.copy(committed, copy)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSMAX_")}
    proc = _execute(copy, env, "--profile", "cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert copy.read_bytes() == committed.read_bytes()


# --- 22. bench options ------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--heads", "0"], "--heads must be >= 1"),
    (["--head-dim", "7"], "--head-dim must be an even integer >= 2"),
    (["--reps", "0", "--min-time", "0"], "--reps must be >= 1"),
    (["--min-time", "nan"], "--min-time must be a finite number of seconds >= 0"),
])
def test_bench_refuses_bad_options(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--quick", "--device", "cpu", *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_quick_bench_ratio_is_the_ratio_of_the_times_beside_it():
    rows = bench.time_interleaved(["softmax", "ssmax_fused"], 32, torch.device("cpu"), heads=1, head_dim=8, reps=2)
    fused, soft = rows["ssmax_fused"], rows["softmax"]
    assert fused["ratio_to_softmax"] == pytest.approx(fused["median_ms"] / soft["median_ms"])
    assert bench.paired_ratio([2.0] * 5, [1.0, 1.0, 1.0, 1.0, 100.0]) == 2.0  # enough rounds: paired, spike-proof


# --- 23. Ctrl-C during the imports is one line, status 130 --------------------------------------

@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_ctrl_c_while_importing_is_one_line_and_status_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "ssmax", "list"], cwd=REPO, env=smoke_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # torch's libraries mapped: the process is inside its imports
        try:
            if "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out[-500:], err[-3000:])
    assert err.strip() == "interrupted while starting; nothing was run"


# --- 25. pytest --nbval at the root checks every notebook ---------------------------------------

def test_pytest_nbval_at_the_root_collects_every_notebook_and_plain_pytest_none():
    def collect(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=300)

    with_nbval = collect("--nbval")  # no path: the testpaths
    assert with_nbval.returncode == 0, with_nbval.stdout[-3000:] + with_nbval.stderr[-3000:]
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.name}::Cell 0" in with_nbval.stdout, notebook
    assert "tests/test_hardening2.py::" in with_nbval.stdout
    plain = collect("notebooks")  # what plain `pytest` finds there: nothing (exit 5, no tests collected)
    assert plain.returncode == 5 and ".ipynb" not in plain.stdout
