"""One figure style for the whole book, sized so that a figure reads on a phone as on a laptop.

Sizes. On a phone (390 px) an output image is 342 px wide, so a figure ``W`` in wide is shown at
``342 / (96 W)`` of its print size and an ``F``-pt font at ``F * 4.75 / W`` CSS px. Figures are
therefore at most ``MAX_WIDTH_IN`` = 5.2 in wide and fonts at least ``MIN_FONT_PT`` = 9 pt: the
smallest text is at least 8 px on a phone (the book's browser check measures it). On a laptop
`show` gives the image ``ZOOM`` times its print size (fonts of 9 pt show at about 14 px), and
a tap or click opens it full size. PNG at ``DPI`` = 150 (sharp at 1x and readable at 2x); not
SVG, whose text nbval would compare byte for byte.

`new_figure` never goes wider than ``MAX_WIDTH_IN`` and never leaves an empty cell in its grid:
panels that would be narrower than ``MIN_PANEL_IN`` are stacked, in as many columns as divide
the panels evenly. `legend_below` puts the legend under the panels, off the data;
`plot_difference` draws each variant minus a reference, with seed bands, where curves tangle.
`show` displays a figure with a record of itself in the PNG (``ssmax:*`` text chunks: smallest
font, panels, grid, longest legend), which the browser check reads.

Variants are keyed as in the paper's Figs. 4-8, "a".."f", plus the book's own runs (`VARIANTS`).
Every key has its own (color, line style) pair and a marker; colors are Okabe-Ito (distinguishable
with every common color-vision deficiency) plus two of Paul Tol's, and within each group of keys
drawn together (`GROUPS`) the colors differ as well. The model's ``scaling`` names are aliases
(`SCALING_TO_VARIANT`): the same look as the paper's letter, with the label without the letter.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "VARIANT_LABELS",
    "VARIANT_COLORS",
    "VARIANT_LINESTYLES",
    "VARIANT_MARKERS",
    "SCALING_TO_VARIANT",
    "GROUPS",
    "COLUMN_PX",
    "MAX_WIDTH_IN",
    "DPI",
    "MIN_FONT_PT",
    "use_book_style",
    "style",
    "new_figure",
    "first_column",
    "legend_below",
    "band",
    "plot_difference",
    "heatmap",
    "figure_record",
    "show",
]

COLUMN_PX = 672  # an output image's widest at a 1280-px window
PHONE_PX = 342  # an output image's width on a 390-px phone
MAX_WIDTH_IN = 5.2
MIN_PANEL_IN = 2.4  # narrower panels are stacked into rows
ZOOM = 1.2  # shown at this many times its print size where the column allows (`show`)
PANEL_HEIGHT_IN = 2.7  # per row, in multi-panel figures
DPI = 150
MIN_FONT_PT = 9.0

# Okabe-Ito, plus Tol's indigo and wine; gray for a baseline.
BLUE, VERMILLION, ORANGE, PURPLE, GREEN, SKY, BLACK = (
    "#0072B2", "#D55E00", "#E69F00", "#CC79A7", "#009E73", "#56B4E9", "#000000")
INDIGO, WINE, TEAL, GRAY = "#332288", "#882255", "#44AA99", "#666666"

# key: (label, color, linestyle, marker)
VARIANTS: dict[str, tuple[str, str, object, str]] = {
    # the paper's variants (Figs. 4-8)
    "a": ("(a) softmax", BLUE, "-", "o"),
    "b": ("(b) SSMax", VERMILLION, "-", "s"),
    "c": ("(c) SSMax, s = 1", ORANGE, "--", "^"),
    "d": ("(d) SSMax + bias", PURPLE, "-.", "D"),
    "e": ("(e) switched after pretraining", GREEN, ":", "v"),
    "f": ("(f) switched during pretraining", BLACK, (0, (6, 2, 1, 2, 1, 2)), "P"),
    # chapter 2's free per-position scale
    "learned_pn": ("learned $p_n$ (Fig. 2)", INDIGO, "-", "."),
    # inference-time log-n scalings of a softmax model (ssmax.baselines)
    "qwen_logn": ("Qwen log-n (beyond T)", SKY, "--", "x"),
    "llama4_temp": ("Llama 4 temperature", GRAY, "-.", "+"),
    "log_train_len": ("$\\log_{T} n$ (Su)", WINE, ":", "*"),
    # NoPE (no position embedding): the RoPE variant's color, dotted, hollow marker
    "a-nope": ("(a) softmax, NoPE", BLUE, (0, (1, 1.5)), "o"),
    "b-nope": ("(b) SSMax, NoPE", VERMILLION, (0, (1, 1.5)), "s"),
    # the set task: softmax / ssmax / ssmax_fixed are aliases of a / b / c (below)
    "asentmax": ("ASEntmax", TEAL, (0, (5, 1.5)), "h"),
    # evaluation-time scalings on the set task
    "logn_factor": ("softmax + log n factor (evaluation)", SKY, (0, (3, 1, 1, 1)), "X"),
    "adaptive_temperature": ("softmax + adaptive temperature (evaluation)", GRAY, (0, (8, 2)), "d"),
}

# The model's `scaling` names (and older keys) -> the key whose look they share, and their label.
SCALING_TO_VARIANT = {"softmax": "a", "ssmax": "b", "ssmax_fixed": "c", "ssmax_bias": "d", "log512": "log_train_len"}
_ALIAS_LABELS = {"softmax": "softmax", "ssmax": "SSMax", "ssmax_fixed": "SSMax, s = 1", "ssmax_bias": "SSMax + bias"}

# Keys drawn in one figure: their colors differ (besides their line styles), except the NoPE
# pairs, which share their RoPE variant's color on purpose.
GROUPS: dict[str, tuple[str, ...]] = {
    "paper": ("a", "b", "c", "d", "e", "f"),
    "inference-time baselines": ("a", "b", "qwen_logn", "llama4_temp", "log_train_len"),
    "NoPE": ("a", "b", "a-nope", "b-nope"),
    "set task": ("softmax", "ssmax", "ssmax_fixed", "asentmax", "logn_factor", "adaptive_temperature"),
    "chapter 2": ("b", "learned_pn"),
}

VARIANT_LABELS = {k: v[0] for k, v in VARIANTS.items()}
VARIANT_COLORS = {k: v[1] for k, v in VARIANTS.items()}
VARIANT_LINESTYLES = {k: v[2] for k, v in VARIANTS.items()}
VARIANT_MARKERS = {k: v[3] for k, v in VARIANTS.items()}
for _alias, _key in SCALING_TO_VARIANT.items():
    VARIANT_LABELS[_alias] = _ALIAS_LABELS.get(_alias, VARIANT_LABELS[_key])
    VARIANT_COLORS[_alias] = VARIANT_COLORS[_key]
    VARIANT_LINESTYLES[_alias] = VARIANT_LINESTYLES[_key]
    VARIANT_MARKERS[_alias] = VARIANT_MARKERS[_key]

HEATMAP_CMAP = "viridis"


def use_book_style() -> None:
    """Set the book's rcParams (call once at the top of every notebook)."""
    mpl.rcParams.update({
        "figure.figsize": (MAX_WIDTH_IN, 3.6),
        "figure.dpi": DPI,  # the inline backend renders PNGs at the figure's dpi
        "savefig.dpi": DPI,
        "savefig.bbox": "tight",
        "savefig.pad_inches": 0.04,
        "font.size": 10,
        "axes.titlesize": 10.5,
        "axes.labelsize": 10,
        "figure.titlesize": 11,
        "legend.fontsize": MIN_FONT_PT,
        "legend.title_fontsize": MIN_FONT_PT,
        "xtick.labelsize": MIN_FONT_PT,
        "ytick.labelsize": MIN_FONT_PT,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "lines.linewidth": 1.8,
        "lines.markersize": 4,
        "image.cmap": HEATMAP_CMAP,
    })


