"""Verdicts as the book shows them: styled HTML tables, ASCII math typeset, numbers glued into prose.

``display(verdict)`` in a notebook shows `verdict_html` (``Verdict._repr_html_``) in the book and
in Jupyter, while the output's ``text/plain`` is ``str(verdict)``, the full text that nbval
compares. `Scorecard` does the same for a list of verdicts: one row per claim with its badge, and
the counts by kind. `glue_number` pastes a computed number into prose (myst-nb's ``glue``), so no
number in the text can go stale.

The HTML is deterministic (nbval compares ``text/html`` too), styled inline (it works in
Jupyter, in the book and in both of the book's color modes, with no stylesheet), and wraps:
no line is wider than its box at a phone's 390 px.

Math. Verdict strings are ASCII, so they print cleanly ("R^2", "theta x50", "p_n", "(T,16T]").
`tex_html` turns a fixed list of such patterns (`MATH_RULES`) into TeX, inside ``\\(...\\)``;
everything else is HTML-escaped text. A claim may also write TeX itself between ``$...$``,
which passes through as it is. The book typesets it because Sphinx's MathJax 3 configuration
(myst-parser's ``update_mathjax``) processes only elements with a class in
``tex2jax_process|mathjax_process|math|output_area`` inside the page's ``tex2jax_ignore``
sections, and ``\\(...\\)`` is MathJax 3's inline delimiter: every block here carries the
``mathjax_process`` class.
"""

from __future__ import annotations

import html
import re
from typing import Any, Callable, Iterable, Sequence

from .decide import (DERIVED, EMPIRICAL_KINDS, INCONCLUSIVE, KINDS as VERDICTS, NOT_REPRODUCED, PARTLY, REPRODUCED,
                     Verdict, counts)

__all__ = ["KINDS", "MATH_RULES", "tex_html", "badge_html", "verdict_html", "Scorecard", "Table", "glue_number",
           "Listing", "Takeaway"]

# Badge per verdict kind: Okabe-Ito colors (distinguishable with every common color-vision
# deficiency), a symbol and the word, so that color is never the only cue. Text colors pass WCAG
# AA contrast (>= 4.5) on their background; the badges are opaque, so they read alike in the
# book's light and dark modes.
KINDS: dict[str, dict[str, str]] = {
    REPRODUCED: {"bg": "#0072B2", "fg": "#ffffff", "symbol": "\u2713", "label": "reproduced"},
    PARTLY: {"bg": "#F0E442", "fg": "#000000", "symbol": "\u25d0", "label": "partly"},
    NOT_REPRODUCED: {"bg": "#D55E00", "fg": "#000000", "symbol": "\u2717", "label": "not reproduced"},
    INCONCLUSIVE: {"bg": "#BBBBBB", "fg": "#000000", "symbol": "?", "label": "inconclusive"},
    DERIVED: {"bg": "#CC79A7", "fg": "#000000", "symbol": "\u222b", "label": "derived"},
}
_PART = {True: ("#0072B2", "#ffffff", "\u2713", "holds"), False: ("#D55E00", "#000000", "\u2717", "fails"),
         None: ("#BBBBBB", "#000000", "?", "cannot tell")}  # None: an undecided part (floor or ceiling)

# Words wrap at their boundaries only: ``break-word`` splits a word only if it alone is wider than
# the whole box (it does not shrink a table column below its longest word, as ``anywhere`` does).
_WRAP = "overflow-wrap:break-word;word-break:normal;hyphens:none"
_BLOCK = f"margin:0.25em 0 0.75em 0;max-width:100%;{_WRAP};line-height:1.45;color:inherit"
_TABLE = "width:100%;border-collapse:collapse;table-layout:auto;margin:0;font-size:0.92em;color:inherit;background:transparent"
_CELL = ("padding:0.3em 0.5em;border:none;border-bottom:1px solid rgba(128,128,128,0.35);"
         f"vertical-align:top;text-align:left;white-space:normal;{_WRAP};background:transparent;color:inherit")
