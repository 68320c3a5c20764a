"""Tables and figure panels of the set-task chapter, read from stored results only.

Lines are (variant, eval_variant) pairs: the four trained variants, and the softmax models
scored with an inference-time fix ("logn", "adaptive_temperature"). Accuracies carry the seed
spread (min-max over seeds) and the binomial standard error of the seed-pooled accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import plots
from .claims import SET_SETTINGS, binomial_se, set_curves, set_experiment

LINES: tuple[tuple[str, Optional[str]], ...] = (
    ("softmax", None), ("ssmax", None), ("ssmax_fixed", None), ("asentmax", None),
    ("softmax", "logn"), ("softmax", "adaptive_temperature"))
THEORY_LINES: tuple[tuple[str, Optional[str]], ...] = (("softmax", None), ("ssmax", None), ("ssmax_fixed", None),
                                                       ("softmax", "logn"))


def style_key(variant: str, eval_variant: Optional[str] = None) -> str:
    return eval_variant or variant


def label(variant: str, eval_variant: Optional[str] = None) -> str:
    return plots.style(style_key(variant, eval_variant))["label"]


@dataclass
class Curve:
    sizes: np.ndarray
    mean: np.ndarray  # over seeds
    low: np.ndarray  # min over seeds
    high: np.ndarray  # max over seeds
    se: np.ndarray  # binomial standard error of the seed-pooled accuracy (accuracy only)
    seeds: int


def curve(results: dict, setting: str, variant: str, eval_variant: Optional[str] = None,
          key: str = "accuracy") -> Curve:
    sizes, values, trials = set_curves(results, setting, variant, eval_variant, key)
    mean = values.mean(0)
    se = np.array([binomial_se(m, int(t)) for m, t in zip(mean, trials)]) if key == "accuracy" else np.zeros_like(mean)
    return Curve(sizes, mean, values.min(0), values.max(0), se, values.shape[0])


def accuracy_table(results: dict, setting: str, lines=LINES) -> str:
    """Accuracy at every test size: seed mean, +- binomial SE, [min, max] over seeds."""
    first = curve(results, setting, *lines[0])
    width = 27
    rows = [f"{'':34s}" + "".join(f"{'n = ' + str(n):>{width}s}" for n in first.sizes)]
    for variant, ev in lines:
        c = curve(results, setting, variant, ev)
        cells = "".join(f"{f'{m:.3f} ±{s:.3f} [{lo:.3f}, {hi:.3f}]':>{width}s}"
                        for m, s, lo, hi in zip(c.mean, c.se, c.low, c.high))
        rows.append(f"{label(variant, ev)[:34]:34s}{cells}")
    return "\n".join(rows)


def validation_summary(results: dict) -> str:
    """Did every variant learn the task where it trains? Accuracy on the validation sets at the
    training sizes (n = 4..16 pooled), seed mean and range."""
    rows = []
    for setting in SET_SETTINGS:
        for variant in ("softmax", "ssmax", "ssmax_fixed", "asentmax"):
            runs = results[set_experiment(setting, variant)]
            acc = [sum(r["metrics"]["val"]["correct"]) / sum(r["metrics"]["val"]["trials"]) for r in runs]
            rows.append(f"{setting:17s} {label(variant):20s} {np.mean(acc):.3f} (seeds {min(acc):.3f}-{max(acc):.3f})")
    return "\n".join(rows)


def wall_minutes(results: dict, names: list[str]) -> float:
    """Recorded wall time of the stored runs (training and measuring), in minutes."""
    return sum(r["environment"]["wall_time_s"] for name in names for r in results[name]) / 60


def draw(ax, results: dict, setting: str, key: str = "accuracy", lines=LINES, band: bool = True) -> None:
    """Seed mean against n (log axis), with the min-max seed band."""
    for variant, ev in lines:
        c = curve(results, setting, variant, ev, key)
        st = plots.style(style_key(variant, ev))
        ax.plot(c.sizes, c.mean, marker="o", ms=3, **st)
        if band:
            plots.band(ax, c.sizes, c.low, c.high, st["color"], alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("set size $n$")


def theory(results: dict, setting: str, variant: str, eval_variant: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-margin prediction of the target weight on its fine grid of n, seed mean."""
    runs = results[set_experiment(setting, variant)]
    blocks = [r["metrics"] if eval_variant is None else r["metrics"]["eval_variants"][eval_variant] for r in runs]
    return np.asarray(blocks[0]["theory"]["n"]), np.mean([b["theory"]["target_weight"] for b in blocks], axis=0)


def margins(results: dict, setting: str, variant: str, eval_variant: Optional[str] = None,
            key: str = "margin") -> tuple[np.ndarray, np.ndarray]:
    """Median effective margin (or ``key="top_two_gap"``) against n, training sizes (validation
    sets) then test sizes, seed mean."""
    runs = results[set_experiment(setting, variant)]
    blocks = [r["metrics"] if eval_variant is None else r["metrics"]["eval_variants"][eval_variant] for r in runs]
    sizes = np.asarray(blocks[0]["val"]["set_sizes"] + blocks[0]["set_sizes"])
    values = np.mean([b["val"][key] + b[key] for b in blocks], axis=0)
    order = np.argsort(sizes, kind="stable")
    return sizes[order], values[order]


def learned(results: dict, setting: str) -> dict[str, tuple[float, float]]:
    """Seed range of what the models learned: s of (b), the gain g of the cosine logits, the
    margin at the training sizes."""
    out = {}
    runs = results[set_experiment(setting, "ssmax")]
    s = [r["metrics"]["learned_s"][0] for r in runs]
    out["s (b)"] = (min(s), max(s))
    for variant in ("softmax", "ssmax", "ssmax_fixed", "asentmax"):
        rs = results[set_experiment(setting, variant)]
        if rs[0]["metrics"]["gain"] is not None:
            g = [r["metrics"]["gain"] for r in rs]
            out[f"gain g {label(variant)}"] = (min(g), max(g))
        if variant != "asentmax":
            m = [r["metrics"]["margin_train"] for r in rs]
            out[f"margin at training sizes {label(variant)}"] = (min(m), max(m))
    return out

