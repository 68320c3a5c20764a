"""The built book, as its readers see it: it builds without warnings, works offline (MathJax from
the build, no request leaves the machine), and every page of the table of contents, at a
laptop's 1280 px and a phone's 390 px, typesets its math, captions and describes every figure,
fits every output line in its box, has plain-text titles and hides its plumbing.

The book is built once per session into ``_build/html`` (Jupyter Book, execution off: the
committed notebooks already hold their outputs), then opened with Debian's headless Chromium
through ``/usr/bin/chromedriver`` (``tests/book_browser.py``, which also prints the same checks
and takes screenshots from the command line). Without Chromium the browser checks are skipped
locally and fail under CI (``CI=true``), where ``.ci/run`` and the test workflow install it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

import book_browser as bb

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHAPTER_1 = "notebooks/01_attention_fading"
PAGES = bb.toc_pages(ROOT)
INTRO = PAGES[0]  # the root of _toc.yml
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _build(out: Path | None = None, config: Path | None = None, full: bool = False) -> float:
    """Build the book (warnings fail it); returns the seconds it took."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jupyter_book), "build", str(ROOT), "--warningiserror", "--keep-going"]
    if full:
        cmd.append("--all")
    if out is not None:
        cmd += ["--path-output", str(out)]
    if config is not None:
        cmd += ["--config", str(config)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr)[-6000:]
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}):\n{log}")
    return time.perf_counter() - start


@pytest.fixture(scope="session")
def book() -> Path:
    """Build the book (incremental locally, from scratch under CI); warnings fail the build."""
    seconds = _build(full=IN_CI)
    print(f"book build: {seconds:.1f} s")
    missing = [p for p in PAGES if not bb.page_file(HTML, p).is_file()]
    assert not missing, f"pages of _toc.yml not built: {missing}"
    return HTML


# --------------------------------------------------------------------------- static checks
class _Assets(HTMLParser):
    """Collects the URLs a page loads by itself: scripts, stylesheets, images, frames, media."""

    LOADING_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut icon", "prefetch"}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel", "").lower() in self.LOADING_RELS:
            self.urls.append(a["href"])
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"])


def test_built_pages_load_nothing_from_the_network(book: Path) -> None:
    remote = []
    for page in sorted(book.rglob("*.html")):
        parser = _Assets()
        parser.feed(page.read_text(encoding="utf-8"))
        remote += [f"{page.relative_to(book)}: {u}" for u in parser.urls
                   if u.startswith(("http:", "https:", "//"))]
    assert not remote, "pages load remote assets:\n" + "\n".join(remote)


