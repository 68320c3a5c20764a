"""Issue 15, "nothing lost, nothing silently wrong, one clear line for every bad input": one test
(or one group) per case, written as the user's command where there is one."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from ssmax import experiments as ex
from ssmax import results as store
from ssmax.checkpoint import CheckpointError, save_checkpoint
from ssmax.data import CorpusChecksumError
from ssmax.functional import ssmax
from ssmax.model import GPT, GPTConfig
from ssmax.train import train

from conftest import smoke_env, ssmax_cli

REPO = Path(__file__).resolve().parents[1]


def _one_error_line(stderr: str) -> str:
    """The CLI's answer to a bad input: exactly one line, `error: ...`, and no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr[-3000:]
    return lines[0]


# --- 1. a failed notebook execution never overwrites the notebook ------------------------------

def _notebooks_cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssmax.notebooks", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_failed_notebook_execution_leaves_the_notebook_byte_identical(tmp_path):
    copy = tmp_path / "04_pretraining.ipynb"
    shutil.copy(REPO / "notebooks" / "04_pretraining.ipynb", copy)
    before = copy.read_bytes()
    env = smoke_env(tmp_path / "no-results")

    bad = _notebooks_cli(["execute", "--profile", "nope", str(copy)], env)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr
    assert copy.read_bytes() == before

    failed = _notebooks_cli(["execute", "--profile", "smoke", str(copy)], env)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    line = failed.stderr.strip().splitlines()[-1]  # after papermill's progress bar
    assert line.startswith(f"error: {copy} failed: cell [") and "MissingResultsError" in line
    assert "make reproduce PROFILE=smoke" in line and f"{copy} is unchanged" in line
    assert copy.read_bytes() == before
    kept = tmp_path / ".failed" / copy.name
    assert f"the failed run is in {kept}" in line
    outputs = [o for c in nbformat.read(kept, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert any(o.output_type == "error" and o.ename == "MissingResultsError" for o in outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".failed", copy.name]  # no temporary copy left


def test_successful_notebook_execution_replaces_the_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "cpu"\nretrain = False\ndevice = "auto"',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('profile', profile)")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    proc = _notebooks_cli(["execute", "--profile", "smoke", str(path)], smoke_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = nbformat.read(path, as_version=4).cells
    assert any("profile smoke" in o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


def test_notebook_tool_allows_the_same_values_as_the_package():
    from ssmax import notebooks
    from ssmax.device import DEVICE_CHOICES

    assert notebooks.PROFILES == ex.PROFILES and notebooks.DEVICES == DEVICE_CHOICES


# --- 2. edited results are refused, with the command that remakes them --------------------------

def _example(spec):
    """A value that fits a `store.METRICS_SCHEMA` spec (optional keys left out)."""
    if isinstance(spec, tuple):
        return None
    if isinstance(spec, list):
        return [_example(spec[0])]
    if isinstance(spec, dict):
        if "*" in spec:
            return {"k": _example(spec["*"])}
        return {k: _example(v) for k, v in spec.items() if not isinstance(v, tuple)}
    return {"num": 1.0, "int": 1, "str": "x"}[spec]


def _metrics_for(kind: str) -> dict:
    return _example(store.METRICS_SCHEMA[kind])


def _tamper(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["metrics"].update(final_val_loss=0.5), "do not match their checksum"),
    (lambda d: d["config"]["train"].update(lr=1.0), "the stored config hashes to"),
    (lambda d: d.update(metrics="great"), "metrics is a str"),
    (lambda d: d.pop("metrics_sha256"), "no metrics_sha256"),
    (lambda d: (d["metrics"].pop("final_val_loss"), d.update(metrics_sha256=store.metrics_checksum(d["metrics"]))),
     "metrics lack ['final_val_loss']"),
])
def test_edited_results_are_refused_naming_the_file_and_the_fix(tmp_path, monkeypatch, edit, message):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    for seed in ex.seeds_for("pretrain-a", "smoke"):
        store.save_result("smoke", "pretrain-a", seed, ex.experiment_config("pretrain-a", "smoke", seed),
                          _metrics_for("pretrain"), {})
    assert len(ex.results_for(["pretrain-a"], "smoke")["pretrain-a"]) == 2  # intact: accepted
    path = store.result_path("smoke", "pretrain-a", 0)
    _tamper(path, edit)
    with pytest.raises(store.CorruptResultsError) as err:
        store.load_result("smoke", "pretrain-a", 0, ex.experiment_config("pretrain-a", "smoke", 0))
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "remake it with `python -m ssmax run pretrain-a --profile smoke --seed 0`" in str(err.value)
    with pytest.raises(store.ResultsError, match="corrupt"):  # what a notebook calls
        ex.results_for(["pretrain-a"], "smoke")


def test_a_results_file_of_an_older_config_is_stale_not_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path))
    config = ex.experiment_config("pretrain-a", "smoke", 0)
    store.save_result("smoke", "pretrain-a", 0, config, _metrics_for("pretrain"), {})
    path = store.result_path("smoke", "pretrain-a", 0)
    _tamper(path, lambda d: d.pop("metrics_sha256"))  # an old file, from before the checksum
    changed = dataclasses.replace(config, train=dataclasses.replace(config.train, lr=1e-4))
    with pytest.raises(store.StaleResultsError, match="stale results: rerun"):
        store.load_result("smoke", "pretrain-a", 0, changed)


