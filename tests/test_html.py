"""Verdicts as HTML: badges by kind, parts with their outcome, per-model numbers and reason, math
typeset, deterministic output, and the plain text nbval compares. (tests/test_book.py renders them
in the browser.)"""

from __future__ import annotations

import pytest

from ssmax.book import decide as d
from ssmax.book import html as report
from ssmax.book import theory


def _part(values: tuple[float, ...], label: str = "(b) below (a) over (T,16T] at theta x50", counted: bool = True,
          floor: str | None = None) -> d.Part:
    e = d.Effect(tuple(f"seed {i}" for i in range(len(values))), values)
    return d.part(label, e, 0.02, "nats per byte", counted=counted, floor=floor)


def _verdict(*parts: d.Part) -> d.Verdict:
    return d.Verdict("fig5", "Fig. 5", "SSMax generalizes beyond T; the learned p_n grows like a1 log n + a2",
                     "paired by seed; the 95% t-interval decides", list(parts),
                     "mean loss over (T,16T] at theta x50: (a) 2.505, (b) 2.496; R^2 0.962 (n=10^6)")


HOLDS, FAILS, UNDER = (0.10, 0.11, 0.12), (-0.10, -0.11, -0.12), (0.3, -0.3, 0.05)


@pytest.mark.parametrize("text, expected", [
    ("R^2 log 0.962", r"\(R^2\) log 0.962"),
    ("the learned p_n grows like a1 log n + a2", r"the learned \(p_n\) grows like \(a_1 \log n + a_2\)"),
    ("(T,16T] at theta x50", r"\((T, 16T]\) at \(\theta \times 50\)"),
    ("within [1,T]: (a) 1.734", r"within \([1, T]\): (a) 1.734"),
    ("accuracy at >= 4T, theta x 1", r"accuracy at \(\geq 4T\), \(\theta \times 1\)"),
    ("softmax 0.600 (n=100), 1.48e-04 (n=10^6)", r"softmax 0.600 (\(n = 100\)), 1.48e-04 (\(n = 10^6\))"),
    ("SSMax s = 0.5: 3.54 -> 3.04", r"SSMax \(s = 0.5\): 3.54 → 3.04"),
    ("z_max within 0.1 of 1 + 1/s", r"\(z_{\max}\) within 0.1 of \(1 + 1/s\)"),
    ("best power law a1 n^k", r"best power law \(a_1 n^k\)"),
    ("grows by log 10 per decade of n", r"grows by \(\log 10\) per decade of \(n\)"),
    ("as n grows; softmax's max", r"as \(n\) grows; softmax's max"),
    ("(a) 1.217-1.257 over 3 seed(s)", "(a) 1.217-1.257 over 3 seed(s)"),  # no math in variant letters
    ("(a)+qwen_logn 2.475, (a)+log_train_len 2.483", "(a)+qwen_logn 2.475, (a)+log_train_len 2.483"),
    ("binomial standard error <= 0.029", r"binomial standard error \(\leq 0.029\)"),
    ("margin of ~1/s", r"margin of \(\sim 1/s\)"),
    ("TeX by hand: $\\frac{1}{s}$ and 50%", r"TeX by hand: \(\frac{1}{s}\) and 50%"),
    ("(b) > (a) in 99% & <b>", "(b) &gt; (a) in 99% &amp; &lt;b&gt;"),
])
def test_ascii_math_becomes_tex(text, expected):
    assert report.tex_html(text) == expected


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "$<img src=x onerror=alert(1)>$",
                                  "a < b && c > d", "\"quoted\" 'single'", "x^<b>", "theta x<i>"])
def test_tex_html_never_emits_markup(text):
    out = report.tex_html(text)
    assert "<" not in out and ">" not in out
    assert out.count(r"\(") == out.count(r"\)")


def test_every_real_verdict_string_converts_with_balanced_math():
    for v in (theory.attention_fading(), theory.fixed_margin_suffices()):
        for s in (v.statement, v.measured, v.rule, *v.checks):
            out = report.tex_html(s)
            assert out.count(r"\(") == out.count(r"\)") and "<" not in out