def test_mathjax_is_served_from_the_build(book: Path) -> None:
    assert (book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fonts = list((book / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) > 10
    # Sphinx appends a checksum (?v=...) when the file already exists from an earlier build
    page = bb.page_file(book, CHAPTER_1).read_text(encoding="utf-8")
    assert re.search(r'src="\.\./_static/mathjax/tex-chtml\.js(\?v=[0-9a-f]+)?"', page)


def test_no_dead_thebe_script_and_no_empty_index(book: Path) -> None:
    pages = {p: p.read_text(encoding="utf-8") for p in book.rglob("*.html")}
    assert not [str(p) for p, text in pages.items() if "thebe" in text.lower()]
    assert not (book / "genindex.html").exists()
    assert not [str(p) for p, text in pages.items() if "genindex" in text]


def _buttons(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    found = {name for name in ("repository-button", "issues-button", "download-button") if name in text}
    if "https://colab.research.google.com/github/" in text:
        found.add("colab")
    return found


def test_repository_buttons_appear_only_with_a_repository_url(book: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == "", "_config.yml is committed without the repository's URL"
    assert _buttons(bb.page_file(book, CHAPTER_1)) == {"download-button"}

    config["repository"]["url"] = "https://github.com/example-org/ssmax-replication"
    override = tmp_path / "_config.yml"
    override.write_text(yaml.safe_dump(config), encoding="utf-8")
    seconds = _build(out=tmp_path / "out", config=override)
    print(f"book build with a repository URL: {seconds:.1f} s")
    built = tmp_path / "out" / "_build" / "html"
    chapter = bb.page_file(built, CHAPTER_1)
    assert _buttons(chapter) == {"repository-button", "issues-button", "download-button", "colab"}
    text = chapter.read_text(encoding="utf-8")
    assert ("https://colab.research.google.com/github/example-org/ssmax-replication/blob/main/"
            "notebooks/01_attention_fading.ipynb") in text
    assert "https://github.com/example-org/ssmax-replication/issues/new" in text


# --------------------------------------------------------------------------- browser checks
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (bb.CHROMIUM.exists() and bb.CHROMEDRIVER.exists()):
        message = ("Chromium not found: run `apt-get update && apt-get install -y chromium "
                   "chromium-driver` (.ci/run does this)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with bb.chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def reports(book: Path, browser: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """Every page of the table of contents, opened once at each width, measured by the browser."""
    start = time.perf_counter()
    out = {}
    for width in bb.WIDTHS:
        bb.set_width(browser, width)
        for page in PAGES:
            out[page, width] = bb.open_page(browser, bb.page_file(book, page))
    bb.set_width(browser, bb.WIDTHS[0])
    print(f"{len(out)} page views measured in {time.perf_counter() - start:.1f} s")
    return out


@pytest.fixture(scope="session")
def search_titles(book: Path) -> dict[str, str]:
    return bb.search_titles(book)


@pytest.mark.parametrize("width", bb.WIDTHS)
@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("check", bb.CHECKS)
def test_reader_sees(check: str, page: str, width: int, reports: dict, search_titles: dict) -> None:
    """One of `book_browser.problems`' checks on one page at one width."""
    found = bb.problems(reports[page, width], search_titles.get(page), page == INTRO)[check]
    assert not found, f"{page} at {width} px, {check}:\n  " + "\n  ".join(found)


def test_the_pages_link_to_each_other(reports: dict) -> None:
    """The scorecard links to every page that shows a verdict, at a section of it; the introduction
    links to every chapter (`book_browser.book_problems`)."""
    found = {k: v for k, v in bb.book_problems(reports, PAGES).items() if v}
    assert not found, "\n".join(f"{k}: {line}" for k, lines in found.items() for line in lines)


def test_chapter_1_loads_mathjax_from_the_build_and_shows_figures(reports: dict) -> None:
    report = reports[CHAPTER_1, 1280]
    assert report["mjx"] > 0, "MathJax typeset nothing (no mjx-container)"
    assert report["images"], "chapter 1 shows no figure"
    assert any(u.split("?")[0].endswith("/_static/mathjax/tex-chtml.js") for u in report["requests"])


def test_intro_renders_offline(book: Path, browser: Any) -> None:
    report = bb.open_page(browser, bb.page_file(book, INTRO))
    assert not bb.problems(report)["offline"]
    assert report["mjx"] > 0 and not report["mjxErrors"]
    assert "Scalable-Softmax" in report["title"]
    text = browser.find_element("tag name", "main").text
    assert "Scalable-Softmax Is Superior for Attention" in text  # the bibliography entry
    assert "Honesty policy" in text


def _verdict_page(book: Path, body: str, target: Path) -> Path:
    """``body`` as a page shaped like the book's: MathJax from the build with the book's
    configuration (myst's processHtmlClass), inside a tex2jax_ignore section and an output box."""
    mathjax = (book / "_static" / "mathjax" / "tex-chtml.js").as_uri()
    config = re.search(r"MathJax = (\{.*?\})</script>", bb.page_file(book, CHAPTER_1).read_text(encoding="utf-8"))
    assert config, "the book's MathJax configuration was not found in chapter 1"
    target.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>verdicts</title><script>MathJax = {config.group(1)}</script>"
        f'<script defer src="{mathjax}"></script></head>'
        '<body style="margin:16px;font-family:sans-serif"><main><section class="tex2jax_ignore mathjax_ignore">'
        f'<div class="cell_output"><div class="output text_html">{body}</div></div></section></main></body></html>',
        encoding="utf-8")
    return target


def test_verdict_tables_typeset_and_fit_a_phone(book: Path, browser: Any, tmp_path: Path) -> None:
    from ssmax.book import decide as d
    from ssmax.book import html as report
    from ssmax.book import theory

    seeds = ("seed 0", "seed 1", "seed 2")
    within = d.Effect(seeds, (0.025, 0.002, 0.027))
    parts = [d.generalizes("(b) below (a) over (T,4T], by more than within [1,T]", d.Effect(seeds, (0.057, 0.021, 0.084)),
                           within, 0.02, "nats per byte"),
             d.part("(c) below (a) over (4T,16T] at theta x50", d.Effect(seeds[:1], (-0.394,)), 0.02, "nats per byte"),
             d.part("(c) within 0.01 of (b)", d.Effect(seeds[:1], (-0.016,)), 0.01, counted=False,
                    note="compares two SSMax variants")]
    verdicts = [theory.attention_fading(), theory.fixed_margin_suffices(),
                d.Verdict("fig5", "Fig. 5", "SSMax (b), (c) generalize beyond the training length better than (a); "
                          "(d) degrades; (e) struggles at short context; (f) is close to (b)",
                          "Per window beyond T, paired by pretraining seed, the 95% t-interval decides.", parts,
                          "mean loss over (T,4T]: (a) 1.876, (b) 1.823, (c) 1.858; context-free loss 3.182")]
    body = (report.verdict_html(verdicts[2]) + report.Scorecard(verdicts)._repr_html_()
            + report.Table(["variant", "loss over (T,16T]"], [["(a) softmax", 2.505]])._repr_html_())
    page = _verdict_page(book, body, tmp_path / "verdicts.html")
    for width in bb.WIDTHS:
        bb.set_width(browser, width)
        found = {k: v for k, v in bb.problems(bb.open_page(browser, page)).items() if v}
        assert not found, f"at {width} px: {found}"
        n_math = browser.execute_script("return document.querySelectorAll('.mathjax_process mjx-container').length")
        assert n_math >= 10, f"at {width} px MathJax typeset only {n_math} formulas in the verdict tables"
    bb.set_width(browser, bb.WIDTHS[0])
