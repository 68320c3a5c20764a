"""Open the built book in headless Chromium, the way its readers see it, and say what is wrong.

Used by ``tests/test_book.py`` and from the command line:

    python tests/book_browser.py check [--html _build/html] [--widths 1280,390]
    python tests/book_browser.py screenshots OUTDIR [--html _build/html] [--widths 1280,390]

``check`` prints, for every page of the table of contents at every width, the reader-facing
problems (`problems`); ``screenshots`` saves one full-page PNG per page and width, named
``<page>-<width>.png`` (e.g. ``notebooks_05_length_generalization-390.png``).

The browser is Debian's ``/usr/bin/chromium`` driven through ``/usr/bin/chromedriver``
(selenium). A width is emulated with the DevTools protocol (``Emulation.setDeviceMetricsOverride``;
below 600 px as a phone, so the theme's mobile layout applies), at device scale 1.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTHS = (1280, 390)  # a laptop, a phone (iPhone 12-15 portrait)
HEIGHTS = {1280: 1024, 390: 844}
SCREENSHOT_MAX_HEIGHT = 30_000  # px; taller pages are cut (Chromium's own limit is ~32k)

CHECKS = ("offline", "math", "images", "overflow", "titles", "plumbing", "code", "figures", "tables", "words",
          "equations", "navigation")
# Checks across pages (`book_problems`): what one page shows of another.
BOOK_CHECKS = ("scorecard links", "outline links")

MIN_TEXT_PX = 8.0  # the smallest figure text a reader can read on a phone, in CSS px
MAX_LEGEND = 6     # entries in one legend
PHONE = 600        # below this width the page is laid out as on a phone


# --------------------------------------------------------------------------- pages
def toc_pages(root: Path = ROOT) -> list[str]:
    """The book's pages in reading order: ``_toc.yml``'s root, then every chapter (and section),
    as file names without extension (e.g. ``notebooks/01_attention_fading``)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return pages


def page_file(html: Path, page: str) -> Path:
    return html / f"{page}.html"


def search_titles(html: Path) -> dict[str, str]:
    """Page name -> title as the search index (``searchindex.js``) stores it."""
    text = (html / "searchindex.js").read_text(encoding="utf-8")
    index = json.loads(text[text.index("(") + 1: text.rindex(")")])
    return dict(zip(index["docnames"], index["titles"]))


RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$")


def figure_record(src: str) -> dict[str, Any]:
    """What a figure's PNG says about itself: its resolution and, when drawn with
    ``ssmax.book.plots.show``, the ``ssmax:*`` text chunks (smallest font, panels, grid, longest
    legend, whether every cell of a heatmap is the same number). Unknown fields are absent."""
    from urllib.parse import unquote, urlparse

    from PIL import Image

    path = Path(unquote(urlparse(src).path))
    if not path.is_file():
        return {}
    with Image.open(path) as im:
        info = dict(getattr(im, "text", {}) or {})
        dpi = im.info.get("dpi", (0, 0))[0]
    out: dict[str, Any] = {"dpi": float(dpi) if dpi else None}
    for key, value in info.items():
        if key.startswith("ssmax:"):
            out[key[len("ssmax:"):]] = value
    return out


# Words no reader should meet: the package's internal keys (`ssmax.book.labels.internal_keys`),
# ASCII stand-ins for the paper's notation, raw Python values, file names, and how the work on
# the book was organised.
_NOTATION = [(re.compile(r"\+-(?!\w)|\+/-"), "'+-' for ±"),
             (re.compile(r"\w\(s\)"), "'(s)' plural"),
             (re.compile(r"(?<![\w.])\d+(?:\.\d+)? x \d|(?<![\w-])x\d+\b"), "'x' for ×"),
             (re.compile(r"\btheta\b"), "'theta' for θ"),
             (re.compile(r"\{'[^']*': |\{\"[^\"]*\": "), "a raw Python dict"),
             (re.compile(r"(?<![\w/.-])[\w-]+\.(?:md|py|json|ipynb|cfg|yml|yaml|toml)\b"), "a file name"),
             (re.compile(r"\bpaper-notes\b"), "an internal notes file"),
             (re.compile(r"\b(?:lent|sessions?|device time)\b", re.I), "how the work was organised")]


