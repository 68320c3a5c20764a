"""Tooling for the book's notebooks: execute them with papermill, clean their metadata.

    python -m ssmax.notebooks execute [--profile P] [--retrain] [--device D] notebooks/*.ipynb
    python -m ssmax.notebooks clean notebooks/*.ipynb

``execute`` runs each notebook with papermill, on a kernel that is *this* interpreter (so the
venv's python runs the code whatever kernelspecs the machine has), with the kernel's working
directory set to the notebook's folder, as Jupyter and nbval do. Progress goes to stderr. It runs
a copy in a hidden folder beside the notebook, cleans it, and only then replaces the notebook
with it: a notebook that fails leaves the committed one byte for byte as it was, keeps the failed
run in ``<folder>/.failed/<name>.ipynb``, and stops with one line naming the notebook and the
error (exit status 2).

The kernel runs with numpy's CPU-specific SIMD paths off (`portable_numpy_env`): they round
``log`` and ``exp`` differently in the last bit, which moves a pixel of a log-scale figure, so
the same notebook on the same results would give other PNG bytes on a CPU with AVX-512 than on
one without, and ``make book`` would leave a committed notebook modified.

``clean`` makes a committed notebook depend only on its sources and outputs: it drops papermill's
and nbclient's timestamps and durations, normalizes the kernelspec and language_info, keeps cell
ids (fills missing ones deterministically, and names papermill's injected-parameters cell, which
papermill gives a random id, ``injected-parameters``), keeps outputs and tags, and drops papermill's
``injected-parameters`` cell when every injected value equals the default in the ``parameters``
cell (so rerunning with the default profile does not churn the file).

The module is also a Sphinx extension (``sphinx: extra_extensions: [ssmax.notebooks]`` in
``_config.yml``): it copies MathJax 3 from the ``django-static-mathjax`` wheel into the built
book's ``_static/mathjax/`` so the book typesets math offline (``mathjax_path`` points there),
and turns on the repository and launch buttons when ``_config.yml`` names the repository.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from .atomic import replace_atomically, write_text_atomic

DEFAULT_PARAMETERS: dict[str, Any] = {"profile": "cpu", "retrain": False, "device": "auto"}
# the allowed values of the papermill parameters; the same as ssmax.experiments.PROFILES and
# ssmax.device.DEVICE_CHOICES (a test checks), repeated so this tool does not import torch
PROFILES = ("smoke", "cpu", "gpu")
DEVICES = ("auto", "cpu", "cuda")
FAILED_FOLDER = ".failed"


class NotebookExecutionError(RuntimeError):
    """A notebook failed to execute. The notebook itself is unchanged; ``failed_copy`` holds the
    failed run (with its error output); ``__cause__`` is papermill's error, with the full text."""

    def __init__(self, message: str, notebook: Path, failed_copy: Path | None):
        super().__init__(message)
        self.notebook = notebook
        self.failed_copy = failed_copy

_CELL_METADATA_DROP = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")
_NB_METADATA_DROP = ("papermill", "widgets", "vscode", "interpreter", "toc", "varInspector")
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3"}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- clean
def _assignments(source: str) -> dict[str, Any] | None:
    """Literal ``name = value`` assignments of a cell; None if the cell holds anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    values: dict[str, Any] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            return None
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            return None
    return values


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def notebook_defaults(nb: Any) -> dict[str, Any] | None:
    """The literal assignments of the cell tagged ``parameters`` (None if there is none)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in _tags(cell):
            return _assignments(cell.source)
    return None


def clean_notebook(nb: Any) -> Any:
    """Return ``nb`` (an nbformat NotebookNode) with volatile metadata removed, in place."""
    defaults = notebook_defaults(nb)

    kept = []
    for cell in nb.cells:
        if "injected-parameters" in _tags(cell):
            injected = _assignments(cell.source)
            if (defaults is not None and injected is not None
                    and all(k in defaults and defaults[k] == v for k, v in injected.items())):
                continue  # the same values as the defaults: drop it
        kept.append(cell)
    nb.cells = kept

    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        for key in _CELL_METADATA_DROP:
            cell.metadata.pop(key, None)
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]  # papermill adds empty tag lists
        cell_id = cell.get("id")
        if "injected-parameters" in _tags(cell):
            cell_id = cell["id"] = "injected-parameters"  # papermill gives it a random id on every run
        if not cell_id or cell_id in seen:
            digest = hashlib.sha1(f"{index}\0{cell.source}".encode()).hexdigest()[:8]
            cell_id = f"cell-{digest}"
            cell["id"] = cell_id
        seen.add(cell_id)

    for key in _NB_METADATA_DROP:
        nb.metadata.pop(key, None)
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata["language_info"] = dict(_LANGUAGE_INFO)
    if nb.nbformat == 4 and nb.get("nbformat_minor", 0) < 5:
        nb["nbformat_minor"] = 5  # cell ids need 4.5
    return nb


