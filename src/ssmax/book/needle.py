"""Chapter 6, needle in a haystack (the paper's Fig. 6) and retrieval under every protocol.

A needle run's unit is the pretrained model at the root of its weights (`runs.unit_of`). Where a
variant is replicated end to end (`Profile.replicated_needle`), seed k fine-tunes pretraining seed
k, so it has one unit per seed and is compared paired by model; where it is not, every fine-tuning seed starts
from pretraining seed 0, the seeds give that one model's error, and a verdict cannot claim more.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import experiments as ex
from . import decide as d
from .runs import Results, grouped_replicates, replicates, unit_of, unit_values  # noqa: F401 (replicates: for the chapters)

DIGIT_CHANCE = 1 / 9  # a guessed first digit (the numbers never start with 0)
BITS_UNIFORM = math.log2(10)  # bits per digit of a uniform guess among the ten digits

# protocol key -> (experiment suffix, test-time theta factor, words)
PROTOCOLS = {
    "paper-theta1": ("", 1, "fine-tuned and tested at theta x1"),
    "paper-theta50": ("", 50, "fine-tuned at theta x1, tested at theta x50 (the paper's protocol)"),
    "theta50": (ex.THETA50, 50, "fine-tuned and tested at theta x50"),
    "nope": (ex.NOPE, 1, "no position encoding"),
}
SHORT = {"paper-theta1": "theta x1 -> theta x1", "paper-theta50": "theta x1 -> theta x50 (paper)",
         "theta50": "theta x50 -> theta x50", "nope": "NoPE"}
# metric -> (words, higher is the paper's direction, smallest effect of interest, unit)
METRICS = {"exact": ("exact match", True, d.SESOI["accuracy"], ""),
           "first_digit": ("first-digit accuracy", True, d.SESOI["accuracy"], ""),
           "bits_per_digit": ("bits per digit", False, d.SESOI["bits_per_digit"], "bits")}


def eval_name(variant: str, protocol: str = "paper-theta1") -> str:
    """The needle evaluation experiment of a variant under a protocol (`PROTOCOLS`)."""
    suffix = PROTOCOLS[protocol][0]
    return f"needle-eval-{variant}" + (f"-{suffix}" if suffix else "")


def sft_name(variant: str, protocol: str = "paper-theta1") -> str:
    return eval_name(variant, protocol).replace("needle-eval", "needle-sft")


def protocol_variants(protocol: str) -> tuple[str, ...]:
    return ex.PROTOCOL_VARIANTS[PROTOCOLS[protocol][0]]


def names() -> list[str]:
    """Every needle experiment (fine-tuning and evaluation) under every protocol, and the theta study."""
    out = []
    for suffix, vs in ex.PROTOCOL_VARIANTS.items():
        for v in vs:
            for stage in ("sft", "eval"):
                out.append(f"needle-{stage}-{v}" + (f"-{suffix}" if suffix else ""))
    return out + [f"theta-study-{v}" for v in ex.THETA_STUDY_VARIANTS]


def load(profile: str, retrain: bool = False, device: str = "auto") -> Results:
    return ex.results_for(names(), profile, retrain=retrain, device=device)


def theta_of(protocol: str) -> int:
    return PROTOCOLS[protocol][1]


def train_len(results: Results) -> int:
    return int(results["needle-sft-a"][0]["config"]["train"]["model"]["block_size"])


def multiples(results: Results, name: str, theta: int) -> np.ndarray:
    """The evaluated context lengths of a needle run, as multiples of T."""
    return np.asarray(results[name][0]["metrics"][f"theta_x{theta}"]["context_lengths"]) // train_len(results)


def pooled(results: Results, name: str, theta: int, metric: str) -> np.ndarray:
    """(fine-tuning seeds, lengths): a metric pooled over depths, per fine-tuning seed."""
    return np.asarray([np.mean(r["metrics"][f"theta_x{theta}"][metric], axis=1) for r in results[name]])


def heatmap(results: Results, name: str, theta: int, metric: str = "exact") -> tuple[np.ndarray, list, list]:
    """(depth x length grid of the seed mean, length multiples, depths)."""
    grids = [r["metrics"][f"theta_x{theta}"] for r in results[name]]
    acc = np.mean([np.asarray(g[metric]) for g in grids], axis=0).T
    return acc, list(multiples(results, name, theta)), list(grids[0]["depths"])


def trials_per_cell(results: Results) -> int:
    return int(results["needle-eval-a"][0]["metrics"]["theta_x1"]["trials"])


def _window_value(r: dict, theta: int, metric: str, lengths: list[int]) -> float:
    grid = r["metrics"][f"theta_x{theta}"]
    keep = np.isin(grid["context_lengths"], lengths)
    return float(np.asarray(grid[metric], dtype=float)[keep].mean())


def window_lengths(results: Results, name: str, theta: int, window: tuple[str, int, int]) -> list[int]:
    """The evaluated context lengths inside a window (lo*T, hi*T] ([1*T] for the within window)."""
    T = train_len(results)
    _, lo, hi = window
    lengths = results[name][0]["metrics"][f"theta_x{theta}"]["context_lengths"]
    if hi == 1:
        return [c for c in lengths if c == T]
    return [c for c in lengths if lo * T < c <= hi * T]


def unit_stat(results: Results, name: str, theta: int, metric: str, lengths: list[int]):
    """One value per unit (the mean over its fine-tuning seeds) and its error over those seeds."""
    return unit_values(results[name], lambda r: _window_value(r, theta, metric, lengths))


def learned_task(results: Results, name: str, theta: int, target: float) -> Optional[str]:
    """None if the model retrieves at the training length under this protocol (exact match at 1T,
    mean over its fine-tuning seeds, at least ``target``), else why not."""
    lengths = window_lengths(results, name, theta, d.WITHIN_WINDOW)
    values, _ = unit_stat(results, name, theta, "exact", lengths)
    low = {u: v for u, v in values.items() if v < target}
    if not low:
        return None
    return ", ".join(f"{u} {v:.2f}" for u, v in low.items())


def _floor(results: Results, arms: dict[str, str], theta: int, metric: str, lengths: list[int]) -> Optional[str]:
    means = {k: float(np.mean(pooled_at(results, n, theta, metric, lengths))) for k, n in arms.items()}
    if metric == "bits_per_digit":
        if all(m >= BITS_UNIFORM for m in means.values()):
            listed = ", ".join(f"{k} {m:.2f}" for k, m in means.items())
            return f"every arm is at or above a uniform guess's {BITS_UNIFORM:.2f} bits per digit ({listed})"
        return None
    trials = min(len(results[n]) * len(lengths) * len(results[n][0]["metrics"][f"theta_x{theta}"]["depths"])
                 * results[n][0]["metrics"][f"theta_x{theta}"]["trials"] for n in arms.values())
    return d.accuracy_floor_or_ceiling(means, trials, DIGIT_CHANCE if metric == "first_digit" else 0.0)


def pooled_at(results: Results, name: str, theta: int, metric: str, lengths: list[int]) -> list[float]:
    return [_window_value(r, theta, metric, lengths) for r in results[name]]


def target_exact(results: Results) -> float:
    return float(results["needle-sft-a"][0]["config"]["evaluation"]["target_val_exact"]) \
        if "needle-sft-a" in results else ex.Profile.sft_target_exact


def retrieval_parts(results: Results, better: str, worse: str, protocol: str, metrics=tuple(METRICS),
                    windows=d.BEYOND_WINDOWS, counted: bool = True, note: str = "",
                    target: Optional[float] = None) -> list[d.Part]:
    """``better`` retrieves better than ``worse`` beyond T, per metric and window, paired by
    pretrained model, as a difference in differences against 1T. Precondition: both retrieve at
    1T under this protocol; a window where both arms sit at a metric's floor is undecided."""
    theta = theta_of(protocol)
    nb, nw = eval_name(better, protocol), eval_name(worse, protocol)
    target = target_exact(results) if target is None else target
    missing = {f"({v})": learned_task(results, n, theta, target) for v, n in ((better, nb), (worse, nw))}
    missing = {k: why for k, why in missing.items() if why}
    pre = (f"the models must retrieve at 1T under this protocol (exact match >= {target:g}); "
           + "; ".join(f"{k} does not ({why})" for k, why in missing.items())) if missing else None
    parts = []
    within = window_lengths(results, nw, theta, d.WITHIN_WINDOW)
    for metric in metrics:
        words, higher, sesoi, unit = METRICS[metric]
        digits = 2
        for window in windows:
            lengths = window_lengths(results, nw, theta, window)
            if not lengths:
                continue
            bx, bse = unit_stat(results, nb, theta, metric, lengths)
            wx, wse = unit_stat(results, nw, theta, metric, lengths)
            ix, ise = unit_stat(results, nb, theta, metric, within)
            jx, jse = unit_stat(results, nw, theta, metric, within)
            beyond = d.paired(bx, wx, higher, bse, wse)
            at_T = d.paired(ix, jx, higher, ise, jse)
            floor = _floor(results, {f"({better})": nb, f"({worse})": nw}, theta, metric, lengths)
            label = f"({better}) {'above' if higher else 'below'} ({worse}) in {words} over {window[0]}"
            parts.append(d.generalizes(label, beyond, at_T, sesoi, unit, counted, floor, pre, digits,
                                       within_name="at 1T", note=note))
    return parts


