"""Chapter 5, length generalization (the paper's Fig. 5), the inference-time log-n scalings, NoPE,
switching to SSMax, and the theta study; every loss claim is judged per window of `decide.WINDOWS`."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import experiments as ex
from ..baselines import BASELINES
from ..evaluate import smooth, window_multiples
from . import decide as d
from . import labels as book_labels
from . import needle
from .runs import Results, replicates, unit_of, unit_values

VARIANTS = ex.VARIANTS
LOSS_UNIT = "nats per byte"
FLOOR_WHAT = "a model that ignores its context (the training bytes' frequencies)"


def lengthgen_name(variant: str, protocol: str = "") -> str:
    """``lengthgen-<variant>[-<protocol>]``; variant "baselines" holds the log-n scalings of (a)."""
    return f"lengthgen-{variant}" + (f"-{protocol}" if protocol else "")


def names() -> list[str]:
    return ([lengthgen_name(v) for v in VARIANTS] + [lengthgen_name("baselines")]
            + [lengthgen_name(v, ex.NOPE) for v in ex.PROTOCOL_VARIANTS[ex.NOPE]]
            + [lengthgen_name("baselines", ex.NOPE)] + [f"theta-study-{v}" for v in ex.THETA_STUDY_VARIANTS])


def load(profile: str, retrain: bool = False, device: str = "auto") -> Results:
    return ex.results_for(names(), profile, retrain=retrain, device=device)


def train_len(results: Results) -> int:
    return int(results["lengthgen-a"][0]["config"]["evaluation"]["train_len"])


def curve_key(theta: int, label: str = "model") -> str:
    return f"{label}@theta_x{theta}"


def curves(results: Results, variant: str, theta: int, label: str = "model", protocol: str = "") -> np.ndarray:
    """(seeds, positions) per-position test losses of one stored curve."""
    name = lengthgen_name("baselines" if label != "model" else variant, protocol)
    return np.asarray([r["metrics"]["curves"][curve_key(theta, label)]["curve"] for r in results[name]])


def smoothed(arr: np.ndarray, window: int) -> np.ndarray:
    return np.asarray([smooth(row, window) for row in np.atleast_2d(arr)])


def context_free_loss(results: Results, protocol: str = "") -> float:
    """The loss of a model that ignores its context: the floor of the curves."""
    return float(results[lengthgen_name("a", protocol)][0]["metrics"]["context_free_loss"])


def curve_length(results: Results, protocol: str = "") -> int:
    return int(results[lengthgen_name("a", protocol)][0]["metrics"]["length"])


def windows(results: Results, protocol: str = "") -> list[tuple[str, int, int]]:
    """The windows of `decide.WINDOWS` the stored curves reach."""
    L, T = curve_length(results, protocol), train_len(results)
    return [w for w in d.WINDOWS if w[2] * T <= L]


def window_loss(result: dict, key: str, window: tuple[str, int, int], T: int) -> float:
    """Mean per-position loss of one stored curve over a window."""
    _, lo, hi = window
    return float(np.mean(result["metrics"]["curves"][key]["curve"][lo * T:hi * T]))


def _doc_se(result: dict, key: str, window: tuple[str, int, int]) -> float:
    docs = result["metrics"]["curves"][key].get("document_windows", {}).get(window[0])
    if docs is None:
        return float("nan")
    docs = np.asarray(docs, dtype=float)
    return float(docs.std(ddof=1) / math.sqrt(docs.size))


def window_losses(results: Results, variant: str, window: tuple[str, int, int], theta: int = 50,
                  label: str = "model", protocol: str = "") -> tuple[dict[str, float], dict[str, float]]:
    """One loss per unit (pretraining seed) over a window, and its error over test documents."""
    name = lengthgen_name("baselines" if label != "model" else variant, protocol)
    key, T = curve_key(theta, label), train_len(results)
    return unit_values(results[name], lambda r: window_loss(r, key, window, T), lambda r: _doc_se(r, key, window))


def window_means(results: Results, variant: str, theta: int = 50, label: str = "model",
                 protocol: str = "") -> dict[str, tuple[float, float, int]]:
    """Per window: (mean over seeds, half the seed range, seeds) of a variant's loss."""
    out = {}
    for w in windows(results, protocol):
        vals = list(window_losses(results, variant, w, theta, label, protocol)[0].values())
        out[w[0]] = (float(np.mean(vals)), (max(vals) - min(vals)) / 2, len(vals))
    return out