@pytest.mark.parametrize("profile", ex.PROFILES)
def test_the_stored_config_hashes_like_the_config_itself(profile):
    """The integrity rule recomputes the hash from the stored (JSON) config: that must equal the
    hash of the dataclass for every experiment."""
    for name in ex.list_experiments():
        for seed in ex.seeds_for(name, profile):
            config = ex.experiment_config(name, profile, seed)
            stored = json.loads(json.dumps(store.to_jsonable(config), sort_keys=True))
            assert store.config_hash(stored) == store.config_hash(config), (name, seed)


# --- 3. ssmax: no silent zeros ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_ssmax_propagates_inf_and_nan_like_softmax(bad):
    x = torch.tensor([[1.0, bad, 3.0], [1.0, 2.0, 3.0], [-math.inf, -math.inf, -math.inf]])
    out = ssmax(x, s=1.0)
    assert out[0].isnan().all() and torch.softmax(x[0], -1).isnan().all()
    torch.testing.assert_close(out[1], torch.softmax(math.log(3) * x[1], -1))
    assert torch.equal(out[2], torch.zeros(3))  # fully masked: still zeros
    x.requires_grad_(True)
    ssmax(x, s=1.0)[1:].sum().backward()
    assert torch.isfinite(x.grad[1:]).all()


def test_ssmax_s_zero_is_uniform_over_unmasked_entries():
    out = ssmax(torch.tensor([1.0, 5.0, -math.inf, 2.0]), s=0.0)
    torch.testing.assert_close(out, torch.tensor([1 / 3, 1 / 3, 0.0, 1 / 3]))


