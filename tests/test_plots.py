"""The book's figure style: every variant recognizable, every figure legible at the column width."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from ssmax.book import plots  # noqa: E402

KEYS_THE_CHAPTERS_NEED = ["a", "b", "c", "d", "e", "f", "learned_pn", "qwen_logn", "llama4_temp",
                          "log_train_len", "log512", "a-nope", "b-nope", "softmax", "ssmax", "ssmax_fixed",
                          "ssmax_bias", "asentmax", "logn_factor", "adaptive_temperature"]


@pytest.fixture(autouse=True)
def book_style():
    with matplotlib.rc_context():
        plots.use_book_style()
        yield
    plt.close("all")


@pytest.mark.parametrize("key", KEYS_THE_CHAPTERS_NEED)
def test_every_key_has_a_full_style(key):
    s = plots.style(key)
    assert set(s) == {"color", "label", "linestyle"}  # splats into plot, errorbar, axhline alike
    assert s["label"]
    with_markers = plots.style(key, markers=True)
    assert with_markers["marker"] and with_markers["markevery"] == 0.1


def test_every_variant_has_its_own_color_and_line_style_pair():
    pairs = {k: (plots.VARIANT_COLORS[k], repr(plots.VARIANT_LINESTYLES[k])) for k in plots.VARIANTS}
    assert len(set(pairs.values())) == len(pairs), pairs


@pytest.mark.parametrize("group", sorted(plots.GROUPS))
def test_keys_drawn_together_differ_in_color_too(group):
    keys = [plots.SCALING_TO_VARIANT.get(k, k) for k in plots.GROUPS[group]]
    pairs = [(plots.VARIANT_COLORS[k], repr(plots.VARIANT_LINESTYLES[k])) for k in keys]
    assert len(set(pairs)) == len(keys)
    colors = [plots.VARIANT_COLORS[k] for k in keys if not k.endswith("-nope")]
    assert len(set(colors)) == len(colors), f"{group}: two keys share a color"


def test_the_clashes_of_the_first_edition_are_gone():
    # (a)/(f) were blue/sky blue and (b)/log_T n vermillion/brown, all solid
    for x, y in (("a", "f"), ("b", "log_train_len")):
        assert plots.style(x)["linestyle"] != plots.style(y)["linestyle"]
        assert np.abs(np.subtract(to_rgb(plots.style(x)["color"]), to_rgb(plots.style(y)["color"]))).sum() > 0.5


def test_aliases_look_like_their_variant_and_keep_working():
    for alias, key in plots.SCALING_TO_VARIANT.items():
        assert plots.style(alias)["color"] == plots.style(key)["color"]
        assert plots.style(alias)["linestyle"] == plots.style(key)["linestyle"]
    assert plots.style("softmax")["label"] == "softmax"  # the set task's label, no paper letter
    assert plots.style("a")["label"] == "(a) softmax"


def test_unknown_key_names_the_allowed_ones():
    with pytest.raises(ValueError, match="key must be one of .*'a'.*; got 'z'"):
        plots.style("z")


@pytest.mark.parametrize("ncols, nrows, width", [(1, 1, None), (2, 1, 11.0), (3, 1, None), (3, 2, 12.0),
                                                 (4, 1, 20.0), (1, 3, None)])
def test_new_figure_never_exceeds_the_column(ncols, nrows, width):
    fig, axes = plots.new_figure(ncols=ncols, nrows=nrows, width=width)
    w, _ = fig.get_size_inches()
    assert w <= plots.MAX_WIDTH_IN + 1e-9
    assert len(np.atleast_1d(axes)) == ncols * nrows  # one panel each, in order, spares removed
    for ax in np.atleast_1d(axes):
        assert ax.get_position().width * w >= plots.MIN_PANEL_IN * 0.6  # no panel squeezed 3-up


def test_small_panels_are_stacked_and_height_grows():
    fig, axes = plots.new_figure(ncols=3, nrows=2, width=12.0, height=6.6)
    spec = axes[0].get_subplotspec().get_gridspec()
    assert (spec.nrows, spec.ncols) == (3, 2)
    assert fig.get_size_inches()[1] == pytest.approx(6.6 * 3 / 2)
    assert plots.first_column(axes) == [axes[0], axes[2], axes[4]]


def test_saved_png_is_sharp_and_fits_the_column():
    fig, axes = plots.new_figure(ncols=2)
    for ax in axes:
        ax.plot([1, 2, 3], [1, 4, 9], **plots.style("a"))
        ax.plot([1, 2, 3], [2, 3, 5], **plots.style("b"))
    plots.legend_below(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # the rcParams the inline backend uses: figure.dpi, tight bbox
    from PIL import Image

    width_px, _ = Image.open(io.BytesIO(buf.getvalue())).size
    width_in = width_px / plots.DPI
    assert plots.DPI >= 150 and fig.dpi == plots.DPI
    # shown scaled to the column: a 9-pt font must still show at >= 9 pt
    shown_scale = min(1.0, plots.COLUMN_PX / width_px) * plots.DPI / 96
    assert shown_scale >= 1.0, (width_in, shown_scale)


def test_fonts_are_at_least_9_pt():
    fig, ax = plots.new_figure()
    ax.plot([0, 1], [0, 1], **plots.style("a"))
    ax.set_title("t")
    ax.set_xlabel("x")
    plots.legend_below(fig)
    plots.heatmap(plots.new_figure()[1], np.eye(2), ["x", "y"], ["u", "v"])
    fig.canvas.draw()
    for f in plt.get_fignums():
        figure = plt.figure(f)
        figure.canvas.draw()
        texts = [t for t in figure.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
        assert texts
        assert min(t.get_fontsize() for t in texts) >= plots.MIN_FONT_PT


def test_legend_below_sits_under_the_panels():
    fig, axes = plots.new_figure(ncols=2)
    axes[0].plot([0, 1], [0, 1], **plots.style("a"))
    axes[1].plot([0, 1], [1, 0], **plots.style("a"))  # the same label once
    axes[1].plot([0, 1], [1, 1], **plots.style("b"))
    legend = plots.legend_below(fig)
    fig.canvas.draw()
    assert [t.get_text() for t in legend.get_texts()] == ["(a) softmax", "(b) SSMax"]
    box = legend.get_window_extent()
    assert all(box.y1 <= ax.get_window_extent().y0 + 1 for ax in axes)


def test_legend_below_needs_labels_and_constrained_layout():
    fig, ax = plt.subplots()
    ax.plot([0, 1], label="x")
    with pytest.raises(ValueError, match="constrained"):
        plots.legend_below(fig)
    fig, ax = plots.new_figure()
    ax.plot([0, 1])
    with pytest.raises(ValueError, match="no labeled artists"):
        plots.legend_below(fig)


def test_plot_difference_subtracts_the_reference_mean_and_bands_the_seeds():
    x = np.arange(4)
    a = np.array([[1.0, 1, 1, 1], [3, 3, 3, 3]])  # mean 2
    b = np.array([[1.5, 1.5, 1.5, 1.5], [2.5, 2.5, 2.5, 2.5]])
    fig, ax = plots.new_figure()
    diffs = plots.plot_difference(ax, x, {"a": a, "b": b, "d": np.full(4, 5.0)})
    np.testing.assert_allclose(diffs["b"], 0.0)
    np.testing.assert_allclose(diffs["d"], 3.0)
    assert len(ax.collections) == 2  # (a)'s band around 0 and (b)'s; (d) has one seed
    paired = plots.plot_difference(plots.new_figure()[1], x, {"a": a, "b": b}, paired=True)
    np.testing.assert_allclose(paired["b"], 0.0)  # seed by seed: +0.5 and -0.5
    with pytest.raises(ValueError, match="same seeds"):
        plots.plot_difference(ax, x, {"a": a, "b": b[:1]}, paired=True)
    with pytest.raises(ValueError, match="reference must be one of"):
        plots.plot_difference(ax, x, {"b": b})
