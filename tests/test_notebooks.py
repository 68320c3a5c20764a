"""The chapters run end to end on freshly trained smoke results, and fail early and clearly on
bad parameters or missing results. (`pytest --nbval` separately checks the committed outputs.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from ssmax.notebooks import NotebookExecutionError, execute

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _copy(path: Path, tmp: Path) -> Path:
    target = tmp / path.name
    shutil.copy(path, target)
    return target


def test_every_notebook_is_in_the_table_of_contents_and_back():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = {toc["root"]} | {entry["file"] for part in toc["parts"] for entry in part["chapters"]}
    assert {f"notebooks/{p.stem}" for p in NOTEBOOKS} <= files
    for f in files:
        assert (REPO / f"{f}.ipynb").exists() or (REPO / f"{f}.md").exists(), f


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_starts_with_parameters_then_checks_them(path):
    cells = _code_cells(path)
    assert "parameters" in cells[0].metadata.get("tags", [])
    assert cells[0].source.splitlines() == ['profile = "cpu"', "retrain = False", 'device = "auto"']
    assert "experiments.check_notebook_parameters(profile=profile, retrain=retrain, device=device)" in cells[1].source
    assert all(c.execution_count for c in cells), f"{path.name} is committed with unexecuted cells"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_fresh_smoke_results(path, results_dir, tmp_path):
    copy = _copy(path, tmp_path)
    execute([copy], {"profile": "smoke", "retrain": False, "device": "cpu"})
    outputs = [o for c in _code_cells(copy) for o in c.outputs]
    assert not any(o.output_type == "error" for o in outputs)


@pytest.mark.parametrize("parameters, message", [
    ({"profile": "laptop"}, "profile must be one of ('smoke', 'cpu', 'gpu'); got 'laptop'"),
    ({"retrain": "yes"}, "retrain must be True or False; got 'yes'"),
    ({"device": "tpu"}, "device must be one of ('auto', 'cpu', 'cuda'); got 'tpu'"),
])
def test_bad_parameter_fails_in_the_first_cells(parameters, message, tmp_path):
    copy = _copy(REPO / "notebooks" / "04_pretraining.ipynb", tmp_path)
    before = copy.read_bytes()
    with pytest.raises(NotebookExecutionError) as err:
        execute([copy], parameters)
    assert message in str(err.value)
    assert copy.read_bytes() == before  # a failed run never overwrites the notebook
    failed_copy = err.value.failed_copy
    failed = [i for i, c in enumerate(_code_cells(failed_copy)) if any(o.output_type == "error" for o in c.outputs)]
    assert failed and failed[0] <= 2  # the parameters cell, papermill's injected cell, the check


def test_missing_results_say_what_to_run(tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("SSMAX_RESULTS_DIR", str(tmp_path / "no-results"))
    copy = _copy(REPO / "notebooks" / "04_pretraining.ipynb", tmp_path)
    with pytest.raises(NotebookExecutionError) as err:
        execute([copy], {"profile": "cpu"})
    assert isinstance(err.value.__cause__, papermill.PapermillExecutionError)
    text = str(err.value.__cause__)  # the full error; str(err.value) is its first line
    assert "make reproduce PROFILE=cpu" in text
    assert "python -m ssmax run pretrain-a --profile cpu --seed 0" in text