def _canonical(key: str) -> str:
    if key in VARIANTS or key in SCALING_TO_VARIANT:
        return key
    raise ValueError(f"key must be one of {sorted(VARIANTS)} or {sorted(SCALING_TO_VARIANT)}; got {key!r}")


def style(key: str, markers: bool = False, markevery: float | int | None = 0.1) -> dict:
    """``color``, ``label`` and ``linestyle`` for a variant key (or a model ``scaling`` name),
    ready to splat into ``ax.plot(x, y, **plots.style("b"))``; with ``markers=True`` also its
    ``marker`` (every ``markevery``: a fraction of the axes' diagonal, so dense curves get a
    few; None for every point)."""
    key = _canonical(key)
    out = {"color": VARIANT_COLORS[key], "label": VARIANT_LABELS[key], "linestyle": VARIANT_LINESTYLES[key]}
    if markers:
        out["marker"] = VARIANT_MARKERS[key]
        if markevery is not None:
            out["markevery"] = markevery
        if key in ("a-nope", "b-nope"):
            out["markerfacecolor"] = "none"
    return out


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None,
               min_panel_width: float = MIN_PANEL_IN, **kw):
    """A figure with ``nrows x ncols`` panels, at most ``MAX_WIDTH_IN`` wide; returns
    ``(fig, axes)``, ``axes`` a flat array in reading order when there is more than one panel,
    else the single Axes.

    A wider ``width`` is capped. Panels that would be narrower than ``min_panel_width`` are
    stacked: the panels keep their order, in as many columns as fit, and ``height`` (the height
    asked for ``nrows`` rows) grows with the number of rows. Use `first_column` to label y axes.
    Constrained layout, so `legend_below` can place a legend outside the panels."""
    if ncols < 1 or nrows < 1:
        raise ValueError(f"ncols and nrows must be >= 1; got ncols={ncols}, nrows={nrows}")
    panels = ncols * nrows
    base_w, base_h = mpl.rcParams["figure.figsize"]
    width = min(width if width is not None else (base_w if ncols == 1 else MAX_WIDTH_IN), MAX_WIDTH_IN)
    cols = ncols if width / ncols >= min_panel_width else max(1, int(width // min_panel_width))
    cols = min(cols, panels)
    while panels % cols:  # no empty cell: as many columns as divide the panels evenly
        cols -= 1
    rows = panels // cols
    if height is None:
        height = base_h * rows if cols == 1 and panels == 1 else PANEL_HEIGHT_IN * rows
    else:
        height = height * rows / nrows
    kw.setdefault("layout", "constrained")
    fig, grid = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, **kw)
    axes = grid.ravel()
    for spare in axes[panels:]:
        spare.remove()
    axes = axes[:panels]
    return fig, (axes[0] if axes.size == 1 else axes)


def first_column(axes) -> list:
    """The panels in the figure's first column (where y labels go), whatever `new_figure` stacked."""
    return [ax for ax in np.atleast_1d(axes) if ax.get_subplotspec().is_first_col()]


def legend_below(fig, axes=None, ncols: int | None = None, **kw):
    """One legend for the figure, under its panels (off the data): the labeled artists of
    ``axes`` (default: every panel), each label once. Needs constrained layout (`new_figure`)."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    if not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine):
        raise ValueError("legend_below needs a figure with layout='constrained' (plots.new_figure makes one)")
    handles, labels = [], []
    for ax in (fig.axes if axes is None else np.atleast_1d(axes)):
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if not handles:
        raise ValueError("no labeled artists to put in a legend (pass label=... when plotting)")
    if ncols is None:
        ncols = min(len(handles), 3 if max(len(s) for s in labels) <= 22 else 2)
    kw.setdefault("loc", "outside lower center")
    return fig.legend(handles, labels, ncols=ncols, **kw)


def band(ax, x, lo, hi, color, alpha: float = 0.2, **kw):
    """Shade the min–max range over seeds between ``lo`` and ``hi``."""
    return ax.fill_between(np.asarray(x), np.asarray(lo), np.asarray(hi), color=color, alpha=alpha,
                           linewidth=0, **kw)


def plot_difference(ax, x, curves: Mapping[str, np.ndarray], reference: str = "a",
                    keys: Sequence[str] | None = None, paired: bool = False, markers: bool = True,
                    ylabel: str | None = None) -> dict[str, np.ndarray]:
    """Each variant's curve minus the reference's, where the raw curves tangle (e.g. loss
    beyond the training length): a line below 0 is below the reference.

    ``curves`` maps keys to arrays of shape (seeds, points) (or (points,) for one seed). The
    reference's own seed spread is shaded around 0 (a difference inside it is seed noise); each
    variant's line is the mean over its seeds of (variant - reference mean), shaded min-max over
    seeds. With ``paired=True`` (the same seeds, i.e. the same data order, for both) each seed
    is compared with the reference's same seed instead. Returns the plotted mean differences."""
    if reference not in curves:
        raise ValueError(f"reference must be one of the keys of curves {sorted(curves)}; got {reference!r}")
    ref = np.atleast_2d(np.asarray(curves[reference], dtype=float))
    ref_mean = ref.mean(0)
    x = np.asarray(x)
    ref_style = style(reference)
    ax.axhline(0.0, color=ref_style["color"], linestyle=ref_style["linestyle"], linewidth=1.2,
               label=f"{ref_style['label']} (reference)")
    if ref.shape[0] > 1 and not paired:
        band(ax, x, ref.min(0) - ref_mean, ref.max(0) - ref_mean, ref_style["color"], alpha=0.15)
    out = {}
    for key in keys if keys is not None else [k for k in curves if k != reference]:
        c = np.atleast_2d(np.asarray(curves[key], dtype=float))
        if paired:
            if c.shape != ref.shape:
                raise ValueError(f"paired=True needs the same seeds for {key!r} and {reference!r}; "
                                 f"got shapes {c.shape} and {ref.shape}")
            d = c - ref
        else:
            d = c - ref_mean
        out[key] = d.mean(0)
        ax.plot(x, out[key], **style(key, markers=markers))
        if d.shape[0] > 1:
            band(ax, x, d.min(0), d.max(0), VARIANT_COLORS[key])
    ax.set_ylabel(ylabel if ylabel is not None else f"difference from {ref_style['label']}")
    return out


def heatmap(ax, matrix, xlabels: Sequence, ylabels: Sequence, vmin: float = 0.0, vmax: float = 1.0,
            annotate: bool = True, fmt: str = "{:.2f}", cmap: str = HEATMAP_CMAP):
    """Draw ``matrix`` (rows = ``ylabels``, columns = ``xlabels``) as colored cells, optionally
    with each value written in it; returns the image for ``fig.colorbar``. NaN cells stay blank."""
    m = np.asarray(matrix, dtype=float)
    if m.shape != (len(ylabels), len(xlabels)):
        raise ValueError(f"matrix shape {m.shape} does not match (len(ylabels), len(xlabels)) = "
                         f"({len(ylabels)}, {len(xlabels)})")
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto", origin="upper")
    ax.set_xticks(range(len(xlabels)), [str(v) for v in xlabels])
    ax.set_yticks(range(len(ylabels)), [str(v) for v in ylabels])
    ax.grid(False)
    finite = m[np.isfinite(m)]
    ax._ssmax_uniform = bool(finite.size > 1 and np.all(finite == finite[0]))  # recorded by `show`
    if annotate:
        cm = plt.get_cmap(cmap)
        for (r, c), v in np.ndenumerate(m):
            if np.isnan(v):
                continue
            frac = (v - vmin) / (vmax - vmin) if vmax > vmin else 0.5
            lum = np.dot(cm(float(np.clip(frac, 0, 1)))[:3], [0.299, 0.587, 0.114])
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=MIN_FONT_PT,
                    color="black" if lum > 0.5 else "white")
    return im