def clean(paths: Sequence[Path]) -> None:
    import nbformat

    for path in paths:
        before = path.read_text(encoding="utf-8")
        nb = nbformat.reads(before, as_version=4)
        after = nbformat.writes(clean_notebook(nb))
        if not after.endswith("\n"):
            after += "\n"
        if after != before:
            write_text_atomic(path, after)
            _log(f"cleaned {path}")


# --------------------------------------------------------------------------- execute
def _kernel_manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class CurrentPythonKernelManager(AsyncKernelManager):
        """A python3 kernel started with this interpreter, whatever kernelspecs are installed."""

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            cmd = super().format_kernel_cmd(extra_arguments)
            if len(cmd) > 2 and cmd[1:3] == ["-m", "ipykernel_launcher"]:
                cmd[0] = sys.executable
            return cmd

    return CurrentPythonKernelManager


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _describe_failure(err: BaseException) -> str:
    """One line: the cell and the error papermill reports, or the exception itself."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is not None:
        cell = getattr(err, "exec_count", None) or getattr(err, "cell_index", "?")
        return f"cell [{cell}] raised {ename}: {_first_line(evalue or '')}"
    return f"{type(err).__name__}: {_first_line(str(err))}"


def portable_numpy_env() -> dict[str, str]:
    """``NPY_DISABLE_CPU_FEATURES`` naming every SIMD target above numpy's baseline that this CPU
    has (e.g. ``X86_V3 X86_V4 AVX512_ICL``), so that the kernel's numpy computes the same bits on
    every machine of an architecture; empty if numpy does not say, or if the variable is set."""
    if "NPY_DISABLE_CPU_FEATURES" in os.environ:
        return {}
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # another numpy layout: leave numpy as it is
        return {}
    features = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(features)} if features else {}


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (which a kernel started meanwhile inherits), then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _keep_failed(work: Path, path: Path) -> Path | None:
    """Move the failed run to <folder>/.failed/<name> (replacing an older failure)."""
    failed = path.parent / FAILED_FOLDER / path.name
    try:
        failed.parent.mkdir(exist_ok=True)
        os.replace(work, failed)
    except OSError:
        return None
    return failed


def execute(paths: Sequence[Path], parameters: dict[str, Any], timeout: int | None = None) -> None:
    """Execute each notebook into a temporary copy and replace the notebook only on success;
    on the first failure raise `NotebookExecutionError` (that notebook unchanged, the ones
    before it done)."""
    import nbformat
    import papermill

    manager = _kernel_manager_class()
    for i, path in enumerate(paths, 1):
        path = Path(path)
        # Inject only the values that differ from the notebook's own defaults, so that a run
        # with the defaults leaves no injected-parameters cell behind.
        # Start from the defaults (drop a cell injected by an earlier run with other values),
        # and with stable cell ids (papermill would give id-less cells random ones).
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if "injected-parameters" not in _tags(c)]
        clean_notebook(nb)
        defaults = notebook_defaults(nb) or {}
        changed = {k: v for k, v in parameters.items() if k not in defaults or defaults[k] != v}
        # a hidden folder beside the notebook: same filesystem (the final replace is atomic),
        # and no stray *.ipynb that a glob over the folder would pick up
        workdir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}.executing-"))
        work = workdir / path.name
        _log(f"[{i}/{len(paths)}] executing {path} with {parameters}")
        start = time.perf_counter()
        try:
            nbformat.write(nb, work)
            with _environment(portable_numpy_env()):
                papermill.execute_notebook(
                    str(work), str(work), parameters=changed, kernel_name="python3", language="python",
                    cwd=str(path.resolve().parent), progress_bar=True, execution_timeout=timeout,
                    kernel_manager_class=manager,
                )
            clean([work])
            replace_atomically(work, path)
        except Exception as err:
            failed = _keep_failed(work, path) if work.exists() else None
            kept = f"the failed run is in {failed}" if failed else "no copy of the failed run was kept"
            raise NotebookExecutionError(f"{path} failed: {_describe_failure(err)} ({path} is unchanged; {kept})",
                                         path, failed) from err
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        _log(f"[{i}/{len(paths)}] {path} done in {time.perf_counter() - start:.1f} s")


# --------------------------------------------------------------------------- Sphinx hook
MATHJAX_FILES = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y")


def mathjax_source() -> Path:
    """The MathJax 3 ``es5`` folder shipped by the django-static-mathjax wheel."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax files not found: pip install django-static-mathjax==3.2.2.1")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax files not found in {es5}")
    return es5