def loss_parts(results: Results, better: str, worse: str, theta: int, protocol: str = "", better_label: str = "model",
               worse_label: str = "model", name_better: Optional[str] = None, name_worse: Optional[str] = None,
               counted: bool = True, note: str = "") -> list[d.Part]:
    """``better`` generalizes better than ``worse`` (lower loss), per beyond-T window, as a
    difference in differences against [1,T], paired by pretraining seed; a window where both sit
    at or above the context-free loss is undecided (floor)."""
    floor_loss = context_free_loss(results, protocol)
    nb, nw = name_better or f"({better})", name_worse or f"({worse})"
    ib, ibse = window_losses(results, better, d.WITHIN_WINDOW, theta, better_label, protocol)
    iw, iwse = window_losses(results, worse, d.WITHIN_WINDOW, theta, worse_label, protocol)
    within = d.paired(ib, iw, False, ibse, iwse)
    parts = []
    for w in windows(results, protocol)[1:]:
        bx, bse = window_losses(results, better, w, theta, better_label, protocol)
        wx, wse = window_losses(results, worse, w, theta, worse_label, protocol)
        floor = d.loss_floor({nb: float(np.mean(list(bx.values()))), nw: float(np.mean(list(wx.values())))},
                             floor_loss, FLOOR_WHAT)
        parts.append(d.generalizes(f"{nb} below {nw} over {w[0]}, by more than within [1,T]",
                                   d.paired(bx, wx, False, bse, wse), within, d.SESOI["loss_beyond_T"], LOSS_UNIT,
                                   counted, floor, note=note))
    return parts


FIG5_RULE = ("Per window beyond T, each contrast with softmax (a) paired by pretraining seed: a part holds if the "
             "loss gain beyond T and its excess over the gain within [1,T] both have 95% t-intervals above 0, and "
             f"fails below 0 or below {d.SESOI['loss_beyond_T']} nats per byte; a window where every arm is at or "
             "above the context-free loss, or a variant with one model, is undecided; contrasts between SSMax "
             "variants are shown, not counted.")


def length_generalization(results: Results, theta: int = 50) -> d.Verdict:
    """Fig. 5: (b), (c) generalize better than (a); (d) worse than (b); (e) worse than (a) at short
    context; (f) close to (b), better than (a)."""
    parts = loss_parts(results, "b", "a", theta) + loss_parts(results, "c", "a", theta)
    parts += loss_parts(results, "b", "d", theta, counted=False, note="compares two SSMax variants")
    ia, iase = window_losses(results, "a", d.WITHIN_WINDOW, theta)
    ie, iese = window_losses(results, "e", d.WITHIN_WINDOW, theta)
    parts.append(d.part("(e) above (a) within [1,T]: switched after pretraining, it struggles at short context",
                        d.paired(ie, ia, True, iese, iase), d.SESOI["loss_at_T"], LOSS_UNIT))
    parts += loss_parts(results, "f", "a", theta)
    ends = {v: np.mean(list(window_losses(results, v, d.BEYOND_WINDOWS[1], theta)[0].values())) for v in VARIANTS}
    return d.Verdict("fig5" if theta == 50 else f"fig5-theta{theta}", "Fig. 5",
                     "SSMax (b), (c) generalize beyond the training length better than (a); (d) degrades; (e) "
                     f"struggles at short context; (f) is close to (b) (test-time theta x{theta})", FIG5_RULE, parts,
                     "mean loss over (T,4T]: " + ", ".join(f"({v}) {ends[v]:.3f}" for v in VARIANTS)
                     + f"; context-free loss {context_free_loss(results):.3f}")


BASELINE_RULE = ("Per window beyond T, (b) against each inference-time scaling of the same seed's (a), paired by "
                 "pretraining seed, as a difference in differences against [1,T]; holds if both intervals lie above 0.")