def test_verdict_html_shows_badge_rule_parts_per_model_numbers_and_reasons():
    v = _verdict(_part(HOLDS), _part(FAILS, "(d) above (b)"), _part(UNDER, "(c) below (a)"),
                 _part(HOLDS, "(c) close to (b)", counted=False))
    out = report.verdict_html(v)
    assert out == v._repr_html_()
    assert 'class="ssmax-verdict mathjax_process"' in out
    assert "\u25d0 partly" in out and report.KINDS[d.PARTLY]["bg"] in out
    assert out.count("\u2713 holds") == 2 and out.count("\u2717 fails") == 1 and out.count("? cannot tell") == 1
    assert "1 of 3 counted parts hold, 1 fail, 1 undecided; 1 shown, not counted" in out
    assert "seed 0 +0.100, seed 1 +0.110" in out and "underpowered" in out and "(shown, not counted)" in out
    assert "paired by seed" in out and " id=" not in out and out == report.verdict_html(v)


def test_derived_verdict_shows_its_checks():
    out = report.verdict_html(theory.attention_fading())
    assert "derived" in out and "4 of 4 computed statements hold" in out


@pytest.mark.parametrize("kind", d.KINDS)
def test_each_kind_has_a_labeled_badge(kind):
    badge = report.badge_html(kind)
    assert report.KINDS[kind]["label"] in badge and report.KINDS[kind]["symbol"] in badge


def test_badge_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        report.badge_html("maybe")


def test_badge_text_contrast_is_wcag_aa():
    def luminance(hex_color: str) -> float:
        rgb = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    pairs = [(k["bg"], k["fg"]) for k in report.KINDS.values()] + [(bg, fg) for bg, fg, *_ in report._PART.values()]
    for bg, fg in pairs:
        hi, lo = sorted((luminance(bg), luminance(fg)), reverse=True)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (bg, fg)


def test_display_gives_html_and_the_full_text():
    from IPython.core.formatters import format_display_data

    v = _verdict(_part(HOLDS))
    data, _ = format_display_data(v)
    assert data["text/plain"] == str(v)
    assert data["text/html"] == report.verdict_html(v)


def test_scorecard_counts_every_kind_and_lists_every_verdict():
    vs = [_verdict(_part(HOLDS)), _verdict(_part(HOLDS), _part(FAILS)), _verdict(_part(FAILS)),
          _verdict(_part(UNDER)), theory.attention_fading()]
    card = report.Scorecard(vs)
    assert card.counts() == {"reproduced": 1, "partly": 1, "not reproduced": 1, "inconclusive": 1, "derived": 1}
    text = str(card)
    assert text.endswith("5 claims: reproduced: 1, partly: 1, not reproduced: 1, inconclusive: 1, derived: 1")
    assert all(str(v) in text for v in vs)
    out = card._repr_html_()
    assert out.count("<tr>") == 1 + len(vs) and "why inconclusive: underpowered" in out
    assert out == report.Scorecard(vs)._repr_html_()
    with pytest.raises(ValueError, match="at least one"):
        report.Scorecard([])


def test_table_wraps_text_and_aligns_plain_text():
    t = report.Table(["variant", "loss beyond T"], [["(a) softmax", 2.5049], ["(b) SSMax", 2.4961]])
    assert str(t).splitlines() == ["variant      loss beyond T", "(a) softmax  2.505", "(b) SSMax    2.496"]
    assert r"loss beyond \(T\)" in t._repr_html_() and t._repr_html_().count("<tr>") == 3
    with pytest.raises(ValueError, match="rows must have 2 cells"):
        report.Table(["x", "y"], [[1]])


def test_glue_number_glues_the_formatted_text(monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.update({name: (value, display)}))
    assert report.glue_number("b_needle_share", 0.60312) == "0.60"
    assert report.glue_number("steps", 1250, "{:,}") == "1,250"
    assert glued == {"b_needle_share": ("0.60", False), "steps": ("1,250", False)}
    # a string, so myst-nb pastes "0.60" (a glued float 0.60 would be pasted as "0.6")
    assert isinstance(glued["steps"][0], str)
    with pytest.raises(ValueError, match="name must be"):
        report.glue_number("2x", 1.0)
    with pytest.raises(ValueError, match="name must be"):
        report.glue_number("a:b", 1.0)

