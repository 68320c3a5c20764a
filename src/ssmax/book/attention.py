"""Chapter 7, where attention goes (the paper's Figs. 7-8): needle scores and the verdict."""

from __future__ import annotations

import numpy as np

from .. import experiments as ex
from . import decide as d
from .labels import listing
from .runs import Results, grouped_replicates, unit_of

KEYS = ("a", "b", "c", "d", "e", "f", "a-nope", "b-nope")
OUTCOMES = ("correct", "first_digit", "wrong")


def score_name(key: str) -> str:
    """``needle-score-<variant>[-nope]`` of a key of `KEYS`."""
    return f"needle-score-{key}"


def load(profile: str, retrain: bool = False, device: str = "auto") -> Results:
    return ex.results_for([score_name(k) for k in KEYS], profile, retrain=retrain, device=device)


def setting(results: Results, profile: str) -> dict:
    ev = results[score_name("a")][0]["config"]["evaluation"]
    T = ex.PROFILE_SETTINGS[profile].model["block_size"]
    return {"context": ev["context_len"], "trials": ev["trials"], "multiple": ev["context_len"] // T}


def _run(results: Results, key: str, seed: int) -> dict:
    runs = [r for r in results[score_name(key)] if int(r["seed"]) == seed]
    if not runs:
        raise ValueError(f"seed must be one of {sorted(int(r['seed']) for r in results[score_name(key)])} "
                         f"for {score_name(key)}; got {seed!r}")
    return runs[0]


def trials(results: Results, key: str, seed: int = 0) -> dict:
    """The random trials of one model (by default seed 0's): top_score, bits_per_digit, outcomes."""
    return _run(results, key, seed)["metrics"]["random_trials"]


def fixed(results: Results, key: str, seed: int = 0) -> dict:
    """The fixed-depth example of one model: scores (layers x heads), outcome, bits per digit."""
    f = _run(results, key, seed)["metrics"]["fixed_depth"]
    return {"scores": np.asarray(f["scores"][0]), "outcome": f["outcomes"][0], "bits": f["bits_per_digit"][0]}


def top_scores(results: Results, key: str, seed: int = 0) -> np.ndarray:
    return np.asarray(trials(results, key, seed)["top_score"])


def outcome_counts(results: Results, key: str, seed: int = 0) -> dict[str, int]:
    return {k: list(trials(results, key, seed)["outcomes"]).count(k) for k in OUTCOMES}


def model_medians(results: Results, key: str) -> dict[str, float]:
    """The median top needle score of every pretrained model of a variant, by unit."""
    return {unit_of(r): float(np.median(r["metrics"]["random_trials"]["top_score"])) for r in results[score_name(key)]}


def majority_threshold(n: int) -> float:
    """One half plus 2 standard errors of a fair coin over n paired trials (a sign test)."""
    return 0.5 + 2 * d.binomial_se(0.5, n)


def paired_majority(x: np.ndarray, y: np.ndarray) -> tuple[float, bool]:
    """Fraction of paired trials in which x > y (ties count against), and whether it exceeds
    `majority_threshold`. Trials are inside one model: this is that model's error, not a replication."""
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"paired trials must have the same, non-zero count; got {x.shape} and {y.shape}")
    wins = float(np.mean(x > y))
    return wins, wins > majority_threshold(x.size)


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order; the scores are continuous)."""
    rx, ry = (np.argsort(np.argsort(np.asarray(v))) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])


def attention_and_answer(results: Results, key: str, threshold: float = 0.5) -> dict:
    """Does attention on the needle go with a right answer? Focused trials (top score >= threshold),
    their first-digit rate against the others', and the rank correlation of top score with bits."""
    t = trials(results, key)
    top, bits, outcomes = np.asarray(t["top_score"]), np.asarray(t["bits_per_digit"]), np.asarray(t["outcomes"])
    focused = top >= threshold
    first = np.isin(outcomes, ("correct", "first_digit"))
    share = lambda sel: float(first[sel].mean()) if sel.any() else float("nan")  # noqa: E731
    return {"trials": int(top.size), "correct": int((outcomes == "correct").sum()), "focused": int(focused.sum()),
            "first_if_focused": share(focused), "first_otherwise": share(~focused),
            "rank_corr_bits": rank_correlation(top, bits)}


RULE = ("Each model's median top needle score over the same paired trials, compared between models paired by "
        "pretrained model; the trials give one model's error only (a sign test, shown); a part holds if its 95% "
        f"t-interval over pretrained models lies above 0, fails below 0 or below {d.SESOI['needle_score']}, and is "
        "undecided with one pretrained model per arm; contrasts between SSMax variants are shown, not counted.")


def _part(results: Results, better: str, worse: str, counted: bool = True, note: str = "") -> d.Part:
    x, y = model_medians(results, better), model_medians(results, worse)
    wins, ok = paired_majority(top_scores(results, better), top_scores(results, worse))
    p = d.part(f"({better}) concentrates more on the needle than ({worse}) (median top score)",
               d.paired(x, y, True), d.SESOI["needle_score"], counted=counted, note=note)
    p.note = "; ".join(x for x in (note, f"inside the seed-0 models: higher in {wins:.0%} of paired trials "
                                   f"(sign-test bar {majority_threshold(top_scores(results, worse).size):.0%})") if x)
    return p


def attention_on_needle(results: Results) -> d.Verdict:
    """Figs. 7-8: (b) concentrates attention on the needle, (a) does not; (c)-(f) in between."""
    parts = [_part(results, "b", "a")]
    for v in "cdef":
        parts.append(_part(results, v, "a"))
        parts.append(_part(results, "b", v, counted=False, note="compares two SSMax variants"))
    med = {v: mean_median(results, v) for v in "abcdef"}
    return d.Verdict("fig8", "Figs. 7-8", "SSMax (b) concentrates attention on the needle; (a) does not; (c)-(f) partly",
                     RULE, parts, "median top needle score (mean over models) "
                     + ", ".join(f"({v}) {m:.3f}" for v, m in med.items()) + "; "
                     + models_behind(results))


def models_behind(results: Results, keys: str = "abcdef") -> str:
    """"(a), (b), (c) and (e): 5 independently trained models; (d) and (f): 1 ...": what each
    variant's needle scores rest on."""
    return grouped_replicates({f"({k})": results[score_name(k)] for k in keys})


def mean_median(results: Results, key: str) -> float:
    """A variant's median top needle score, averaged over its pretrained models."""
    return float(np.mean(list(model_medians(results, key).values())))


def others_text(results: Results, variants: str = "cdef") -> str:
    """"(c) 0.41 and (e) 0.30 (5 independently trained models each); (d) 0.12 and (f) 0.20 (1
    independently trained model each)": the other variants' mean median top score, grouped by what
    they rest on."""
    return grouped_replicates({f"({v}) {mean_median(results, v):.2f}": results[score_name(v)] for v in variants},
                              lambda items, what: f"{listing(items)} ({what}{' each' if len(items) > 1 else ''})")


def against_a_text(verdict: d.Verdict, variants: str = "cdef") -> str:
    """"(c) holds (+0.21 over 5 models); (d) undecided (underpowered; +0.05 on one model)": each
    variant's counted contrast with (a) in the Figs. 7-8 verdict, in the prose's words."""
    out = []
    for v in variants:
        p = next(p for p in verdict.counted_parts if p.label.startswith(f"({v}) concentrates"))
        size = f"{p.effect.mean:+.2f} " + (f"mean over {p.effect.n} models" if p.effect.n > 1 else "on one model")
        out.append(f"({v}) {d.outcome_word(p)}, {size}")
    return "; ".join(out)