_KEY = _CELL + ";font-weight:600;width:7.5em"
_HEAD = _CELL + ";border-bottom:2px solid rgba(128,128,128,0.6);font-weight:600"
_MUTED = "opacity:0.75;font-size:0.92em"


# --------------------------------------------------------------------------- math
def _sup(base: str, exp: str) -> str:
    return f"{base}^{{{exp}}}" if len(exp) > 1 else f"{base}^{exp}"


def _sub(base: str, sub: str) -> str:
    return f"{base}_{{{sub}}}" if len(sub) > 1 else f"{base}_{sub}"


_NUM = r"(?:10\^\d+|\d+(?:\.\d+)?(?:e[+-]?\d+)?)"


def _num(text: str) -> str:
    return _sup("10", text[3:]) if text.startswith("10^") else text


def _bound(text: str) -> str:
    return text.replace(" ", "")


# (pattern, TeX) in order of priority; each pattern is tried at every position, the first match
# wins. Only these become math; the TeX is fixed by the rule, so MathJax never sees malformed input.
MATH_RULES: list[tuple[str, Callable[[re.Match], str]]] = [
    (r"\$([^$\n]+)\$", lambda m: m.group(1)),  # TeX written by the claim itself
    (r"\ba1 log n \+ a2\b", lambda m: r"a_1 \log n + a_2"),
    (r"\ba1 \(n\^k - 1\)/k \+ a2\b", lambda m: r"a_1 (n^k - 1)/k + a_2"),
    (r"\ba1 n \+ a2\b", lambda m: r"a_1 n + a_2"),
    (r"\ba1 n\^k\b", lambda m: r"a_1 n^k"),
    (r"\ba([12])\b", lambda m: _sub("a", m.group(1))),
    (r"\btheta ?x ?(\d+)\b", lambda m: rf"\theta \times {m.group(1)}"),
    (r"\btheta\b", lambda m: r"\theta"),
    (r"\blog_(T|\d+) ?n\b", lambda m: rf"\log_{{{m.group(1)}}} n"),
    (r"\blog n\b", lambda m: r"\log n"),
    (r"\blog (\d+)(?![\d.])", lambda m: rf"\log {m.group(1)}"),
    (r"~1/s\b", lambda m: r"\sim 1/s"),
    (r"\b1 \+ 1/s\b", lambda m: r"1 + 1/s"),
    (rf"\b([nsk]) ?= ?({_NUM})(?![\w.])", lambda m: f"{m.group(1)} = {_num(m.group(2))}"),
    (r"\b10\^(\d+)\b", lambda m: _sup("10", m.group(1))),
    (r"\b([A-Za-z])\^(\d+|[A-Za-z])\b", lambda m: _sup(m.group(1), m.group(2))),
    (r"\bz_max\b", lambda m: r"z_{\max}"),
    (r"\b([A-Za-z])_([A-Za-z0-9]{1,3})\b", lambda m: _sub(m.group(1), m.group(2))),
    (r"([\[(])(\d*T|\d+) ?, ?(\d*T|\d+)([\])])",
     lambda m: f"{m.group(1)}{_bound(m.group(2))}, {_bound(m.group(3))}{m.group(4)}"),
    (r">= ?(\d*T|\d+(?:\.\d+)?)\b", lambda m: rf"\geq {m.group(1)}"),
    (r"<= ?(\d*T|\d+(?:\.\d+)?)\b", lambda m: rf"\leq {m.group(1)}"),
    (r"\b(\d+)T\b", lambda m: f"{m.group(1)}T"),
    (r"\bT\b", lambda m: "T"),
    (r"(?<![\w('\u2019])([ns])(?![\w)'\u2019])", lambda m: m.group(1)),
]
_MATH = re.compile("|".join(f"(?P<r{i}>{p})" for i, (p, _) in enumerate(MATH_RULES)))
_TEXT = {"->": "\u2192", ">=": "\u2265", "<=": "\u2264"}


