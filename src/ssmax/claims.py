"""The paper's claims, each checked from stored results by a function, never typed by hand.

Chapters call these functions in their claim cells, and the scorecard calls all of them, so a
verdict is computed in one place. Each returns a `Verdict`: reproduced if every part of the
claim holds, partly if some parts do, not reproduced if none does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly", "not reproduced"


@dataclass
class Verdict:
    claim_id: str
    source: str  # where the paper makes the claim
    statement: str
    measured: str  # our numbers, formatted
    spread: str  # seed or binomial spread behind the comparison
    parts: dict[str, bool] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        held = sum(self.parts.values())
        if held == len(self.parts):
            return REPRODUCED
        return PARTLY if held else NOT_REPRODUCED

    def __str__(self) -> str:
        lines = [f"[{self.verdict.upper()}] {self.source}: {self.statement}", f"  measured: {self.measured}",
                 f"  spread:   {self.spread}"]
        lines += [f"  {'holds' if ok else 'fails'}: {part}" for part, ok in self.parts.items()]
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def seed_stats(values: list[float]) -> tuple[float, float, float]:
    """Mean, min and max over seeds."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.min()), float(arr.max())


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy p measured on n independent trials."""
    return math.sqrt(max(p * (1 - p), 1e-12) / n) if n else float("nan")


# --- chapter 3: pretraining loss (Fig. 4) ----------------------------------------------------

def final_losses(results: dict[str, list[dict]], variant: str) -> list[float]:
    return [r["metrics"]["final_val_loss"] for r in results[f"pretrain-{variant}"]]


def clearly_below(values: list[float], reference: list[float]) -> bool:
    """mean(values) < mean(reference) - spread(reference): below by more than the reference's
    seed spread (max - min), so seed noise alone cannot produce it."""
    ref_mean, ref_min, ref_max = seed_stats(reference)
    return float(np.mean(values)) < ref_mean - (ref_max - ref_min)


def _range(values: list[float]) -> str:
    return f"{_fmt(min(values))}-{_fmt(max(values))} over {len(values)} seed(s)"


def pretraining_loss(results: dict[str, list[dict]]) -> Verdict:
    """Fig. 4: every SSMax variant ends below softmax, by more than (a)'s seed spread; the bias
    variant is lowest; s = 1 is close to learned s (within (b)'s seed spread or 1%)."""
    losses = {v: final_losses(results, v) for v in "abcd"}
    means = {v: float(np.mean(x)) for v, x in losses.items()}
    close_tol = max(max(losses["b"]) - min(losses["b"]), 0.01 * means["b"])
    parts = {f"({v}) below (a) by more than (a)'s seed spread": clearly_below(losses[v], losses["a"]) for v in "bcd"}
    parts["(d) has the lowest loss of (a)-(d)"] = means["d"] == min(means.values())
    parts[f"(c) within {close_tol:.3f} of (b) (max of (b)'s seed spread and 1%)"] = abs(means["c"] - means["b"]) <= close_tol
    measured = ", ".join(f"({v}) {_fmt(means[v])}" for v in "abcd")
    return Verdict("fig4", "Fig. 4", "SSMax variants (b)-(d) reach lower pretraining loss than softmax (a); "
                   "(d) lowest; (c) close to (b)", f"final validation loss (seed mean) {measured}",
                   f"(a) {_range(losses['a'])}; (b) {_range(losses['b'])}", parts)


# --- chapter 2: why log n (Fig. 2) -----------------------------------------------------------

def fit_curves(n: np.ndarray, p: np.ndarray) -> dict[str, dict]:
    """Two-parameter least-squares fits of p_n, each with its R^2 on the same points:
    log a1 log n + a2, linear a1 n + a2, and power law a1 n^k (k by a fine grid search, a1 in
    closed form). The power law has no offset: with one, n^k -> 1 + k log n as k -> 0 and the
    power law would contain the log fit instead of competing with it."""
    n = np.asarray(n, dtype=float)
    p = np.asarray(p, dtype=float)
    total = float(((p - p.mean()) ** 2).sum())

    def r2(pred: np.ndarray) -> float:
        return 1 - float(((pred - p) ** 2).sum()) / total

    def linfit(feature: np.ndarray) -> dict:
        design = np.stack([feature, np.ones_like(feature)], 1)
        coef, *_ = np.linalg.lstsq(design, p, rcond=None)
        return {"a1": float(coef[0]), "a2": float(coef[1]), "r2": r2(design @ coef)}

    fits = {"log": linfit(np.log(n)), "linear": linfit(n)}
    best = None
    for k in np.round(np.arange(-1.0, 2.0001, 0.005), 3):
        feature = n ** k
        a1 = float((feature * p).sum() / (feature * feature).sum())
        score = r2(a1 * feature)
        if best is None or score > best["r2"]:
            best = {"a1": a1, "k": float(k), "r2": score}
    fits["power"] = best
    return fits


def learned_pn_is_logarithmic(results: dict[str, list[dict]], skip_first: int = 1) -> Verdict:
    """Fig. 2: the learned per-position scale p_n follows a1 log n + a2 better than a linear or
    a power-law fit. n = 1 is left out (its factor multiplies a single key and gets no gradient)."""
    p = np.asarray(results["learned-pn"][0]["metrics"]["learned_p_n"])
    n = np.arange(1, len(p) + 1)[skip_first:]
    fits = fit_curves(n, p[skip_first:])
    log_r2 = fits["log"]["r2"]
    parts = {"log fit has a higher R^2 than the linear fit": log_r2 > fits["linear"]["r2"],
             "log fit has a higher R^2 than the best power law a1 n^k": log_r2 > fits["power"]["r2"],
             "the log fit rises with n (a1 > 0)": fits["log"]["a1"] > 0}
    measured = (f"R^2 log {fits['log']['r2']:.3f} (a1 {fits['log']['a1']:.3f}, a2 {fits['log']['a2']:.3f}), "
                f"linear {fits['linear']['r2']:.3f}, power (k={fits['power']['k']:.2f}) {fits['power']['r2']:.3f}")
    return Verdict("fig2", "Fig. 2", "the learned p_n grows like a1 log n + a2", measured,
                   "one run (seed 0); R^2 on the same points", parts)


# --- chapter 4: length generalization (Fig. 5) ------------------------------------------------

def window_loss(result: dict, key: str, lo: int, hi: int) -> float:
    """Mean per-position loss over 1-based positions (lo, hi] of one stored curve."""
    curve = result["metrics"]["curves"][key]["curve"]
    return float(np.mean(curve[lo:hi]))


def lengthgen_windows(results: dict[str, list[dict]], variant: str, lo: int, hi: int, theta: int = 50,
                      label: str = "model") -> list[float]:
    """One value per seed: the mean loss of a variant (or a baseline of (a)) over (lo, hi]."""
    name = "lengthgen-baselines" if label != "model" else f"lengthgen-{variant}"
    return [window_loss(r, f"{label}@theta_x{theta}", lo, hi) for r in results[name]]


def length_generalization(results: dict[str, list[dict]], train_len: int, theta: int = 50) -> Verdict:
    """Fig. 5 (theta x 50): (b) and (c) beat (a) beyond T; (d) is worse than (b) beyond T;
    (e) is worse than (a) within T; (f) lies between (a) and (b) beyond T."""
    T = train_len
    end = len(results["lengthgen-a"][0]["metrics"]["curves"][f"model@theta_x{theta}"]["curve"])
    beyond = {v: lengthgen_windows(results, v, T, end, theta) for v in "abcdef"}
    within = {v: lengthgen_windows(results, v, 0, T, theta) for v in "ae"}
    m = {v: float(np.mean(x)) for v, x in beyond.items()}
    parts = {
        f"(b) below (a) beyond T by more than (a)'s seed spread": clearly_below(beyond["b"], beyond["a"]),
        f"(c) below (a) beyond T by more than (a)'s seed spread": clearly_below(beyond["c"], beyond["a"]),
        "(d) above (b) beyond T by more than (b)'s seed spread": m["d"] > m["b"] + (max(beyond["b"]) - min(beyond["b"])),
        "(e) above (a) within [1,T] by more than (a)'s seed spread": float(np.mean(within["e"])) >
        float(np.mean(within["a"])) + (max(within["a"]) - min(within["a"])),
        "(f) between (b) and (a) beyond T": m["b"] < m["f"] < m["a"],
    }
    measured = (f"mean loss over (T,{end // T}T] at theta x{theta}: " + ", ".join(f"({v}) {_fmt(m[v])}" for v in "abcdef")
                + f"; within [1,T]: (a) {_fmt(np.mean(within['a']))}, (e) {_fmt(np.mean(within['e']))}")
    return Verdict("fig5", "Fig. 5", "SSMax (b), (c) generalize beyond the training length better than (a); "
                   "(d) degrades; (e) struggles at short context; (f) is close to (b)", measured,
                   f"(a) {_range(beyond['a'])}; (b) {_range(beyond['b'])}", parts)


def ssmax_vs_inference_scalings(results: dict[str, list[dict]], baselines: tuple[str, ...], train_len: int,
                                theta: int = 50) -> Verdict:
    """Our question, not the paper's: does training-time SSMax (b) beat the inference-time
    log-n scalings applied to (a), beyond T?"""
    T = train_len
    end = len(results["lengthgen-a"][0]["metrics"]["curves"][f"model@theta_x{theta}"]["curve"])
    b = lengthgen_windows(results, "b", T, end, theta)
    base = {name: lengthgen_windows(results, "a", T, end, theta, label=name) for name in baselines}
    parts = {f"(b) below (a)+{name} beyond T by more than its seed spread": clearly_below(b, vals)
             for name, vals in base.items()}
    measured = f"(b) {_fmt(np.mean(b))}; " + ", ".join(f"(a)+{k} {_fmt(np.mean(v))}" for k, v in base.items())
    return Verdict("logn-baselines", "open question (chapter 4)",
                   "training-time SSMax beats inference-time log-n scalings of a softmax model beyond T",
                   measured, f"(b) {_range(b)}", parts)


# --- chapter 5: needle in a haystack (Fig. 6) --------------------------------------------------

def needle_accuracy_beyond(result: dict, min_multiple: int, train_len: int, theta: int = 50,
                           metric: str = "exact") -> tuple[float, int]:
    """Accuracy pooled over every depth and every context length >= min_multiple x T, and the
    number of trials it pools."""
    grid = result["metrics"][f"theta_x{theta}"]
    lengths = np.asarray(grid["context_lengths"])
    acc = np.asarray(grid[metric])[lengths >= min_multiple * train_len]
    return float(acc.mean()), int(acc.size * grid["trials"])


def retrieval(results: dict[str, list[dict]], train_len: int, theta: int = 50, min_multiple: int = 4) -> Verdict:
    """Fig. 6: (b) retrieves clearly better than (a) at >= 4T (beyond 2 binomial standard
    errors); (c) and (d) below (b); (e) and (f) between (a) and (b)."""
    acc, n = {}, 0
    for v in "abcdef":
        acc[v], n = needle_accuracy_beyond(results[f"needle-eval-{v}"][0], min_multiple, train_len, theta)

    def gap(x: str, y: str) -> float:  # 2 standard errors of the difference of two accuracies
        return 2 * math.hypot(binomial_se(acc[x], n), binomial_se(acc[y], n))

    parts = {
        f"(b) above (a) by more than 2 standard errors": acc["b"] - acc["a"] > gap("a", "b"),
        "(c) below (b) by more than 2 standard errors": acc["b"] - acc["c"] > gap("b", "c"),
        "(d) below (b) by more than 2 standard errors": acc["b"] - acc["d"] > gap("b", "d"),
        "(e) between (a) and (b)": acc["a"] < acc["e"] < acc["b"],
        "(f) between (a) and (b)": acc["a"] < acc["f"] < acc["b"],
    }
    measured = (f"exact-match accuracy at >= {min_multiple}T, theta x{theta}: "
                + ", ".join(f"({v}) {acc[v]:.2f}" for v in "abcdef"))
    return Verdict("fig6", "Fig. 6", "SSMax (b) keeps retrieving the needle far beyond the training length, "
                   "(a) does not; (c), (d) below (b); (e), (f) in between", measured,
                   f"{n} trials per variant; binomial standard error <= {0.5 / math.sqrt(n):.3f}", parts)


# --- chapter 6: where attention goes (Figs. 7-8) ------------------------------------------------

def top_scores(results: dict[str, list[dict]], variant: str) -> np.ndarray:
    return np.asarray(results[f"needle-score-{variant}"][0]["metrics"]["random_trials"]["top_score"])


def attention_on_needle(results: dict[str, list[dict]]) -> Verdict:
    """Figs. 7-8: (b)'s top needle score exceeds (a)'s in most trials (the trials are paired:
    the same needles and haystacks for every variant); (c)-(f) lie between (a) and (b) by median."""
    tops = {v: top_scores(results, v) for v in "abcdef"}
    wins = float(np.mean(tops["b"] > tops["a"]))
    med = {v: float(np.median(x)) for v, x in tops.items()}
    parts = {f"(b) > (a) in most paired trials ({wins:.0%})": wins > 0.5}
    parts.update({f"({v}) median between (a) and (b)": med["a"] < med[v] < med["b"] for v in "cdef"})
    measured = "median top needle score " + ", ".join(f"({v}) {med[v]:.3f}" for v in "abcdef")
    return Verdict("fig8", "Figs. 7-8", "SSMax (b) concentrates attention on the needle; (a) does not; "
                   "(c)-(f) partly", measured, f"{len(tops['a'])} paired random trials per variant", parts)
