"""One figure style for the whole book: rcParams, one colour and label per variant, and three
small helpers (a figure with a row of panels, a min–max seed band, an annotated heatmap).

Variants are keyed as in the paper's Figs. 4–8, "a".."f"; the inference-time baselines by their
names in `ssmax.baselines`. Colours are Okabe–Ito (colour-blind safe), with (a) softmax blue and
(b) SSMax red-ish as in the paper; baselines are drawn dashed.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "VARIANT_LABELS",
    "VARIANT_COLORS",
    "VARIANT_LINESTYLES",
    "SCALING_TO_VARIANT",
    "use_book_style",
    "style",
    "new_figure",
    "band",
    "heatmap",
]

VARIANT_LABELS = {
    "a": "(a) softmax",
    "b": "(b) SSMax",
    "c": "(c) SSMax, s = 1",
    "d": "(d) SSMax + bias",
    "e": "(e) switched after pretraining",
    "f": "(f) switched during pretraining",
    "learned_pn": "learned $p_n$ (Fig. 2)",
    "qwen_logn": "Qwen log-n (beyond T)",
    "llama4_temp": "Llama 4 temperature",
    "log512": "$\\log_{T} n$ (Su)",
    # set tasks (chapter "fading in isolation")
    "asentmax": "ASEntmax",
    "logn": "(a) + $\\log_{16} n$ beyond 16",
    "adaptive_temperature": "(a) + adaptive temperature",
}

VARIANT_COLORS = {
    "a": "#0072B2",  # blue
    "b": "#D55E00",  # vermillion
    "c": "#E69F00",  # orange
    "d": "#CC79A7",  # reddish purple
    "e": "#009E73",  # bluish green
    "f": "#56B4E9",  # sky blue
    "learned_pn": "#332288",  # indigo (Tol)
    "qwen_logn": "#000000",
    "llama4_temp": "#888888",
    "log512": "#994F00",  # brown
    "asentmax": "#882255",  # wine (Tol)
    "logn": "#000000",
    "adaptive_temperature": "#44AA99",  # teal (Tol)
}

VARIANT_LINESTYLES = {key: "-" for key in "abcdef"}
VARIANT_LINESTYLES.update({"learned_pn": "-", "qwen_logn": "--", "llama4_temp": "--", "log512": "--",
                           "asentmax": "-", "logn": "--", "adaptive_temperature": "--"})

# `ssmax.baselines` calls the log_T(n) baseline "log_train_len"; the model's `scaling` names map
# onto the paper's letters.
for _table in (VARIANT_LABELS, VARIANT_COLORS, VARIANT_LINESTYLES):
    _table["log_train_len"] = _table["log512"]
SCALING_TO_VARIANT = {"softmax": "a", "ssmax": "b", "ssmax_fixed": "c", "ssmax_bias": "d",
                      "learned_pn": "learned_pn"}

HEATMAP_CMAP = "viridis"


def use_book_style() -> None:
    """Set the book's rcParams (call once at the top of every notebook)."""
    mpl.rcParams.update({
        "figure.figsize": (6.4, 3.8),
        "figure.dpi": 110,
        "savefig.dpi": 110,
        "savefig.bbox": "tight",
        "font.size": 10.5,
        "axes.titlesize": 11,
        "axes.labelsize": 10.5,
        "legend.fontsize": 9,
        "xtick.labelsize": 9.5,
        "ytick.labelsize": 9.5,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "lines.linewidth": 1.8,
        "image.cmap": HEATMAP_CMAP,
    })


def style(key: str) -> dict:
    """``color``, ``label`` and ``linestyle`` for a variant key (or a model ``scaling`` name),
    ready to splat into ``ax.plot(x, y, **plots.style("b"))``."""
    key = SCALING_TO_VARIANT.get(key, key)
    if key not in VARIANT_COLORS:
        raise ValueError(f"key must be one of {sorted(VARIANT_COLORS)} or {sorted(SCALING_TO_VARIANT)}; got {key!r}")
    return {"color": VARIANT_COLORS[key], "label": VARIANT_LABELS[key], "linestyle": VARIANT_LINESTYLES[key]}


def new_figure(ncols: int = 1, nrows: int = 1, width: float | None = None, height: float | None = None, **kw):
    """A figure with ``nrows x ncols`` panels; returns ``(fig, axes)`` with ``axes`` a flat
    array when there is more than one panel, else the single Axes. Width grows with ``ncols``."""
    base_w, base_h = mpl.rcParams["figure.figsize"]
    if width is None:
        width = base_w if ncols == 1 else min(3.6 * ncols, 13.0)
    if height is None:
        height = base_h * nrows if ncols == 1 else 3.4 * nrows
    kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, **kw)
    axes = axes.ravel()
    return fig, (axes[0] if axes.size == 1 else axes)


def band(ax, x, lo, hi, color, alpha: float = 0.2, **kw):
    """Shade the min–max range over seeds between ``lo`` and ``hi``."""
    return ax.fill_between(np.asarray(x), np.asarray(lo), np.asarray(hi), color=color, alpha=alpha,
                           linewidth=0, **kw)


def heatmap(ax, matrix, xlabels: Sequence, ylabels: Sequence, vmin: float = 0.0, vmax: float = 1.0,
            annotate: bool = True, fmt: str = "{:.2f}", cmap: str = HEATMAP_CMAP):
    """Draw ``matrix`` (rows = ``ylabels``, columns = ``xlabels``) as coloured cells, optionally
    with each value written in it; returns the image for ``fig.colorbar``. NaN cells stay blank."""
    m = np.asarray(matrix, dtype=float)
    if m.shape != (len(ylabels), len(xlabels)):
        raise ValueError(f"matrix shape {m.shape} does not match (len(ylabels), len(xlabels)) = "
                         f"({len(ylabels)}, {len(xlabels)})")
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto", origin="upper")
    ax.set_xticks(range(len(xlabels)), [str(v) for v in xlabels])
    ax.set_yticks(range(len(ylabels)), [str(v) for v in ylabels])
    ax.grid(False)
    if annotate:
        cm = plt.get_cmap(cmap)
        for (r, c), v in np.ndenumerate(m):
            if np.isnan(v):
                continue
            frac = (v - vmin) / (vmax - vmin) if vmax > vmin else 0.5
            lum = np.dot(cm(float(np.clip(frac, 0, 1)))[:3], [0.299, 0.587, 0.114])
            ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8,
                    color="black" if lum > 0.5 else "white")
    return im