def _text(s: str) -> str:
    s = html.escape(s, quote=False)
    for ascii_, uni in _TEXT.items():
        s = s.replace(html.escape(ascii_, quote=False), uni)
    return s


def tex_html(text: str) -> str:
    """``text`` as HTML: escaped, with the ASCII math of `MATH_RULES` (and any ``$...$``) as
    ``\\(...\\)`` for MathJax, and ``->``, ``>=``, ``<=`` as arrows and signs."""
    out, pos = [], 0
    for m in _MATH.finditer(text):
        out.append(_text(text[pos:m.start()]))
        rule = int(m.lastgroup[1:])  # type: ignore[index]
        inner = re.match(MATH_RULES[rule][0], m.group(m.lastgroup))  # groups of that rule alone
        assert inner is not None
        out.append(r"\(" + html.escape(MATH_RULES[rule][1](inner), quote=False) + r"\)")
        pos = m.end()
    out.append(_text(text[pos:]))
    return "".join(out)


# --------------------------------------------------------------------------- verdicts
def badge_html(kind: str, text: str | None = None) -> str:
    """An inline badge for a verdict kind: color, symbol and word (or ``text``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {VERDICTS}; got {kind!r}")
    k = KINDS[kind]
    label = html.escape(text if text is not None else k["label"], quote=False)
    return (f'<span class="ssmax-badge ssmax-{kind.replace(" ", "-")}" style="display:inline-block;'
            f"padding:0.05em 0.5em;border-radius:0.8em;background:{k['bg']};color:{k['fg']};"
            f'font-weight:600;font-size:0.9em;white-space:nowrap">{k["symbol"]} {label}</span>')


def _part_mark(ok: bool | None) -> str:
    bg, fg, symbol, word = _PART[None if ok is None else bool(ok)]
    return (f'<span style="display:inline-block;padding:0 0.45em;border-radius:0.7em;background:{bg};'
            f'color:{fg};font-size:0.85em;font-weight:600;white-space:nowrap">{symbol} {word}</span>')


def _row(key: str, value: str) -> str:
    return f'<tr><th scope="row" style="{_KEY}">{key}</th><td style="{_CELL}">{value}</td></tr>'


def _part_row(p) -> str:
    mark = _part_mark(p.outcome.holds)
    flag = "" if p.counted else f' <span style="{_MUTED}">(shown, not counted)</span>'
    reason = f"{p.outcome.reason}: " if p.outcome.reason else ""
    note = f'<div style="{_MUTED}">{tex_html(p.note)}</div>' if p.note else ""
    return (f'<tr><th scope="row" style="{_KEY}">{mark}</th><td style="{_CELL}">'
            f"<div>{tex_html(p.label)}{flag}</div>"
            f'<div style="{_MUTED}">per model: {tex_html(p.per_unit())}</div>'
            f'<div style="{_MUTED}">{tex_html(reason + p.outcome.why)}</div>{note}</td></tr>')


def verdict_html(v: Verdict) -> str:
    """One claim as a table: badge, where the paper says it and what; the rule in one sentence;
    the numbers; each part with its outcome, per-model numbers and reason (derived claims: their
    computed statements)."""
    head = (f'<tr><th colspan="2" style="{_HEAD}">{badge_html(v.kind)} '
            f'<span style="{"white-space:nowrap" if len(v.source) <= 24 else ""}">'
            f'{html.escape(v.source, quote=False)}</span> '
            f'<span style="font-weight:400">{tex_html(v.statement)}</span></th></tr>')
    rows = [_row("rule", tex_html(v.rule))]
    if v.measured:
        rows.append(_row("measured", tex_html(v.measured)))
    rows += [_row(_part_mark(ok), tex_html(c)) for c, ok in v.checks.items()]
    rows += [_part_row(p) for p in v.parts]
    return (f'<div class="ssmax-verdict mathjax_process" style="{_BLOCK}">'
            f'<table style="{_TABLE}"><caption style="caption-side:bottom;text-align:left;{_MUTED};'
            f'padding-top:0.3em">{tex_html(v.tally())}</caption>'
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")


class Scorecard:
    """Every verdict in one table, with the counts by kind (derived claims apart).
    ``display(Scorecard(verdicts))`` shows the table; its ``text/plain`` is every verdict in full,
    then the counts."""

    def __init__(self, verdicts: Iterable[Verdict], links: dict[str, str] | None = None):
        self.verdicts = list(verdicts)
        if not self.verdicts:
            raise ValueError("verdicts must hold at least one Verdict")
        self.links = dict(links or {})  # claim id -> the chapter section that shows it (an href)

    def _source(self, v: Verdict) -> str:
        """Where the claim is made, linked to the chapter section that decides it, if known."""
        text = html.escape(v.source, quote=False)
        href = self.links.get(v.claim_id)
        return f'<a href="{html.escape(href)}">{text}</a>' if href else text

    def counts(self) -> dict[str, int]:
        """Verdicts per kind, every kind listed (zeros included), in the order of `decide.KINDS`."""
        return counts(self.verdicts)

    def counts_text(self) -> str:
        return ", ".join(f"{kind}: {n}" for kind, n in self.counts().items())

    def __str__(self) -> str:
        return "\n\n".join(str(v) for v in self.verdicts) + f"\n\n{len(self.verdicts)} claims: {self.counts_text()}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        shown = [k for k, n in self.counts().items() if n or k in EMPIRICAL_KINDS]
        counts_ = " ".join(badge_html(kind, f"{KINDS[kind]['label']}: {self.counts()[kind]}") for kind in shown)
        head = (f'<th scope="col" style="{_HEAD};width:1%">verdict</th>'
                f'<th scope="col" style="{_HEAD}">claim; rule; measured</th>')
        rows = []
        for v in self.verdicts:
            why = (f'<div style="{_MUTED}">why inconclusive: {tex_html(", ".join(v.reasons))}</div>'
                   if v.kind == INCONCLUSIVE and v.reasons else "")
            rows.append(
                f'<tr><td style="{_CELL};white-space:nowrap;width:1%">{badge_html(v.kind)}'
                f'<div style="{_MUTED};white-space:normal">{tex_html(v.tally())}</div></td>'
                f'<td style="{_CELL}"><div><strong>{self._source(v)}</strong>: '
                f"{tex_html(v.statement)}</div>"
                f'<div style="margin-top:0.2em;{_MUTED}">{tex_html(v.rule)}</div>'
                f'<div style="margin-top:0.2em">{tex_html(v.measured)}</div>{why}</td></tr>')
        return (f'<div class="ssmax-scorecard mathjax_process" style="{_BLOCK}">'
                f'<p style="margin:0 0 0.5em 0">{len(self.verdicts)} claims: {counts_}</p>'
                f'<table style="{_TABLE}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


# --------------------------------------------------------------------------- prose numbers
def glue_number(name: str, value: Any, fmt: str = "{:.2f}", display: bool = False) -> str:
    """Format ``value`` with ``fmt`` (e.g. ``"{:.2f}"``, ``"{:,}"``, ``"{:.0%}"``) and glue the
    text as ``name`` (myst-nb); returns the text.

    Prose pastes it with ``{glue:text}`name``` in the same notebook, and with
    ``{glue:text}`notebooks/NN_x.ipynb::name:s``` in another page (the trailing ``:s`` is needed
    there). The text is glued, not the number: myst-nb would print a glued 0.60 as "0.6" and
    cannot format a numpy float. The glued output's ``text/plain`` is the text, so nbval fails
    when the result behind it changes."""
    from myst_nb import glue

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"name must be letters, digits, '_' or '-', not starting with a digit; got {name!r}")
    text = fmt.format(value)
    glue(name, text, display=display)
    return text


class Table:
    """A plain table in the verdicts' style (e.g. per-variant numbers, a folded block of timings)
    that wraps at any width, unlike a printed monospace table. Cells are text (numbers are
    formatted with ``fmt``), ASCII math converted by `tex_html`. ``text/plain`` is the same table
    aligned in columns, for nbval."""

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "{:.3f}",
                 caption: str | None = None):
        self.header = [str(h) for h in header]
        self.rows = [[c if isinstance(c, str) else fmt.format(c) for c in r] for r in rows]
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.header)]
        if bad:
            raise ValueError(f"rows must have {len(self.header)} cells like the header; rows {bad} do not")
        self.caption = caption

    def __str__(self) -> str:
        table = [self.header, *self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        return "\n".join(([self.caption] if self.caption else []) + lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f'<th scope="col" style="{_HEAD}">{tex_html(h)}</th>' for h in self.header)
        body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{tex_html(c)}</td>' for c in r) + "</tr>"
                       for r in self.rows)
        caption = (f'<caption style="caption-side:top;text-align:left;padding-bottom:0.3em">'
                   f"{tex_html(self.caption)}</caption>" if self.caption else "")
        # a table of many numeric columns cannot wrap below its columns' widths: on a phone it
        # scrolls sideways inside its own box (the page and the output box keep their width)
        return (f'<div class="ssmax-table mathjax_process" style="{_BLOCK};overflow-x:auto">'
                f'<table style="{_TABLE}">'
                f"{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


# --------------------------------------------------------------------------- the method on the page
class Listing:
    """Lines of the package's own source, shown as code: the method on the page, not a copy of it.

    ``parts`` are (first, last) pairs of substrings: each selects the lines from the first that
    contains ``first`` to the next that contains ``last`` (inclusive); lines left out between parts
    show as ``...``. No parts: the whole object. The selection is read from the installed package
    when the notebook runs, so the page cannot drift from the code (nbval compares the text)."""

    def __init__(self, obj: Any, *parts: tuple[str, str], title: str | None = None):
        import inspect
        import textwrap

        lines = inspect.getsource(obj).splitlines()
        name = f"{obj.__module__}.{obj.__qualname__}"
        if not parts:
            chosen = lines
        else:
            chosen, pos = [], 0
            for first, last in parts:
                i = next((k for k in range(pos, len(lines)) if first in lines[k]), None)
                j = None if i is None else next((k for k in range(i, len(lines)) if last in lines[k]), None)
                if i is None or j is None:
                    raise ValueError(f"{name} has no lines from {first!r} to {last!r} (after line {pos})")
                if chosen or i > 0:
                    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
                    if i > pos or not chosen:
                        chosen.append(f"{indent}...") if chosen else None
                chosen += lines[i:j + 1]
                pos = j + 1
        self.code = textwrap.dedent("\n".join(chosen))
        self.title = title or f"{name}{' (excerpt)' if parts else ''}"

    def __str__(self) -> str:
        return f"# {self.title}\n{self.code}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_markdown_(self) -> str:
        return f"```python\n{self}\n```"


class Takeaway:
    """A short boxed paragraph for readers in a hurry (e.g. "What this means if you train
    models"): a title and a few sentences, computed elsewhere (`scorecard.practitioner`)."""

    def __init__(self, title: str, sentences: Sequence[str]):
        self.title, self.sentences = title, list(sentences)

    def __str__(self) -> str:
        return self.title + "\n" + "\n".join(f"- {s}" for s in self.sentences)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        body = "".join(f'<p style="margin:0.3em 0">{tex_html(s)}</p>' for s in self.sentences)
        return (f'<div class="ssmax-takeaway mathjax_process" style="border-left:4px solid #0072B2;'
                f"padding:0.4em 0.9em;margin:0.6em 0;{_WRAP};line-height:1.45;color:inherit\">"
                f'<p style="margin:0 0 0.3em 0;font-weight:600">{html.escape(self.title, quote=False)}</p>{body}</div>')
