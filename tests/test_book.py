"""The built book works offline: it builds without warnings, MathJax typesets its math from the
build itself, its figures load, and a browser opening it from disk asks no http(s) host for
anything.

The book is built once per session into ``_build/html`` (Jupyter Book, execution off: the
committed notebooks already hold their outputs), then opened with Debian's headless Chromium
through ``/usr/bin/chromedriver``. Without Chromium the browser checks are skipped locally and
fail under CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHAPTER_1 = HTML / "notebooks" / "01_attention_fading.html"
INTRO = HTML / "book" / "intro.html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def book() -> Path:
    """Build the book (incremental locally, from scratch under CI); warnings fail the build."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jupyter_book), "build", str(ROOT), "--warningiserror", "--keep-going"]
    if IN_CI:
        cmd.append("--all")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        log = (proc.stdout + proc.stderr)[-6000:]
        pytest.fail(f"jupyter-book build failed (exit {proc.returncode}):\n{log}")
    assert CHAPTER_1.is_file(), f"{CHAPTER_1} was not built (is the chapter in _toc.yml?)"
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
    assert re.search(r'src="\.\./_static/mathjax/tex-chtml\.js(\?v=[0-9a-f]+)?"', CHAPTER_1.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- browser checks
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = ("Chromium not found: run `apt-get update && apt-get install -y chromium "
                   "chromium-driver` (.ci/run does this)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ssmax-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1024", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _requested_urls(driver: Any) -> list[str]:
    """URLs of every request the page made since the last call (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def _open(driver: Any, page: Path) -> dict[str, Any]:
    """Open ``page`` from disk, wait for MathJax to finish, and report what the page did."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("performance")  # drop earlier entries
    driver.get_log("browser")
    driver.get(page.as_uri())
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && !!(window.MathJax && MathJax.startup"
        " && MathJax.startup.promise)"))
    driver.set_script_timeout(60)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "MathJax.startup.promise.then(() => done(true), () => done(false));")
    report = driver.execute_script("""
        const imgs = Array.from(document.images);
        return {
          title: document.title,
          mjx: document.querySelectorAll('mjx-container').length,
          mjxErrors: document.querySelectorAll('mjx-merror').length,
          imgs: imgs.map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth, done: i.complete})),
        };""")
    report["requests"] = _requested_urls(driver)
    report["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return report


def _check_page(report: dict[str, Any]) -> None:
    assert report["mjx"] > 0, "MathJax typeset nothing (no mjx-container)"
    assert report["mjxErrors"] == 0, "MathJax reported errors in the math"
    broken = [i["src"] for i in report["imgs"] if not (i["done"] and i["w"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    # chrome:// is the browser's own start page, which never leaves the machine either.
    remote = [u for u in report["requests"] if not u.startswith(("file:", "data:", "blob:", "chrome:"))]
    assert not remote, f"requests that left the machine: {remote}"
    assert not report["console"], f"console errors: {report['console']}"


def test_chapter_1_renders_offline(book: Path, browser: Any) -> None:
    report = _open(browser, CHAPTER_1)
    _check_page(report)
    assert report["imgs"], "chapter 1 shows no figure"
    assert any(u.split("?")[0].endswith("/_static/mathjax/tex-chtml.js") for u in report["requests"])


def test_intro_renders_offline(book: Path, browser: Any) -> None:
    report = _open(browser, INTRO)
    _check_page(report)
    assert "Scalable-Softmax" in report["title"]
    text = browser.find_element("tag name", "main").text
    assert "Scalable-Softmax Is Superior for Attention" in text  # the bibliography entry
    assert "Honesty policy" in text