PROTOCOL_RULE = ("Per measure and window, (b) against (a) paired by pretrained model as a difference in "
                 "differences against 1T (the fine-tuning seeds give one model's error only); a part holds if "
                 "its 95% t-interval lies above 0, and is undecided when the models do not retrieve at 1T, when "
                 "both sit at the measure's floor, or with one pretrained model per arm.")


def retrieval_by_protocol(results: Results, protocol: str) -> d.Verdict:
    """Beyond the paper: does SSMax (b) retrieve better than softmax (a) beyond T under one
    protocol, on exact match, first-digit accuracy and bits per digit?"""
    words = PROTOCOLS[protocol][2]
    parts = retrieval_parts(results, "b", "a", protocol)
    return d.Verdict(f"retrieval-{protocol}", "beyond the paper (chapter 6)",
                     f"SSMax (b) retrieves better than softmax (a) beyond T ({words})", PROTOCOL_RULE, parts,
                     f"{models_behind(results, protocol, 'ab')}; "
                     f"{trials_per_cell(results)} trials per length, depth and seed", beyond_paper=True)


VARIANT_RULE = ("Fine-tuned and tested at the trained base, where the models retrieve: per measure and window, each "
                "contrast paired by pretrained model as a difference in differences against 1T; (e) against (a) is "
                "counted, the contrasts between SSMax variants are shown, not counted; undecided when the models do not "
                "retrieve at 1T, when both sit at the measure's floor, or with one pretrained model per arm.")