def internal_keys() -> set[str]:
    """The package's registry of keys (experiments, set-task settings, baselines, protocols,
    verdict ids), from ``ssmax.book.labels``."""
    from ssmax.book.labels import internal_keys as keys

    return keys()


_KEYS_RE: re.Pattern | None = None
_CODE_KEYS_RE: re.Pattern | None = None


def _code_keys_re() -> re.Pattern:
    """A quoted registry key in code a reader can unfold: an experiment name, a set-task setting
    or a verdict id (the chapters name these through the package, e.g. ``sets.MAX_RETRIEVAL``)."""
    global _CODE_KEYS_RE
    if _CODE_KEYS_RE is None:
        from ssmax import experiments, sets_run
        from ssmax.book.labels import VERDICT_IDS

        keys = sorted({*experiments.list_experiments(), *sets_run.SET_TASKS, *VERDICT_IDS}, key=len, reverse=True)
        _CODE_KEYS_RE = re.compile(r"""["'](""" + "|".join(map(re.escape, keys)) + r""")["']""")
    return _CODE_KEYS_RE


def _keys_re() -> re.Pattern:
    global _KEYS_RE
    if _KEYS_RE is None:
        keys = sorted(internal_keys(), key=len, reverse=True)
        _KEYS_RE = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, keys)) + r")(?![\w-])")
    return _KEYS_RE