@pytest.mark.parametrize("x, kwargs, message", [
    (torch.tensor([1, 2, 3]), {}, "x must be a floating-point tensor; got dtype torch.int64"),
    (torch.tensor([True, False]), {}, "got dtype torch.bool"),
    (torch.tensor(1.0), {}, "at least one dimension"),
    (torch.ones(2, 3), dict(s=math.nan), "s must be finite; got nan"),
    (torch.ones(2, 3), dict(s=-0.5), "s must be >= 0; got -0.5"),
    (torch.ones(2, 3), dict(s=torch.tensor([[0.5], [-0.5]])), "s must be >= 0"),
    (torch.ones(2, 3), dict(b=math.inf), "b must be finite"),
    (torch.ones(2, 3), dict(n=math.nan), "n must be finite"),
    (torch.ones(2, 3), dict(dim=2), r"dim must be an integer in \[-2, 1\] for x of shape \(2, 3\); got 2"),
    (torch.ones(2, 3), dict(dim=-3), "dim must be an integer in"),
])
def test_ssmax_bad_input_is_a_value_error_naming_it(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ssmax(x, **{"s": 1.0, **kwargs})


# --- 4. concurrent writers and readers ---------------------------------------------------------

_WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import torch
    from ssmax.checkpoint import load_checkpoint, save_checkpoint
    from ssmax.results import write_json_atomic
    role, folder, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    ckpt, js, done = folder / "run.pt", folder / "result.json", folder / "writers-done"
    errors, reads = [], 0
    if role == "writer":
        for i in range(count):
            for target, write in ((ckpt, lambda: save_checkpoint(ckpt, {"i": i, "w": torch.randn(100_000)}, "h")),
                                  (js, lambda: write_json_atomic(js, {"i": i, "pad": list(range(20_000))}))):
                try:
                    write()
                except Exception as err:
                    errors.append(repr(err))
    else:
        (folder / "reader-started").touch()
        while not done.exists():
            for target in (ckpt, js):
                if not target.exists():
                    continue
                try:
                    if target == ckpt:
                        assert load_checkpoint(ckpt, "h")["w"].shape == (100_000,)
                    else:
                        assert len(json.loads(js.read_text())["pad"]) == 20_000
                    reads += 1
                except Exception as err:
                    errors.append(repr(err))
    print(json.dumps({"errors": errors, "reads": reads}))
""")


def test_two_writers_and_a_reader_on_one_path_never_fail(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    def start(role: str, count: int = 60) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _WORKER, role, str(tmp_path), str(count)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    reader = start("reader")
    writers = [start("writer"), start("writer")]
    outs = []
    for w in writers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-2000:]
        outs.append(json.loads(out))
    (tmp_path / "writers-done").touch()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err[-2000:]
    read = json.loads(out)
    assert [o["errors"] for o in outs] == [[], []]
    assert read["errors"] == [] and read["reads"] > 0
    assert not list(tmp_path.glob(".*.tmp"))  # no stray temporary files


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1}, "h")
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, {"step": 2, "bad": lambda: None}, "h")  # a lambda cannot be pickled
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["ckpt.pt"]


# --- 5. unwritable output folders fail before any training ---------------------------------------

def _assert_nothing_trained(env: dict) -> None:
    for folder, pattern in ((env["SSMAX_RESULTS_DIR"], "*.json"), (env["SSMAX_CHECKPOINT_DIR"], "*.pt")):
        assert not (Path(folder).is_dir() and list(Path(folder).rglob(pattern)))


@pytest.mark.parametrize("which", ["SSMAX_RESULTS_DIR", "SSMAX_CHECKPOINT_DIR"])
def test_an_output_folder_that_cannot_be_created_fails_at_once(tmp_path, which):
    env = smoke_env(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env[which] = str(blocker / "out")
    # needle-eval-a needs needle-sft-a, which needs pretrain-a: nothing of that may start
    proc = ssmax_cli(["run", "needle-eval-a", "--profile", "smoke"], env, timeout=120)
    assert proc.returncode == 2
    line = _one_error_line(proc.stderr)
    assert f"cannot write to {blocker / 'out'}" in line
    _assert_nothing_trained(env)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
@pytest.mark.parametrize("which", ["results", "data"])
def test_a_read_only_folder_fails_at_once_naming_it(tmp_path, which):
    env = smoke_env(tmp_path)
    folder = Path(env["SSMAX_RESULTS_DIR"]) if which == "results" else tmp_path
    if which == "data":
        env["SSMAX_RESULTS_DIR"] = str(tmp_path / "writable-results")
        os.makedirs(env["SSMAX_RESULTS_DIR"])
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    try:
        proc = ssmax_cli(["run", "pretrain-a", "--profile", "smoke"], env, timeout=120)
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 2
    assert "cannot write to" in _one_error_line(proc.stderr) and "Permission denied" in proc.stderr
    _assert_nothing_trained(env)


# --- 6. the CLI: one line per error; corrupt, stale and missing things are rebuilt --------------

@pytest.mark.parametrize("error", [
    CheckpointError("checkpoint x.pt is unreadable; delete it and rerun"),
    store.CorruptResultsError("x.json is corrupt: ...; remake it with `python -m ssmax run ...`"),
    store.MissingResultsError("no weights for pretrain-a\nrun `python -m ssmax run pretrain-a`"),
    PermissionError(13, "Permission denied", "/data/results"),
    FloatingPointError("training loss became nan at step 3"),
    CorpusChecksumError("corpus has sha256 abc, expected def"),
    ValueError("bad value"),
])
def test_cli_reports_our_errors_in_one_line_with_status_2(monkeypatch, capsys, error):
    from ssmax.__main__ import main

    def failing_run(*args, **kwargs):
        raise error

    monkeypatch.setattr(ex, "run", failing_run)
    assert main(["run", "pretrain-a", "--profile", "smoke"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert " ".join(str(error).split()) in line


def test_cli_ctrl_c_says_how_to_resume(monkeypatch, capsys):
    from ssmax.__main__ import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "run", interrupted)
    assert main(["run", "pretrain-a", "--profile", "smoke"]) == 130
    assert capsys.readouterr().err == "interrupted; rerun the same command to resume from the last checkpoint\n"


def test_reuse_reruns_a_corrupt_result_and_a_stale_checkpoint_is_not_resumed(tmp_path):
    env = smoke_env(tmp_path)
    path = Path(env["SSMAX_RESULTS_DIR"]) / "smoke" / "pretrain-c--seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"experiment": "pretrain-c", "metr')  # truncated
    ckpt = Path(env["SSMAX_CHECKPOINT_DIR"]) / "smoke" / "pretrain-c--seed0.pt"
    save_checkpoint(ckpt, {"step": 4}, "an-older-config")
    proc = ssmax_cli(["run", "pretrain-c", "--profile", "smoke", "--reuse"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"warning: not resuming from {ckpt} (written by another config" in proc.stderr
    data = json.loads(path.read_text())
    assert data["metrics_sha256"] == store.metrics_checksum(data["metrics"])
    assert not ckpt.exists()


def test_a_dependency_without_its_weights_is_rebuilt(tmp_path, monkeypatch):
    env = smoke_env(tmp_path)
    first = ssmax_cli(["run", "pretrain-c", "--profile", "smoke"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    weights = Path(env["SSMAX_RESULTS_DIR"]) / "smoke" / "weights" / "pretrain-c--seed0.pt"
    weights.unlink()  # its results JSON is still current
    proc = ssmax_cli(["run", "lengthgen-c", "--profile", "smoke"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert weights.exists()

    monkeypatch.setenv("SSMAX_RESULTS_DIR", env["SSMAX_RESULTS_DIR"])
    config = ex.experiment_config("pretrain-c", "smoke", 0)
    assert ex._is_current("pretrain-c", "smoke", 0, config)
    save_checkpoint(weights, {"model_config": {}, "state_dict": {}}, "another-config")  # weights of another run
    # the results record the weights they wrote (issue 24): other weights make them stale too
    assert not store.has_current_result("smoke", "pretrain-c", 0, config)
    assert not ex._is_current("pretrain-c", "smoke", 0, config)  # so run() rebuilds it


# --- 7. resume keeps train_loss when log_every does not divide checkpoint_every -----------------

class _Killed(Exception):
    pass


def test_resume_between_log_steps_gives_the_uninterrupted_metrics(tmp_path):
    config = dataclasses.replace(ex.experiment_config("pretrain-b", "smoke").train,
                                 steps=12, log_every=3, checkpoint_every=4, eval_every=6)
    reference = train(config, device=torch.device("cpu"), progress=False).metrics
    ckpt = tmp_path / "run.pt"

    def kill_after_the_first_checkpoint(done: int) -> None:
        if done == 5:
            raise _Killed

    with pytest.raises(_Killed):
        train(config, device=torch.device("cpu"), checkpoint_path=ckpt, progress=False,
              on_step=kill_after_the_first_checkpoint)
    assert torch.load(ckpt, weights_only=False)["step"] == 4  # between the log steps 3 and 6
    resumed = train(config, device=torch.device("cpu"), checkpoint_path=ckpt, progress=False).metrics
    assert resumed == reference


# --- 8. model arguments are checked, naming the parameter ---------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(n_layer=True), "n_layer must be a positive integer; got True"),
    (dict(n_head=2.0), "n_head must be a positive integer; got 2.0"),
    (dict(rope_theta=math.nan), "rope_theta must be a finite number > 0; got nan"),
    (dict(rope_theta=math.inf), "rope_theta must be a finite number > 0; got inf"),
    (dict(norm_eps=-1), "norm_eps must be a finite number > 0; got -1"),
    (dict(s_init=-1.0), "s_init must be a finite number > 0; got -1.0"),
    (dict(s_init=math.nan), "s_init must be a finite number > 0"),
    (dict(mlp_hidden=0), "mlp_hidden must be a positive integer; got 0"),
    (dict(mlp_hidden=64.0), "mlp_hidden must be a positive integer; got 64.0"),
])
def test_bad_model_config_names_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GPTConfig(**kwargs)


@pytest.fixture(scope="module")
def tiny_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16)).eval()


@pytest.mark.parametrize("idx, message", [
    (torch.tensor([[1.0, 2.0]]), "idx must hold integer token ids; got dtype torch.float32"),
    (torch.tensor([[1, -1]]), r"idx must hold token ids in \[0, 256\); got min -1"),
    (torch.tensor([[1, 256]]), r"idx must hold token ids in \[0, 256\); got min 1, max 256"),
    (torch.tensor([1, 2]), r"idx must have shape \(batch, length\) with length >= 1; got shape \(2,\)"),
    (torch.zeros(1, 0, dtype=torch.long), r"got shape \(1, 0\)"),
])
def test_bad_token_ids_name_idx(tiny_model, idx, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(idx)
    with pytest.raises(ValueError, match=message):
        tiny_model.generate(idx, 2)


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_generate_max_new_tokens_is_a_non_negative_int(tiny_model, bad):
    with pytest.raises(ValueError, match="max_new_tokens must be a non-negative integer"):
        tiny_model.generate(torch.tensor([[1, 2]]), bad)
    assert tiny_model.generate(torch.tensor([[1, 2]]), 0).tolist() == [[1, 2]]