def ssmax_vs_inference_scalings(results: Results, theta: int = 50, protocol: str = "") -> d.Verdict:
    """Beyond the paper: does training-time SSMax (b) beat the inference-time log-n scalings
    (`baselines.BASELINES`) applied to (a), beyond T?"""
    parts = []
    for b in BASELINES:
        parts += loss_parts(results, "b", "a", theta, protocol, worse_label=b,
                            name_worse=f"(a) with {book_labels.label(b)}")
    setting = "no position encoding (NoPE)" if protocol == ex.NOPE else f"theta x{theta}"
    return d.Verdict(f"logn-baselines" + (f"-{protocol}" if protocol else ""), "beyond the paper (chapter 5)",
                     f"training-time SSMax beats inference-time log-n scalings of a softmax model beyond T ({setting})",
                     BASELINE_RULE, parts, f"(b): {replicates(results[lengthgen_name('b', protocol)])}",
                     beyond_paper=True)


def nope_length_generalization(results: Results) -> d.Verdict:
    """Beyond the paper: without position encodings, does NoPE (b) generalize better than NoPE (a)?"""
    parts = loss_parts(results, "b", "a", 1, ex.NOPE)
    return d.Verdict("nope-lengthgen", "beyond the paper (chapter 5)",
                     "without position encodings, SSMax (b) generalizes beyond the training length better than softmax (a)",
                     FIG5_RULE.split(";")[0] + ".", parts,
                     f"(a), (b): {replicates(results[lengthgen_name('a', ex.NOPE)])} each", beyond_paper=True)


SWITCH_RULE = ("(e) and (f) against (a), paired by pretraining seed, per window beyond T: lower loss beyond T by more "
               "than within [1,T], and better exact retrieval than at 1T under the paper's protocol; each part as in "
               "Figs. 5 and 6.")


def switching_gains(results: Results) -> d.Verdict:
    """Abstract: a softmax model switched to SSMax after (e) or during (f) pretraining gains some of
    the length generalization: by loss beyond T (theta x50) and by retrieval (Fig. 6's protocol)."""
    parts = loss_parts(results, "e", "a", 50) + loss_parts(results, "f", "a", 50)
    if "needle-eval-e" in results:
        for v in "ef":
            parts += needle.retrieval_parts(results, v, "a", "paper-theta50", ("exact",))
    return d.Verdict("switch", "abstract; Figs. 5-6", "switching a softmax model to SSMax after (e) or during (f) "
                     "pretraining recovers some of the length generalization", SWITCH_RULE, parts,
                     f"(e): {replicates(results['lengthgen-e'])}; (f): {replicates(results['lengthgen-f'])}")


# --- the theta study ----------------------------------------------------------------------------------
def theta_metrics(results: Results, variant: str) -> dict:
    return results[f"theta-study-{variant}"][0]["metrics"]


def window_documents(metrics: dict, split: str, factor_index: int, lo: int, hi: int) -> np.ndarray:
    """Each document's mean loss over (lo*T, hi*T] (stored windows weighted by length)."""
    loss = metrics["loss"][split]
    keep = [w for w in loss if window_multiples(w)[0] >= lo and window_multiples(w)[1] <= hi]
    lengths = {w: window_multiples(w)[1] - window_multiples(w)[0] for w in keep}
    total = sum(lengths.values())
    return sum(np.asarray(loss[w]["documents"][factor_index]) * lengths[w] / total for w in keep)


def beyond_documents(metrics: dict, split: str, factor_index: int) -> np.ndarray:
    """Each document's mean loss over (T, 4T]."""
    return window_documents(metrics, split, factor_index, 1, 4)


def validation_best_theta(results: Results, variants: tuple[str, ...] = ex.THETA_STUDY_VARIANTS) -> tuple[float, dict]:
    """The rule, fixed before any test number: the theta factor with the lowest mean validation
    loss over (T, 4T], averaged over the variants."""
    factors = theta_metrics(results, variants[0])["factors"]
    val = {f: float(np.mean([beyond_documents(theta_metrics(results, v), "validation", i).mean() for v in variants]))
           for i, f in enumerate(factors)}
    return min(val, key=val.get), val