def copy_mathjax(dest: Path) -> None:
    """Copy the MathJax component, its TeX extensions, fonts and license to ``dest``."""
    src = mathjax_source()
    for rel in MATHJAX_FILES:
        s, d = src / rel, dest / rel
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)
    shutil.copy2(src.parent / "LICENSE", dest / "LICENSE")


def _on_build_finished(app: Any, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static" / "mathjax")


COLAB_URL = "https://colab.research.google.com"


def repository_buttons(app: Any, config: Any) -> None:
    """With ``repository.url`` set in ``_config.yml``, show the repository, issues and download
    buttons and a Colab launch button; without it, none but download. (Jupyter Book refuses
    those buttons when the URL is empty, and sphinx-book-theme fails on a launch button without
    it, so ``_config.yml`` cannot switch them on unconditionally; Jupyter Book's own defaults
    set them all off, so they are set here, not defaulted.)"""
    options = config.html_theme_options
    if not options.get("repository_url"):
        return
    for button in ("use_repository_button", "use_issues_button", "use_download_button"):
        options[button] = True
    launch = options.setdefault("launch_buttons", {})
    if not launch.get("colab_url"):
        launch["colab_url"] = COLAB_URL


def source_substitutions(app: Any, config: Any) -> None:
    """``{{ get_source }}`` for the reproduce and cite pages: a clone command with the repository
    URL from ``_config.yml`` when it is set, else a plain statement that the book names none (a
    guessed URL would send readers nowhere)."""
    url = (config.html_theme_options.get("repository_url") or "").rstrip("/")
    if url:
        name = url.rsplit("/", 1)[-1].removesuffix(".git")
        text = (f"The source is at <{url}>. Get it, with the committed results, by\n\n"
                f"```bash\ngit clone {url}.git\ncd {name}\n```")
    else:
        text = ("This build of the book names no public repository (`repository.url` in `_config.yml` is "
                "empty), so there is no clone command to give: work from the copy of the repository this "
                "book was built from. Once the URL is set, this paragraph gives `git clone` with it.")
    subs = dict(getattr(config, "myst_substitutions", None) or {})
    subs["get_source"] = text
    config.myst_substitutions = subs


def setup(app: Any) -> dict[str, Any]:
    """Sphinx extension entry point (see the module docstring)."""
    mathjax_source()  # fail early, with the install hint
    app.connect("config-inited", repository_buttons)
    app.connect("config-inited", source_substitutions)
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# --------------------------------------------------------------------------- CLI
def _parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssmax.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("execute", help="run notebooks with papermill and clean them; each is replaced only "
                                        "if it ran through")
    ex.add_argument("--profile", default=DEFAULT_PARAMETERS["profile"], choices=PROFILES,
                    help="papermill parameter `profile`; default cpu")
    ex.add_argument("--retrain", type=_parse_bool, default=None, metavar="true|false",
                    help="papermill parameter `retrain`; default: the notebook's own")
    ex.add_argument("--device", default=None, choices=DEVICES,
                    help="papermill parameter `device`; default: the notebook's own")
    ex.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: none)")
    ex.add_argument("notebooks", nargs="+", type=Path)
    cl = sub.add_parser("clean", help="strip volatile metadata from notebooks, in place")
    cl.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    try:
        if args.command == "clean":
            clean(args.notebooks)
            return 0
        parameters: dict[str, Any] = {"profile": args.profile}
        if args.retrain is not None:
            parameters["retrain"] = args.retrain
        if args.device is not None:
            parameters["device"] = args.device
        execute(args.notebooks, parameters, timeout=args.timeout)
    except (NotebookExecutionError, OSError, ValueError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the notebook being executed is unchanged", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