# --------------------------------------------------------------------------- browser
@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (selenium WebDriver) with a throw-away profile; the performance and
    console logs are on, so a page's requests and errors can be read back."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise FileNotFoundError("Chromium not found: run `apt-get update && apt-get install -y chromium "
                                "chromium-driver` (.ci/run does this)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ssmax-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1024",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def set_width(driver: Any, width: int) -> None:
    """Emulate a viewport ``width`` px wide (a phone below 600 px), device scale 1."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": HEIGHTS.get(width, 1024), "deviceScaleFactor": 1, "mobile": width < 600})


def requested_urls(driver: Any) -> list[str]:
    """URLs of every request the page made since the last call (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


# Runs in the page after MathJax finished; everything the checks need, measured by the browser.
_PROBE = r"""
const main = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
// the reader who opens a fold sees what is in it: measure with every fold open, then close them again
const folds = Array.from(main.querySelectorAll('details:not([open])'));
folds.forEach(d => { d.open = true; });
const visible = el => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const clip = (s, n = 120) => { s = s.replace(/\s+/g, ' ').trim(); return s.length > n ? s.slice(0, n) + '…' : s; };
const longestLine = el => (el.innerText || el.textContent || '').split('\n')
    .reduce((a, b) => (b.length > a.length ? b : a), '');

// text outside code, preformatted output and typeset math: raw TeX here was not typeset
function proseText(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode(node) {
    for (let p = node.parentElement; p && p !== root.parentElement; p = p.parentElement) {
      const tag = p.tagName.toLowerCase();
      if (['pre', 'code', 'script', 'style', 'kbd', 'samp', 'textarea'].includes(tag)
          || tag.startsWith('mjx-') || p.classList.contains('highlight')) return NodeFilter.FILTER_REJECT;
    }
    return NodeFilter.FILTER_ACCEPT;
  }});
  const parts = [];
  while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
  return parts.join(' ');
}

const images = Array.from(main.querySelectorAll('img')).map(img => {
  const fig = img.closest('figure');
  const cap = fig ? fig.querySelector('figcaption') : null;
  return {src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
          // myst-nb's default alt text is the image's path: that is no description
          alt: /\.(png|jpe?g|svg|gif|webp)$/i.test((img.getAttribute('alt') || '').trim()) ? ''
               : (img.getAttribute('alt') || '').trim(),
          caption: cap ? clip(cap.innerText, 80) : '',
          number: cap ? !!cap.querySelector('.caption-number') : false,
          naturalWidth: img.naturalWidth, shownWidth: img.getBoundingClientRect().width};
});

const boxes = Array.from(main.querySelectorAll(
    '.cell_output, .cell_output .output, .cell_output pre, .cell_output table, .cell_output img'));
const wide = boxes.filter(el => el.tagName !== 'IMG' && visible(el) && el.scrollWidth > el.clientWidth + 1);
// innermost only: an overflowing <pre> makes the output boxes around it overflow too
const overflowing = wide.filter(el => !wide.some(o => o !== el && el.contains(o)))
  .map(el => ({box: (el.closest('details:not([open])') ? 'folded ' : '') + el.tagName.toLowerCase()
                    + (el.className ? '.' + String(el.className).split(' ')[0] : ''),
               scroll: el.scrollWidth, client: el.clientWidth, text: clip(longestLine(el), 160)}));

const navTexts = Array.from(document.querySelectorAll(
    '.bd-sidebar-primary a, .prev-next-area a, .bd-header-article a, nav.bd-breadcrumbs a'))
  .map(a => a.textContent.replace(/\s+/g, ' ').trim()).filter(Boolean);
const h1 = main.querySelector('h1');

const plumbing = Array.from(main.querySelectorAll('.cell')).filter(cell => {
  const input = cell.querySelector('.cell_input');
  if (!input || !visible(input)) return false;
  const text = input.innerText || '';
  return cell.classList.contains('tag_parameters') || /check_notebook_parameters\(/.test(text)
      || /^\s*profile\s*=\s*"/m.test(text);
}).map(cell => clip(cell.querySelector('.cell_input').innerText, 100));

const column = main.querySelector('section') || main;

// code cells: input lines cut off (scrolled sideways) and checks a reader should not see
const inputs = Array.from(main.querySelectorAll('.cell_input')).filter(visible);
const codeCut = inputs.flatMap(el => Array.from(el.querySelectorAll('pre')))
  .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
  .map(pre => ({scroll: pre.scrollWidth, client: pre.clientWidth, text: clip(longestLine(pre), 120)}));
const codeText = inputs.map(el => el.innerText || '').join('\n');
const codeChecks = inputs.map(el => el.innerText || '')
  .filter(t => /^\s*assert\b/m.test(t) || /print\([^)]*all hold/.test(t)).map(t => clip(t, 100));

// figures: the image's shown / natural width, whether a tap opens it full size
const figures = Array.from(main.querySelectorAll('img')).map(img => {
  const a = img.closest('a');
  const cap = img.closest('figure') && img.closest('figure').querySelector('.caption-number');
  return {src: img.src, naturalWidth: img.naturalWidth, shownWidth: img.getBoundingClientRect().width,
          opens: !!a && a.href.split('#')[0] === img.src.split('#')[0],
          number: cap ? cap.textContent.replace(/\s+/g, ' ').trim() : ''};
});

// tables: words broken inside a cell, TeX that MathJax did not typeset
const cellBreaks = [], tableTex = [];
for (const table of Array.from(main.querySelectorAll('table'))) {
  const cells = Array.from(table.querySelectorAll('td, th'));
  const bad = cells.find(c => { const st = getComputedStyle(c);
    return st.overflowWrap === 'anywhere' || st.wordBreak === 'break-all' || st.wordBreak === 'break-word'
        || st.hyphens === 'auto'; });
  if (bad) { const st = getComputedStyle(bad);
    cellBreaks.push(`overflow-wrap:${st.overflowWrap}; word-break:${st.wordBreak}; hyphens:${st.hyphens} in `
                    + clip(bad.innerText || '', 60)); }
  const tex = proseText(table).match(/.{0,30}(\\[A-Za-z]+|\^\{|_\{).{0,30}/g);
  if (tex) tableTex.push(...tex.map(t => clip(t, 80)));
}

// the words a reader reads: prose, tables, verdict boxes and text outputs, not code
function readerText(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode(node) {
    for (let p = node.parentElement; p && p !== root.parentElement; p = p.parentElement) {
      const tag = p.tagName.toLowerCase();
      if (['code', 'script', 'style', 'kbd', 'textarea'].includes(tag) || tag.startsWith('mjx-')
          || p.classList.contains('cell_input') || p.classList.contains('headerlink')
          || /(^|\s)highlight-(?!myst-ansi)/.test(p.className)  // code listed as output (the method on the page)
          || (tag === 'pre' && !p.closest('.cell_output'))) return NodeFilter.FILTER_REJECT;
    }
    return NodeFilter.FILTER_ACCEPT;
  }});
  const parts = [];
  while (walker.nextNode()) parts.push(walker.currentNode.nodeValue);
  return parts.join(' ').replace(/\s+/g, ' ');
}

// display equations wider than their box: they must scroll and say so (class ssmax-scrolls)
const wideMath = Array.from(main.querySelectorAll('mjx-container[display="true"]')).filter(visible)
  .filter(el => el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > main.getBoundingClientRect().right + 1)
  .filter(el => { const st = getComputedStyle(el);
    return !(['auto', 'scroll'].includes(st.overflowX) && el.closest('.ssmax-scrolls')); })
  .map(el => clip((el.querySelector('mjx-assistive-mml') || el).textContent, 60));

// search boxes a reader sees at once (the dialog they open is not one)
const searches = Array.from(document.querySelectorAll('.search-button__button, form.bd-search, input[type=search]'))
  .filter(el => visible(el) && !el.closest('dialog') && el.getBoundingClientRect().width > 0).length;

const links = Array.from(main.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
const ids = Array.from(document.querySelectorAll('[id]')).map(el => el.id);
const hasVerdict = !!main.querySelector('.ssmax-verdict');
folds.forEach(d => { d.open = false; });
return {
  codeCut: codeCut, codeChecks: codeChecks, codeText: codeText, figures: figures, cellBreaks: cellBreaks, tableTex: tableTex,
  text: readerText(main), wideMath: wideMath, searches: searches, links: links, ids: ids, hasVerdict: hasVerdict,
  title: document.title,
  h1: h1 ? h1.textContent.replace(/¶|#$/g, '').trim() : '',
  mjx: document.querySelectorAll('mjx-container').length,
  mjxErrors: Array.from(document.querySelectorAll('mjx-merror')).map(e => clip(e.getAttribute('data-mjx-error') || e.textContent, 120)),
  rawTexInProse: (proseText(main).match(/.{0,40}(\\\(|\\\[|\$\$).{0,40}/g) || []).map(s => clip(s, 100)),
  images: images,
  overflowing: overflowing,
  pageScrollWidth: document.documentElement.scrollWidth,
  viewportWidth: document.documentElement.clientWidth,
  columnWidth: column.getBoundingClientRect().width,
  navTexts: navTexts,
  plumbing: plumbing,
};
"""


def open_page(driver: Any, path: Path) -> dict[str, Any]:
    """Open ``path`` from disk, wait until MathJax has typeset it, and report what the page shows
    and did: the `_PROBE` measurements, the URLs it requested, its console errors."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("performance")  # drop earlier entries
    driver.get_log("browser")
    driver.get(path.as_uri())
    # Sphinx loads MathJax only on pages with math; there, wait until it has typeset the page.
    WebDriverWait(driver, 60).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && (!document.querySelector('script[src*=\"mathjax\"]')"
        " || !!(window.MathJax && MathJax.startup && MathJax.startup.promise))"))
    driver.set_script_timeout(60)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { done(true); return; }"
        "MathJax.startup.promise.then(() => done(true), () => done(false));")
    report = driver.execute_script(_PROBE)
    report["requests"] = requested_urls(driver)
    report["width"] = driver.execute_script("return window.innerWidth")
    for fig in report["figures"]:
        fig["meta"] = figure_record(fig["src"])
    report["console"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return report


# --------------------------------------------------------------------------- checks
def problems(report: dict[str, Any], search_title: str | None = None, root: bool = False) -> dict[str, list[str]]:
    """What a reader would see wrong on one page at one width, by check (`CHECKS`); an empty
    list means the check passes.

    offline   the page asked no host for anything (file:, data:, blob: only) and logged no error
    math      MathJax reported no error, and no TeX delimiter was left untypeset in the prose
    images    every image in the article loaded, has alt text, and sits in a numbered, captioned figure
    overflow  no output box (``.cell_output`` and the boxes in it) is wider than it shows
    titles    no raw TeX (``\\(``, ``$``) in the browser title, the search index's title, the
              navigation (sidebar, previous/next, breadcrumbs)
    plumbing  no visible parameters cell or parameter check (they are hidden with ``remove-cell``)
    code      no code cell shows an ``assert`` or a "... all hold" print, or quotes a registry key
              (an experiment name, a set-task setting, a verdict id); at a laptop's width no line
              of a code cell is cut off (on a phone code scrolls sideways, as it should)
    figures   `figure_problems`: legible on a phone, no empty grid cell, short legends, not one
              number in every cell, tap to enlarge, numbered "Figure N.M"
    tables    no table cell breaks words inside (``overflow-wrap: anywhere``, ``word-break``,
              ``hyphens: auto``), no untypeset TeX (a backslash, ``^{``, ``_{``) in a table
    words     the reader's text (prose, tables, verdict boxes, text output; not code) shows no
              internal key of the package (`internal_keys`), no ASCII stand-in for the paper's
              notation, raw dict, file name, notes file, or word about how the work was organised
    equations a display equation wider than the column scrolls inside its box, with a cue
    navigation one search box at a laptop's width

    Folds (``hide-input``, ``hide-output``, dropdowns) are measured open: the reader who unfolds
    them sees what is inside.
    """
    out: dict[str, list[str]] = {c: [] for c in CHECKS}
    # chrome:// is the browser's own start page, which never leaves the machine either
    out["offline"] += [f"request that left the machine: {u}" for u in report["requests"]
                       if not u.startswith(("file:", "data:", "blob:", "chrome:"))]
    out["offline"] += [f"console error: {e}" for e in report["console"]]
    out["math"] += [f"MathJax error: {e}" for e in report["mjxErrors"]]
    out["math"] += [f"untypeset TeX in the text: {s!r}" for s in report["rawTexInProse"]]
    for img in report["images"]:
        name = (img["src"] or "").rsplit("/", 1)[-1]
        if not img["loaded"]:
            out["images"].append(f"{name}: did not load")
        if not img["alt"]:
            out["images"].append(f"{name}: no alt text")
        if not img["caption"]:
            out["images"].append(f"{name}: no caption")
        elif not img["number"]:
            out["images"].append(f"{name}: caption without a figure number")
    for box in report["overflowing"]:
        out["overflow"].append(f"{box['box']} {box['scroll']} px wide in {box['client']} px: {box['text']!r}")
    titles = {"browser title": report["title"], **({"search title": search_title} if search_title else {})}
    titles.update({f"navigation {t!r}": t for t in report["navTexts"]})
    out["titles"] += [f"raw TeX in the {where}: {text!r}" for where, text in titles.items() if RAW_TEX.search(text)]
    out["plumbing"] += [f"visible: {text!r}" for text in report["plumbing"]]
    width = report.get("width") or report["viewportWidth"]
    out["code"] += [f"an assert or check in a code cell: {t!r}" for t in report["codeChecks"]]
    out["code"] += [f"a registry key in shown code: {m.group(0)}" for m in _code_keys_re().finditer(report.get("codeText", ""))]
    if width >= PHONE:  # on a phone code scrolls sideways, as it should
        out["code"] += [f"code line cut off ({c['scroll']} px in {c['client']} px): {c['text']!r}"
                        for c in report["codeCut"]]
    for fig in report["figures"]:
        out["figures"] += figure_problems(fig, width, root)
    out["tables"] += [f"words broken inside a cell: {t}" for t in report["cellBreaks"]]
    out["tables"] += [f"raw TeX in a table: {t!r}" for t in report["tableTex"]]
    text = report["text"]
    for m in _keys_re().finditer(text):
        out["words"].append(f"internal key {m.group(1)!r}: {text[max(0, m.start() - 40):m.end() + 40]!r}")
    for rx, what in _NOTATION:
        for m in rx.finditer(text):
            out["words"].append(f"{what}: {text[max(0, m.start() - 40):m.end() + 40]!r}")
    out["equations"] += [f"display equation cut off with no scroll cue: {t!r}" for t in report["wideMath"]]
    if width >= PHONE and report["searches"] > 1:
        out["navigation"].append(f"{report['searches']} search boxes at {width} px (one is enough)")
    return out


def figure_problems(fig: dict[str, Any], width: int, root: bool = False) -> list[str]:
    """A figure is readable where it is shown: its smallest text at least `MIN_TEXT_PX` CSS px
    (on a phone; measured from the PNG's resolution, its recorded smallest font and the width it
    is shown at), every cell of its grid a panel, legends of at most `MAX_LEGEND` entries, not
    every cell the same number, a tap opens it full size, and it is numbered "Figure N.M" (on
    the book's first page, which has no chapter number, "Figure N")."""
    name = fig["src"].rsplit("/", 1)[-1][:16] + "…"
    meta, out = fig.get("meta", {}), []
    if not fig["opens"]:
        out.append(f"{name}: a tap does not open it full size (no link to the image)")
    if fig["number"] and not re.fullmatch(r"Figure \d+" if root else r"Figure \d+\.\d+", fig["number"]):
        out.append(f"{name}: numbered {fig['number']!r}, not 'Figure N.M'")
    if "panels" not in meta:
        out.append(f"{name}: records no panels (draw it with ssmax.book.plots.show)")
    else:
        rows, cols = (int(x) for x in meta["grid"].split("x"))
        if rows * cols > int(meta["panels"]):
            out.append(f"{name}: {rows * cols - int(meta['panels'])} empty cell(s) in a {rows}×{cols} grid")
    if int(meta.get("legend", 0)) > MAX_LEGEND:
        out.append(f"{name}: a legend of {meta['legend']} entries (at most {MAX_LEGEND})")
    if meta.get("uniform") == "true":
        out.append(f"{name}: every cell shows the same number (say it in a sentence)")
    if width < PHONE and fig["naturalWidth"] and fig["shownWidth"]:
        font_pt = float(meta.get("min_font_pt", 9.0))
        dpi = float(meta.get("dpi") or 96.0)
        px = font_pt * dpi / 72 * fig["shownWidth"] / fig["naturalWidth"]
        if px < MIN_TEXT_PX:
            out.append(f"{name}: its smallest text ({font_pt:g} pt) is {px:.1f} px on a {width}-px screen "
                       f"(at least {MIN_TEXT_PX:g})")
    return out


def book_problems(reports: dict[tuple[str, int], dict[str, Any]], pages: list[str]) -> dict[str, list[str]]:
    """What the pages show of each other, at the first width measured:

    scorecard links  the scorecard links to every other page that shows a verdict, at an anchor
                     that exists there
    outline links    the first page (the introduction) links to every chapter
    """
    out: dict[str, list[str]] = {c: [] for c in BOOK_CHECKS}
    width = next(iter(reports))[1]
    by_page = {p: reports[p, width] for p in pages if (p, width) in reports}
    scorecards = [p for p in by_page if p.endswith("scorecard")]

    def target(href: str, page: str) -> tuple[str, str]:
        path, _, frag = href.partition("#")
        if not path:
            return page, frag
        base = Path(page).parent
        return str((base / path).as_posix()).removesuffix(".html").replace("/./", "/"), frag

    def resolve(href: str, page: str) -> tuple[str, str]:
        name, frag = target(href, page)
        parts: list[str] = []
        for piece in name.split("/"):
            if piece == "..":
                parts = parts[:-1]
            elif piece and piece != ".":
                parts.append(piece)
        return "/".join(parts), frag

    if not scorecards:
        out["scorecard links"].append("no scorecard page in the table of contents")
    for card in scorecards:
        linked = [resolve(h, card) for h in by_page[card]["links"]]
        for page, report in by_page.items():
            if page == card or not report["hasVerdict"]:
                continue
            frags = [f for p, f in linked if p == page]
            if not frags:
                out["scorecard links"].append(f"{page} shows verdicts but the scorecard does not link to it")
            elif not any(f and f in report["ids"] for f in frags):
                out["scorecard links"].append(f"{page}: the scorecard's links there name no section of it")
    intro = pages[0]
    chapters = [p for p in pages[1:] if p.startswith("notebooks/")]
    linked = {resolve(h, intro)[0] for h in by_page.get(intro, {}).get("links", [])}
    out["outline links"] += [f"the introduction does not link to {p}" for p in chapters if p not in linked]
    return out


def screenshot(driver: Any, target: Path, width: int, max_height: int = SCREENSHOT_MAX_HEIGHT) -> Path:
    """Save the whole page (up to ``max_height`` px) as a PNG, ``width`` px wide (the width the
    page was opened at, `set_width`)."""
    import base64

    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
    # A viewport as tall as the page, so that the screenshot is the page as laid out (Chrome's
    # captureBeyondViewport lays the page out again and shifts the article sideways).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": min(int(height), max_height), "deviceScaleFactor": 1, "mobile": width < 600})
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "fromSurface": True})
    finally:
        set_width(driver, width)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(base64.b64decode(shot["data"]))
    return target


def shot_name(page: str, width: int) -> str:
    return f"{page.replace('/', '_')}-{width}.png"


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tests/book_browser.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check", "print each page's problems at each width"),
                       ("screenshots", "save a full-page PNG of each page at each width")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--html", type=Path, default=HTML, help="the built book (default _build/html)")
        p.add_argument("--widths", default=",".join(map(str, WIDTHS)), help="px, comma-separated")
        if name == "screenshots":
            p.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    pages = toc_pages()
    missing = [p for p in pages if not page_file(args.html, p).is_file()]
    if missing:
        parser.error(f"pages not built in {args.html}: {missing} (run `make html`)")
    titles = search_titles(args.html)
    failed = 0
    reports: dict[tuple[str, int], dict[str, Any]] = {}
    with chromium() as driver:
        for width in widths:
            set_width(driver, width)
            for page in pages:
                report = open_page(driver, page_file(args.html, page))
                reports[page, width] = report
                if args.command == "screenshots":
                    path = screenshot(driver, args.outdir / shot_name(page, width), width)
                    print(f"{path}  (column {report['columnWidth']:.0f} px)")
                    continue
                found = {k: v for k, v in problems(report, titles.get(page), page == pages[0]).items() if v}
                failed += bool(found)
                print(f"{page} @ {width} px: {'ok' if not found else ', '.join(found)}")
                for check, lines in found.items():
                    for line in lines:
                        print(f"    [{check}] {line}")
    if args.command == "check":
        found = {k: v for k, v in book_problems(reports, pages).items() if v}
        failed += bool(found)
        print(f"the book as a whole: {'ok' if not found else ', '.join(found)}")
        for check, lines in found.items():
            for line in lines:
                print(f"    [{check}] {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
