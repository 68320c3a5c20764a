"""The reader's edition (issue 23): reader's words for internal keys, the scorecard's links to the
chapters, the practitioner box, the method listings, and the browser check's new rules on
synthetic page reports (the real pages are checked in test_book.py)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pytest

import book_browser as bb
from ssmax.book import decide as d
from ssmax.book import html as report
from ssmax.book import labels, plots, scorecard

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def verdicts() -> dict[str, d.Verdict]:
    return scorecard.headline(scorecard.load("cpu"), "cpu")["by_id"]


def test_the_registry_of_verdict_ids_is_the_scorecards(verdicts):
    assert set(verdicts) == set(labels.VERDICT_IDS)


def test_every_internal_key_has_a_label_or_stays_out_of_sight():
    keys = labels.internal_keys()
    assert {"maxret", "keyret-bounded", "qwen_logn", "lengthgen-a", "fig1", "sets-maxret-b-vs-a"} <= keys
    for table in (labels.SETTING_LABELS, labels.BASELINE_LABELS, labels.PROTOCOL_LABELS):
        for key, text in table.items():
            assert labels.label(key) == text and text not in keys


def test_no_verdict_shows_an_internal_key(verdicts):
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, labels.internal_keys())) + r")(?![\w-])")
    for v in verdicts.values():
        shown = " ".join([v.source, v.statement, v.rule, v.measured, v.tally(),
                          *(p.label for p in v.parts), *(p.note for p in v.parts)])
        assert not pattern.search(shown), (v.claim_id, pattern.search(shown).group(0))


def test_every_verdict_links_to_a_section_its_chapter_defines(verdicts):
    for claim_id, href in scorecard.links(list(verdicts.values())).items():
        page, label = href.split(".html#")
        text = (ROOT / "notebooks" / f"{page}.ipynb").read_text(encoding="utf-8")
        assert f"({label})=" in text, (claim_id, href)
    with pytest.raises(ValueError, match="no chapter section"):
        scorecard.section("unknown-claim")


def test_scorecard_rows_link_to_their_sections(verdicts):
    paper = [verdicts[k] for k in ("fig1", "fig4")]
    html = report.Scorecard(paper, links=scorecard.links(paper))._repr_html_()
    assert 'href="01_attention_fading.html#ch1-fig1"' in html and 'href="04_pretraining.html#ch4-verdict"' in html


def test_practitioner_box_says_no_more_than_the_verdicts(verdicts):
    sentences = scorecard.practitioner(verdicts)
    assert 2 <= len(sentences) <= 4
    text = " ".join(sentences)
    for k in ("fig4", "fig5", "fig6"):
        assert f"{verdicts[k].source} {verdicts[k].kind}" in text
    # a verdict that changes changes the box
    flipped = dict(verdicts)
    flipped["fig5"] = d.Verdict("fig5", "Fig. 5", "x", "r", [], derived=True)
    assert "neither confirms nor rules out" not in " ".join(scorecard.practitioner(flipped))
    box = report.Takeaway("What this means if you train models", sentences)
    assert "What this means" in box._repr_html_() and str(box).count("\n- ") == len(sentences)


def test_listing_shows_the_packages_own_lines():
    from ssmax.functional import query_scale

    whole = report.Listing(query_scale)
    part = report.Listing(query_scale, ("def query_scale", "def query_scale"), ("scale = ", "return scale"))
    assert "torch.log(n_t)" in str(part) and "..." in str(part) and len(str(part)) < len(str(whole))
    assert part._repr_markdown_().startswith("```python\n# ssmax.functional.query_scale")
    with pytest.raises(ValueError, match="no lines from"):
        report.Listing(query_scale, ("not in the source", "x"))


def test_tables_wrap_at_word_boundaries_only():
    html = report.Table(["variant", "verdict"], [["(a) softmax", "inconclusive"]])._repr_html_()
    assert "anywhere" not in html and "break-all" not in html and "hyphens:none" in html


# --------------------------------------------------------------------------- figures
def test_figures_read_on_a_phone():
    """The smallest font at the widest figure still shows at >= 8 CSS px in a phone's column."""
    px = plots.MIN_FONT_PT * 96 / 72 * plots.PHONE_PX / (96 * plots.MAX_WIDTH_IN)
    assert px >= bb.MIN_TEXT_PX


