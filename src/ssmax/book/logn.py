"""Chapter 2, why log n (the paper's Fig. 2): fits of the learned p_n and the verdict."""

from __future__ import annotations

import numpy as np

from .. import experiments as ex
from . import decide as d
from .runs import Results, unit_of

NAME = "learned-pn"


def load(profile: str, retrain: bool = False, device: str = "auto") -> Results:
    return ex.results_for([NAME], profile, retrain=retrain, device=device)


def learned_pn(results: Results, seed_index: int = 0) -> np.ndarray:
    return np.asarray(results[NAME][seed_index]["metrics"]["learned_p_n"])


def run_summary(results: Results, seed_index: int = 0) -> dict:
    m = results[NAME][seed_index]["metrics"]
    return {"steps": int(m["steps"][-1]), "val_loss": m["final_val_loss"], "params": m["n_parameters"],
            "s": np.asarray(m["learned_s"]), "b": np.asarray(m["learned_b"])}


def fit_curves(n: np.ndarray, p: np.ndarray) -> dict[str, dict]:
    """Two-parameter least-squares fits of p_n with their R^2: a1 log n + a2, a1 n + a2, and the
    power law a1 n^k (k on a fine grid; no offset, else it would contain the log fit)."""
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


def boxcox_profile(n: np.ndarray, p: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """R^2 of a1 (n^k - 1)/k + a2 for each k (k = 0 is a1 log n + a2): the k of the best fit says
    which shape the data prefer without favoring the logarithm or the power laws."""
    n = np.asarray(n, dtype=float)
    p = np.asarray(p, dtype=float)
    total = float(((p - p.mean()) ** 2).sum())
    out = []
    for k in ks:
        feature = np.log(n) if abs(k) < 1e-12 else (n ** k - 1) / k
        design = np.stack([feature, np.ones_like(feature)], 1)
        coef, *_ = np.linalg.lstsq(design, p, rcond=None)
        out.append(1 - float(((design @ coef - p) ** 2).sum()) / total)
    return np.asarray(out)


RULE = ("For each trained model, the log fit's R^2 minus each alternative's; a part holds if the 95% t-interval of "
        f"these differences over models lies above 0, fails below 0 or below {d.SESOI['r2']}, and is undecided with "
        "one model.")


def learned_pn_is_logarithmic(results: Results, skip_first: int = 1) -> d.Verdict:
    """Fig. 2: the learned p_n follows a1 log n + a2 better than a line or a power law (n = 1 left
    out: a softmax over one key gets no gradient)."""
    edge = {"linear": {}, "power": {}}
    slope = {}
    for r in results[NAME]:
        p = np.asarray(r["metrics"]["learned_p_n"])
        n = np.arange(1, len(p) + 1)[skip_first:]
        fits = fit_curves(n, p[skip_first:])
        for k in edge:
            edge[k][unit_of(r)] = fits["log"]["r2"] - fits[k]["r2"]
        slope[unit_of(r)] = fits["log"]["a1"]
    parts = [d.part("the log fit has a higher R^2 than the linear fit", d.Effect(tuple(edge["linear"]),
                    tuple(edge["linear"].values())), d.SESOI["r2"]),
             d.part("the log fit has a higher R^2 than the best power law a1 n^k",
                    d.Effect(tuple(edge["power"]), tuple(edge["power"].values())), d.SESOI["r2"])]
    fits0 = fit_curves(np.arange(2, len(learned_pn(results)) + 1), learned_pn(results)[skip_first:])
    measured = (f"R^2 log {fits0['log']['r2']:.3f} (a1 {fits0['log']['a1']:.3f}), linear {fits0['linear']['r2']:.3f}, "
                f"power (k={fits0['power']['k']:.2f}) {fits0['power']['r2']:.3f} (first model)")
    return d.Verdict("fig2", "Fig. 2", "the learned p_n grows like a1 log n + a2", RULE, parts, measured)