def theta_study_curves(results: Results) -> dict:
    """Per variant: test loss within [1,T] and over (T,4T] at every factor, needle exact by factor
    and length; and the factors and needle lengths (multiples of T)."""
    out = {}
    for v in ex.THETA_STUDY_VARIANTS:
        m = theta_metrics(results, v)
        out[v] = {"within": [float(np.mean(x)) for x in m["loss"]["test"]["[1,T]"]["documents"]],
                  "beyond": [float(beyond_documents(m, "test", i).mean()) for i in range(len(m["factors"]))],
                  "needle": np.asarray(m["needle"]["exact"])}
    m = theta_metrics(results, "a")
    T = m["needle"]["context_lengths"][0]
    out["factors"] = np.asarray(m["factors"])
    out["needle_multiples"] = [c // T for c in m["needle"]["context_lengths"]]
    return out


THETA_RULE = ("At the factor the validation rule picks, (b) and (c) against (a) per window as in Fig. 5 (loss beyond "
              "T by more than within [1,T]) and in needle exact match as in chapter 6, paired by pretraining seed; the "
              "test documents and trials give one model's error only.")


def _theta_unit(results: Results, v: str) -> str:
    from .runs import unit_of
    return unit_of(results[f"theta-study-{v}"][0])


def ssmax_at_validation_theta(results: Results) -> d.Verdict:
    """Beyond the paper: at the theta factor chosen on validation data, is SSMax better than
    softmax beyond T (test loss per window, needle exact match)?"""
    factor, _ = validation_best_theta(results)
    m = {v: theta_metrics(results, v) for v in ex.THETA_STUDY_VARIANTS}
    i = m["a"]["factors"].index(factor)
    parts = []
    T_docs = {v: window_documents(m[v], "test", i, 0, 1) for v in m}
    for v in ("b", "c"):
        u = _theta_unit(results, v)
        within_docs = T_docs["a"] - T_docs[v]
        within = d.Effect((u,), (float(within_docs.mean()),), (float(within_docs.std(ddof=1) / math.sqrt(within_docs.size)),))
        for label, lo, hi in d.BEYOND_WINDOWS:
            if hi > max(window_multiples(w)[1] for w in m["a"]["loss"]["test"]):
                continue  # the theta study stores losses to 4T
            docs = window_documents(m["a"], "test", i, lo, hi) - window_documents(m[v], "test", i, lo, hi)
            beyond = d.Effect((u,), (float(docs.mean()),), (float(docs.std(ddof=1) / math.sqrt(docs.size)),))
            parts.append(d.generalizes(f"({v}) below (a) in test loss over {label}, by more than within [1,T]",
                                       beyond, within, d.SESOI["loss_beyond_T"], LOSS_UNIT))
    nd = {v: m[v]["needle"] for v in m}
    T = nd["a"]["context_lengths"][0]
    trials = nd["a"]["trials_per_length"]
    at_T = {v: nd[v]["exact"][i][0] for v in m}
    for j, length in enumerate(nd["a"]["context_lengths"]):
        if length <= T:
            continue
        u = _theta_unit(results, "b")
        acc = {v: nd[v]["exact"][i][j] for v in m}
        beyond = d.Effect((u,), (acc["b"] - acc["a"],), (math.hypot(d.binomial_se(acc["b"], trials), d.binomial_se(acc["a"], trials)),))
        within = d.Effect((u,), (at_T["b"] - at_T["a"],))
        low = {f"({v})": at_T[v] for v in "ab" if at_T[v] < needle.target_exact(results)}
        pre = ("the models must retrieve at 1T at this factor; " + ", ".join(f"{k} {x:.2f}" for k, x in low.items())
               ) if low else None
        floor = d.accuracy_floor_or_ceiling({"(a)": acc["a"], "(b)": acc["b"]}, trials)
        parts.append(d.generalizes(f"(b) above (a) in needle exact match at {length // T}T", beyond, within,
                                   d.SESOI["accuracy"], "", True, floor, pre, 2, within_name="at 1T"))
    return d.Verdict("theta-best", "beyond the paper (chapter 5)",
                     f"at the theta factor chosen on validation data (theta x{factor:g}), SSMax beats softmax beyond T",
                     THETA_RULE, parts, f"one pretraining and fine-tuning seed per variant; "
                     f"{len(T_docs['a'])} test documents; {trials} needle trials per length", beyond_paper=True)


def first_crossing(curve, level: float, start: int = 0) -> float:
    """The first 1-based position p > ``start`` at which a curve exceeds ``level``, or nan."""
    above = np.flatnonzero(np.asarray(curve, dtype=float)[start:] > level)
    return float(start + above[0] + 1) if above.size else float("nan")


def heldout_losses(results: Results) -> dict[str, float]:
    """Mean held-out loss at T (trained theta) of every variant and of (a) with each baseline."""
    out = {v: float(np.mean([r["metrics"]["heldout_loss"]["model"] for r in results[lengthgen_name(v)]]))
           for v in VARIANTS}
    out.update({b: float(np.mean([r["metrics"]["heldout_loss"][b] for r in results[lengthgen_name("baselines")]]))
                for b in BASELINES})
    return out


def setting(results: Results, profile: str) -> dict:
    first = results["lengthgen-a"][0]
    pf = ex.experiment_config("pretrain-f", profile).train
    model = ex.experiment_config("pretrain-a", profile).train.model
    return {"T": train_len(results), "L": curve_length(results), "n_docs": first["metrics"]["n_documents"],
            "floor": context_free_loss(results), "n_seeds": len(results["lengthgen-a"]),
            "f_share": (pf.steps - pf.switch_to_ssmax_at) / pf.steps, "head_dim": model.n_embd // model.n_head}


# --- how many models: the seed-count rule (`decide.seed_count`) --------------------------------------
SEED_COUNT_CONTRASTS = (("b", "a", ""), ("c", "a", ""), ("e", "a", ""), ("b", "a", ex.NOPE))
SEED_COUNT_WINDOW = d.BEYOND_WINDOWS[1]  # (T,4T]: the window of the chapter's main comparison


def seed_counts(results: Results, theta: int = 50) -> list[d.SeedCount]:
    """The seed-count rule for each main loss contrast over (T,4T] (paired by pretraining seed,
    the softmax model's loss minus the SSMax model's), for contrasts with at least two models;
    NoPE at its own theta (no RoPE to rescale)."""
    out = []
    for better, worse, protocol in SEED_COUNT_CONTRASTS:
        if lengthgen_name(better, protocol) not in results:
            continue
        th = 1 if protocol == ex.NOPE else theta
        b = window_losses(results, better, SEED_COUNT_WINDOW, th, protocol=protocol)[0]
        w = window_losses(results, worse, SEED_COUNT_WINDOW, th, protocol=protocol)[0]
        effect = d.paired(b, w, False)
        if effect.n < 2:
            continue
        name = f"({better}) vs ({worse})" + (" without position encoding" if protocol == ex.NOPE else "")
        out.append(d.seed_count(name, effect, d.DESIGN_EFFECT["loss_beyond_T"]))
    return out


def seed_count_table(results: Results, theta: int = 50):
    """`seed_counts` as a table: spread of the first models, the n it asks for, the models run and
    the smallest effect they detect (80% power), in nats per byte over (T,4T]."""
    from .html import Table

    header, rows = d.seed_count_columns(seed_counts(results, theta), "contrast over (T,4T]", design_effect=False)
    return Table(header, rows,
                 caption=f"Seed-count rule: at least {d.MIN_MODELS} models, more if the first models' spread "
                         f"says {d.MIN_MODELS} cannot detect {d.DESIGN_EFFECT['loss_beyond_T']:g} nats per byte "
                         f"with {d.POWER:.0%} power")


def model_counts(results: Results) -> dict[str, int]:
    """Independently pretrained models behind each variant's curves, by the variant's label
    ("(a)", ..., "NoPE (a)", "NoPE (b)")."""
    def models(name: str) -> int:
        return len({unit_of(r) for r in results[name]})
    out = {f"({v})": models(lengthgen_name(v)) for v in VARIANTS}
    out.update({f"NoPE ({v})": models(lengthgen_name(v, ex.NOPE)) for v in ex.PROTOCOL_VARIANTS[ex.NOPE]})
    return out


def count_phrases(results: Results) -> tuple[str, str, int]:
    """("(a), (b), (c) and (e) with 5 independently pretrained models each, NoPE (a) and NoPE (b)
    with 3 each, (d) and (f) with one", "(d) and (f)", 5): every variant by its number of models,
    the variants with one, and the largest number; for the chapter's prose."""
    counts = model_counts(results)
    groups = []
    for i, n in enumerate(sorted(set(counts.values()), reverse=True)):
        names = [k for k, m in counts.items() if m == n]
        what = "one" if n == 1 else (f"{n} independently pretrained models" if i == 0 else str(n))
        groups.append(f"{book_labels.listing(names)} with {what}" + (" each" if n > 1 and len(names) > 1 else ""))
    return ", ".join(groups), book_labels.listing([k for k, n in counts.items() if n == 1]), max(counts.values())