def variants_retrieval(results: Results) -> d.Verdict:
    """Fig. 6's statements about (c) and (e), the variants with their own pretrained models, tested
    where the models retrieve (the trained base): (e), switched after pretraining, retrieves better
    than (a) and worse than (b); (c), without the learned scale, worse than (b)."""
    shown = dict(counted=False, note="compares two SSMax variants")
    parts = retrieval_parts(results, "e", "a", "paper-theta1")
    parts += retrieval_parts(results, "b", "e", "paper-theta1", **shown)
    parts += retrieval_parts(results, "b", "c", "paper-theta1", **shown)
    return d.Verdict("retrieval-variants", "Fig. 6 at the trained base (chapter 6)",
                     "switching softmax to SSMax after pretraining, (e), partly improves retrieval beyond T: above "
                     "(a), below (b); removing the learned scale, (c), lowers it below (b) (fine-tuned and tested at "
                     "theta x1)", VARIANT_RULE, parts,
                     f"{models_behind(results, 'paper-theta1', 'abce')}; "
                     f"{trials_per_cell(results)} trials per length, depth and seed", beyond_paper=True)


def contrast_text(parts: list[d.Part], better: str, worse: str) -> str:
    """"exact match: (T,2T] holds, ...; first-digit accuracy: ...": the outcome of every window of
    one contrast of a verdict, measure by measure, in the prose's words."""
    out = []
    for words, higher, _, _ in METRICS.values():
        found = d.summary(parts, f"({better}) {'above' if higher else 'below'} ({worse}) in {words}")
        if found:
            out.append(f"{words}: {found}")
    return "; ".join(out)