def figure_record(fig) -> dict[str, str]:
    """What a reader's view of ``fig`` depends on, as `show` stores it in the PNG: the smallest
    font of any visible text (pt), the panels and the grid they sit in (cells of a grid with no
    panel are empty), the longest legend and whether a heatmap shows one number in every cell."""
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    fig.canvas.draw()  # lays out ticks and legends as they will be saved
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.figure is fig and t.get_window_extent().width > 0]
    cells: set[tuple[int, int]] = set()
    grid = (1, 1)
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is None or not ax.get_visible():
            continue  # colorbars and insets are not panels
        grid = spec.get_gridspec().get_geometry()
        cells |= {(r, c) for r in spec.rowspan for c in spec.colspan}
    legends = [x for x in fig.findobj(Legend)]
    return {"min_font_pt": f"{min(sizes):g}" if sizes else f"{MIN_FONT_PT:g}",
            "panels": str(len(cells)), "grid": f"{grid[0]}x{grid[1]}",
            "legend": str(max((len(lg.get_texts()) for lg in legends), default=0)),
            "uniform": str(any(getattr(ax, "_ssmax_uniform", False) for ax in fig.axes)).lower()}


def show(fig=None) -> None:
    """Display ``fig`` (default: the current figure) in a notebook as the book shows it: a PNG at
    ``DPI`` that records `figure_record` in its text chunks, shown at ``ZOOM`` times its print size
    (the column and the book's CSS cap it). Closes the figure."""
    import io

    from IPython.display import Image, display
    from PIL import Image as PILImage

    fig = plt.gcf() if fig is None else fig
    record = figure_record(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={f"ssmax:{k}": v for k, v in record.items()})
    plt.close(fig)
    data = buf.getvalue()
    with PILImage.open(io.BytesIO(data)) as im:
        px = im.size[0]
    display(Image(data=data, format="png", width=round(px * 96 / DPI * ZOOM)))