@pytest.mark.parametrize("panels", range(1, 8))
@pytest.mark.parametrize("ncols", (1, 2, 3, 4))
def test_new_figure_leaves_no_empty_cell(panels, ncols):
    import matplotlib.pyplot as plt

    nrows = -(-panels // ncols)
    fig, axes = plots.new_figure(ncols=ncols, nrows=nrows)
    record = plots.figure_record(fig)
    rows, cols = map(int, record["grid"].split("x"))
    assert rows * cols == int(record["panels"]) == ncols * nrows
    plt.close(fig)


def test_show_records_the_figure_in_its_png(monkeypatch):
    from PIL import Image

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig, axes = plots.new_figure(ncols=2)
    for ax in axes:
        for k in "abcdefg":
            ax.plot([0, 1], [0, 1], **plots.style(k if k != "g" else "qwen_logn"))
    plots.legend_below(fig)
    plots.show(fig)
    (image,) = shown
    png = Image.open(io.BytesIO(image.data))
    assert png.text["ssmax:panels"] == "2" and png.text["ssmax:grid"] == "1x2"
    assert png.text["ssmax:legend"] == "7" and float(png.text["ssmax:min_font_pt"]) >= plots.MIN_FONT_PT
    assert image.width == round(png.size[0] * 96 / plots.DPI * plots.ZOOM)


def test_heatmap_of_one_number_is_recorded():
    import numpy as np

    fig, ax = plots.new_figure()
    plots.heatmap(ax, np.zeros((2, 3)), list("xyz"), list("uv"))
    assert plots.figure_record(fig)["uniform"] == "true"


# --------------------------------------------------------------------------- the browser check's rules
def _report(**kw) -> dict:
    base = {"requests": [], "console": [], "mjxErrors": [], "rawTexInProse": [], "images": [], "overflowing": [],
            "title": "t", "navTexts": [], "plumbing": [], "codeCut": [], "codeChecks": [], "figures": [],
            "cellBreaks": [], "tableTex": [], "text": "", "wideMath": [], "searches": 1, "links": [], "ids": [],
            "hasVerdict": False, "width": 1280, "viewportWidth": 1280}
    base.update(kw)
    return base


def test_browser_rules_catch_what_issue_23_found():
    found = bb.problems(_report(
        width=390, codeChecks=["assert x"], searches=2,
        figures=[{"src": "file:///x/a.png", "naturalWidth": 1020, "shownWidth": 342, "opens": False,
                  "number": "Figure 2", "meta": {"dpi": 150.0, "min_font_pt": "9", "panels": "3", "grid": "2x2",
                                                 "legend": "15", "uniform": "true"}}],
        cellBreaks=["overflow-wrap:anywhere in learned"], tableTex=["e^{-g}"],
        text="fig1: 4 of 4 parts hold; (a)+qwen_logn; maxret; {'a': 3, 'b': 3}; seed(s); 0.1 +- 0.2; 3 x 4; "
             "see paper-notes.md; the session was lent a GPU"))
    assert found["code"] and found["tables"] and len(found["tables"]) == 2
    figs = " ".join(found["figures"])
    for what in ("tap", "'Figure 2'", "empty cell", "15 entries", "same number", "6.3 px"):
        assert what in figs, what
    words = " ".join(found["words"])
    for what in ("'fig1'", "'qwen_logn'", "'maxret'", "dict", "'(s)'", "±", "×", "notes file", "organised"):
        assert what in words, what
    assert not found["navigation"]  # two search boxes matter at a laptop's width only
    assert bb.problems(_report(searches=2))["navigation"]
    wide = bb.problems(_report(width=1280, codeCut=[{"scroll": 900, "client": 666, "text": "x"}]))
    assert wide["code"] and not bb.problems(_report(width=390, codeCut=[{"scroll": 900, "client": 342,
                                                                           "text": "x"}]))["code"]


def test_shown_code_names_set_tasks_and_experiments_through_the_package_not_by_key():
    quoted = bb.problems(_report(codeText='fig = sets_book.curves_figure(results, "keyret-bounded")\nres["pretrain-a"]'))
    assert len(quoted["code"]) == 2 and "keyret-bounded" in quoted["code"][0] and "pretrain-a" in quoted["code"][1]
    assert not bb.problems(_report(codeText="fig = sets_book.curves_figure(results, sets_book.KEY_RETRIEVAL_BOUNDED)"))["code"]


def test_a_clean_report_passes():
    assert not any(bb.problems(_report(text="SSMax (b) above softmax (a) at n = 256; θ × 50")).values())


def test_book_rules_need_scorecard_and_outline_links():
    pages = ["notebooks/00_intro", "notebooks/03_x", "notebooks/08_scorecard"]
    reports = {(p, 1280): _report() for p in pages}
    reports["notebooks/03_x", 1280].update(hasVerdict=True, ids=["ch3-verdicts"])
    found = bb.book_problems(reports, pages)
    assert found["scorecard links"] and len(found["outline links"]) == 2
    reports["notebooks/08_scorecard", 1280]["links"] = ["03_x.html#ch3-verdicts"]
    reports["notebooks/00_intro", 1280]["links"] = ["03_x.html", "08_scorecard.html"]
    assert not any(bb.book_problems(reports, pages).values())
    reports["notebooks/08_scorecard", 1280]["links"] = ["03_x.html#gone"]
    assert bb.book_problems(reports, pages)["scorecard links"]