FIG6_RULE = ("Under the paper's protocol (theta x50, no training), each contrast with (a) per measure and window "
             "as a difference in differences against 1T, paired by pretrained model; undecided when the models do "
             "not retrieve at 1T; statements between SSMax variants are shown, not counted.")


def retrieval(results: Results) -> d.Verdict:
    """Fig. 6: (b) keeps retrieving far beyond T, (a) does not; (c), (d) below (b); (e), (f)
    between (a) and (b)."""
    parts = retrieval_parts(results, "b", "a", "paper-theta50")
    parts += retrieval_parts(results, "b", "c", "paper-theta50", ("exact",), counted=False,
                             note="compares two SSMax variants")
    parts += retrieval_parts(results, "b", "d", "paper-theta50", ("exact",), counted=False,
                             note="compares two SSMax variants")
    for v in "ef":
        parts += retrieval_parts(results, v, "a", "paper-theta50", ("exact",))
    return d.Verdict("fig6", "Fig. 6", "SSMax (b) keeps retrieving the needle far beyond the training length, (a) "
                     "does not; (c), (d) below (b); (e), (f) in between", FIG6_RULE, parts,
                     models_behind(results, "paper-theta50"))


def models_behind(results: Results, protocol: str, variants: Optional[str] = None) -> str:
    """"(a), (b): 5 independently trained models; (c): 3 fine-tuning seeds of 1 pretrained model":
    what each variant's runs under ``protocol`` rest on, variants with the same grouped."""
    return grouped_replicates({f"({v})": results[eval_name(v, protocol)] for v in variants or protocol_variants(protocol)
                               if eval_name(v, protocol) in results})


def protocol_stats(results: Results, lengths_T: tuple[int, ...] = (2, 4), variants: str = "abc"):
    """Rows of chapter 6's per-protocol table: (protocol, variant, multiple of T, {metric: per
    fine-tuning seed values}) for every protocol, variant and evaluated length."""
    T = train_len(results)
    rows = []
    for protocol in PROTOCOLS:
        theta = theta_of(protocol)
        for v in variants:
            name = eval_name(v, protocol)
            if name not in results:
                continue
            evaluated = set(multiples(results, name, theta).tolist())
            for m in (m for m in lengths_T if m in evaluated):
                rows.append((protocol, v, m, {metric: pooled_at(results, name, theta, metric, [m * T])
                                              for metric in METRICS}))
    return rows


def kept_steps(run: dict) -> int:
    """The steps the kept try of a needle fine-tuning took: fewer than the config's ``steps``
    where it was trained to a criterion and reached it (the run's metrics are the kept try's)."""
    return int(run["metrics"].get("stopped_at", run["config"]["train"]["steps"]))


