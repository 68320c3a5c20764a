"""Publishing: the GitHub workflows and CITATION.cff validate against their schemas (offline:
check-jsonschema ships them), the test workflow runs the README's test command, the Pages
workflow deploys the book built from the committed outputs, and the citations agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _check(schema: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def _load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"test.yml", "pages.yml"}


def test_workflows_match_the_github_workflow_schema():
    proc = _check("vendor.github-workflows", *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_workflow_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"  # a step may not both run and use an action
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - uses: actions/checkout@v4\n        run: echo both\n")
    proc = _check("vendor.github-workflows", broken)
    assert proc.returncode == 1 and "jobs.x" in proc.stdout


def test_test_workflow_runs_the_readme_test_command_on_pushes_and_pull_requests():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^make test\b", readme, re.M), "the README's test command changed: update test.yml"
    workflow = _load(ROOT / ".github" / "workflows" / "test.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    runs = [step.get("run", "") for step in _steps(workflow)]
    assert any(re.search(r"^make test$", run, re.M) for run in runs)
    assert any("chromium-driver" in run for run in runs)  # the browser check runs, not skips
    job = workflow["jobs"]["test"]
    assert job["env"]["CI"] == "true" and "download.pytorch.org/whl/cpu" in job["env"]["PIP_EXTRA_INDEX_URL"]


def test_pages_workflow_builds_the_committed_outputs_and_deploys():
    workflow = _load(ROOT / ".github" / "workflows" / "pages.yml")
    steps = _steps(workflow)
    runs = " ".join(step.get("run", "") for step in steps)
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    assert "make html" in runs and "make book" not in runs  # render the outputs, execute nothing
    assert {"actions/upload-pages-artifact", "actions/deploy-pages", "actions/configure-pages"} <= set(uses)
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert workflow["jobs"]["deploy"]["environment"]["name"] == "github-pages"


def test_pages_workflow_fills_the_one_repository_url(tmp_path):
    config = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert len(re.findall(r'^  url: ""$', config, re.M)) == 1
    step = next(s for s in _steps(_load(ROOT / ".github" / "workflows" / "pages.yml")) if "_config.yml" in s.get("run", ""))
    sed = step["run"].splitlines()[0].replace("${{ github.server_url }}/${{ github.repository }}",
                                              "https://github.com/o/r")
    copy = tmp_path / "_config.yml"
    copy.write_text(config, encoding="utf-8")
    subprocess.run(sed.replace("_config.yml", str(copy)), shell=True, check=True)
    assert yaml.safe_load(copy.read_text(encoding="utf-8"))["repository"]["url"] == "https://github.com/o/r"


def test_citation_cff_is_valid():
    proc = _check("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _bibtex_blocks(text: str) -> list[str]:
    return re.findall(r"```bibtex\n(.*?)```", text, re.S)


def test_the_book_cites_the_paper_as_the_readme_does():
    readme = _bibtex_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    page = _bibtex_blocks((ROOT / "book" / "cite.md").read_text(encoding="utf-8"))
    assert readme and readme[0] == page[0]
    assert "eprint        = {2501.19399}" in page[0]


def test_the_book_cites_the_replication_as_citation_cff_does():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    software = _bibtex_blocks((ROOT / "book" / "cite.md").read_text(encoding="utf-8"))[1]
    fields = dict(re.findall(r"(\w+)\s*=\s*\{(.*)\},?\n", software))
    assert fields["title"].replace(" --- ", " \u2014 ") == cff["title"]
    assert fields["version"] == cff["version"]
    assert cff["references"][0]["doi"] == "10.48550/arXiv.2501.19399"


def test_the_cite_page_is_in_the_book():
    from book_browser import toc_pages

    assert "book/cite" in toc_pages(ROOT)