def sft_summary(results: Results) -> list[dict]:
    """Per fine-tuned variant and protocol: the rule it was fine-tuned under (starting rate,
    halvings, most steps), the number of pretrained models behind its seeds,
    learning rate kept, tries and steps per seed, final validation exact match per seed, and
    whether every seed reached the target."""
    target = target_exact(results)
    out = []
    for suffix, vs in ex.PROTOCOL_VARIANTS.items():
        for v in vs:
            name = f"needle-sft-{v}" + (f"-{suffix}" if suffix else "")
            runs = results[name]
            finals = [r["metrics"]["final_val_exact"] for r in runs]
            config = runs[0]["config"]
            out.append({"suffix": suffix, "variant": v, "finals": finals, "learned": min(finals) >= target,
                        "start": float(config["train"]["lr"]), "models": len({unit_of(r) for r in runs}),
                        "most_steps": int(config["train"]["steps"]), "halvings": config["evaluation"]["lr_halvings"],
                        "rates": [(r["metrics"].get("lr_chosen", r["config"]["train"]["lr"]),
                                   len(r["metrics"].get("lr_tries", [None]))) for r in runs],
                        "steps": [kept_steps(r) for r in runs],
                        "curves": [(r["metrics"]["eval_steps"], r["metrics"]["val_exact"]) for r in runs]})
    return out


def rate_words(lr: float) -> str:
    """A learning rate as people write it: 5e-4, 1e-3, 2.5e-4."""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def sft_setting(results: Results) -> dict:
    cfg = results["needle-sft-a"][0]["config"]
    model = cfg["train"]["model"]
    return {"digits": cfg["train"]["n_digits"], "steps": cfg["train"]["steps"], "T": model["block_size"],
            "lr": float(cfg["train"]["lr"]),
            "head_dim": model["n_embd"] // model["n_head"], "target": cfg["evaluation"]["target_val_exact"],
            "halvings": cfg["evaluation"]["lr_halvings"], "stop": cfg["evaluation"].get("stop_at_val_exact"),
            "trials": trials_per_cell(results)}


# --- how many models: the seed-count rule (`decide.seed_count`) at 2T ---------------------------
SEED_COUNT_MULTIPLE = 2  # the longest length at which our models still retrieve under some protocol


SEED_COUNT_PROTOCOLS = ("paper-theta1", "theta50", "nope")  # not the paper's theta x50: no model retrieves at 1T


def seed_counts(results: Results, better: str = "b", worse: str = "a",
                protocols: tuple[str, ...] = SEED_COUNT_PROTOCOLS) -> list[d.SeedCount]:
    """The seed-count rule for ``better`` against ``worse`` at 2T, per protocol and measure, paired
    by pretrained model (signed so that positive is the paper's direction), for the protocols
    under which a model can retrieve at 1T and whose arms share at least two pretrained models."""
    out = []
    for protocol in protocols:
        theta = theta_of(protocol)
        nb, nw = eval_name(better, protocol), eval_name(worse, protocol)
        if nb not in results or nw not in results:
            continue
        lengths = [SEED_COUNT_MULTIPLE * train_len(results)]
        if SEED_COUNT_MULTIPLE not in multiples(results, nw, theta):
            continue  # a profile that does not evaluate 2T (smoke) has nothing to count
        for metric, (words, higher, _, _) in METRICS.items():
            effect = d.paired(unit_stat(results, nb, theta, metric, lengths)[0],
                              unit_stat(results, nw, theta, metric, lengths)[0], higher)
            if effect.n < 2:
                continue
            out.append(d.seed_count(f"({better}) vs ({worse}), {SHORT[protocol]}, {words}", effect,
                                    d.DESIGN_EFFECT[f"needle_{metric}_{SEED_COUNT_MULTIPLE}T"]))
    return out


def seed_count_table(results: Results):
    """`seed_counts` as a table: spread of the first models, the n the rule asks for, the models
    run and the smallest effect they detect (80% power) at 2T."""
    from .html import Table

    header, rows = d.seed_count_columns(seed_counts(results), "contrast at 2T", design_effect=True)
    return Table(header, rows,
                 caption=f"Seed-count rule for the needle measures at {SEED_COUNT_MULTIPLE}T: at least "
                         f"{d.MIN_MODELS} models, more if the first models' spread says {d.MIN_MODELS} cannot "
                         f"detect the design effect with {d.POWER:.0%} power")
