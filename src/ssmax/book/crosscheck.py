"""The page "Use SSMax in your model": the benchmark of `ssmax.hf` and the cross-check of the
book's length experiment on Hugging Face's `LlamaForCausalLM`, judged by the book's one procedure.

The cross-check's Llama runs share the profile's seeds, data and data order with our model's
``lengthgen-{a,b}``, so (b) against (a) is paired by pretraining seed exactly as in chapter 5
(`length.loss_parts`): per window beyond T, a difference in differences against [1,T]. The two
implementations are judged separately, on the same windows, and then set side by side.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np

from .. import experiments as ex
from .. import results as store
from . import decide as d
from . import labels
from . import length
from .runs import Results

VARIANTS = ("a", "b")
THETAS = (1, 50)
IMPLEMENTATIONS = ("our model", "transformers Llama")
RULE = ("Per window beyond T, SSMax (b) against softmax (a) of the same pretraining seed, as in Fig. 5: a part holds "
        "if the loss gain beyond T and its excess over the gain within [1,T] both have 95% t-intervals above 0, and "
        f"fails below 0 or below {d.SESOI['loss_beyond_T']} nats per byte.")


def hf_names(stage: str = "lengthgen") -> list[str]:
    return [f"hf-{stage}-{v}" for v in VARIANTS]


def available(names: list[str], profile: str) -> tuple[Results, list[str]]:
    """The current results of ``names`` (every seed of the profile that has one) and the
    commands that make the missing ones: the page reports what exists, and says what does not."""
    found: Results = {}
    missing = []
    for name in names:
        found[name] = []
        for seed in ex.seeds_for(name, profile):
            try:
                found[name].append(store.load_result(profile, name, seed, ex.experiment_config(name, profile, seed)))
            except store.ResultsError:
                missing.append(store.run_command(name, profile, seed))
    return found, missing


def load(profile: str, retrain: bool = False, device: str = "auto") -> dict[str, Any]:
    """Both implementations' length results, keyed like chapter 5's (``lengthgen-a``, ...), their
    pretraining results, and the commands for cross-check runs still missing. With ``retrain``
    the cross-check runs are made first; our model's results must exist (the chapters need them)."""
    if retrain:
        for name in hf_names():
            for seed in ex.seeds_for(name, profile):
                ex.run(name, profile, seed, device=device, force=True, progress=False)
    hf_len, missing = available(hf_names(), profile)
    hf_pre, _ = available(hf_names("pretrain"), profile)
    own_len = ex.results_for([length.lengthgen_name(v) for v in VARIANTS], profile)
    own_pre = ex.results_for([f"pretrain-{v}" for v in VARIANTS], profile)
    relabel = {f"lengthgen-{v}": hf_len[f"hf-lengthgen-{v}"] for v in VARIANTS}
    return {"lengthgen": {"our model": own_len, "transformers Llama": relabel},
            "pretrain": {"our model": {v: own_pre[f"pretrain-{v}"] for v in VARIANTS},
                         "transformers Llama": {v: hf_pre[f"hf-pretrain-{v}"] for v in VARIANTS}},
            "missing": missing}


def complete(results: Results) -> bool:
    """Both variants have at least one seed (else there is nothing to compare)."""
    return all(results.get(f"lengthgen-{v}") for v in VARIANTS)


def verdict(results: Results, implementation: str, theta: int) -> d.Verdict:
    """(b) generalizes better than (a) on one implementation at one RoPE base, by the book's rule."""
    parts = length.loss_parts(results, "b", "a", theta)
    short = "ours" if implementation == "our model" else "llama"
    return d.Verdict(f"crosscheck-{short}-theta{theta}", "Fig. 5 on transformers' Llama" if short == "llama"
                     else "Fig. 5, (b) against (a)",
                     f"SSMax (b) generalizes beyond T better than softmax (a): {implementation}, RoPE base "
                     f"theta x{theta}", RULE, parts, f"{length.replicates(results['lengthgen-a'])} per variant",
                     beyond_paper=True)


def llama_verdicts(profile: str) -> list[d.Verdict]:
    """The cross-check's own questions for the scorecard: (b) against (a) on the Llama at each RoPE
    base (our model's side repeats chapter 5's Fig. 5 parts, so it is not counted twice); none
    where the Llama runs are missing."""
    data = load(profile)
    return [v for (impl, _), v in verdicts(data).items() if impl == "transformers Llama"]


def verdicts(data: dict[str, Any]) -> dict[tuple[str, int], d.Verdict]:
    """One verdict per implementation and RoPE base (implementations with no results left out)."""
    return {(impl, theta): verdict(res, impl, theta) for impl, res in data["lengthgen"].items() if complete(res)
            for theta in THETAS}


def window_rows(data: dict[str, Any]) -> list[list[str]]:
    """Per RoPE base and window: the paired difference (b) - (a) with its interval and outcome,
    for our model and for the Llama side by side (differences, not differences in differences,
    so the within-T row reads like the others)."""
    rows = []
    for theta in THETAS:
        ref = data["lengthgen"]["our model"]
        for w in length.windows(ref):
            cells = [f"θ×{theta}", w[0]]
            for impl in IMPLEMENTATIONS:
                res = data["lengthgen"][impl]
                if not complete(res) or w not in length.windows(res):
                    cells += ["not run", ""]
                    continue
                b, _ = length.window_losses(res, "b", w, theta)
                a, _ = length.window_losses(res, "a", w, theta)
                e = d.paired(b, a, True)  # (b) - (a): negative is SSMax lower
                lo, hi = e.interval
                cells.append(f"{e.mean:+.3f} [{lo:+.3f}, {hi:+.3f}]" if e.n > 1 else f"{e.mean:+.3f} (one seed)")
                cells.append(direction(e))
            rows.append(cells)
    return rows


def direction(effect: d.Effect) -> str:
    """What a paired loss difference (b) - (a) says in words."""
    if effect.n < 2:
        return "one seed: no interval"
    lo, hi = effect.interval
    return "SSMax lower" if hi < 0 else "SSMax higher" if lo > 0 else "interval holds 0"


def per_seed_rows(data: dict[str, Any]) -> list[list[str]]:
    """Seed by seed: each implementation's (a) and (b) loss per RoPE base and window."""
    rows = []
    for impl in IMPLEMENTATIONS:
        res = data["lengthgen"][impl]
        if not complete(res):
            continue
        for theta in THETAS:
            for w in length.windows(res):
                a, _ = length.window_losses(res, "a", w, theta)
                b, _ = length.window_losses(res, "b", w, theta)
                for unit in sorted(set(a) & set(b)):
                    rows.append([impl, f"θ×{theta}", w[0], unit, f"{a[unit]:.3f}", f"{b[unit]:.3f}",
                                 f"{b[unit] - a[unit]:+.3f}"])
    return rows


def mean_curves(data: dict[str, Any], theta: int) -> dict[tuple[str, str], np.ndarray]:
    """Mean per-position loss over seeds, per (implementation, variant)."""
    out = {}
    for impl, res in data["lengthgen"].items():
        if complete(res):
            for v in VARIANTS:
                out[(impl, v)] = length.curves(res, v, theta).mean(axis=0)
    return out


def training_rows(data: dict[str, Any]) -> list[list[str]]:
    """Final validation loss (mean over seeds) and, for (b), the learned s (mean over layers,
    heads and seeds) of each implementation."""
    rows = []
    for impl, by_variant in data["pretrain"].items():
        for v in VARIANTS:
            runs = by_variant[v]
            if not runs:
                rows.append([impl, f"({v})", "0", "not run", ""])
                continue
            loss = np.mean([r["metrics"]["final_val_loss"] for r in runs])
            s = [np.mean(r["metrics"]["learned_s"]) for r in runs if r["metrics"].get("learned_s")]
            rows.append([impl, f"({v})", str(len(runs)), f"{loss:.3f}", f"{np.mean(s):.3f}" if s else ""])
    return rows


def setting(data: dict[str, Any], profile: str) -> dict[str, Any]:
    """The numbers the page's prose names: T, evaluated length, documents, seeds, runs done."""
    own = data["lengthgen"]["our model"]
    hf = data["lengthgen"]["transformers Llama"]
    config = ex.experiment_config("hf-pretrain-a", profile, 0)
    llama = config.evaluation["llama_config"]
    seeds = ex.seeds_for("hf-lengthgen-a", profile)
    done = sum(len(hf[f"lengthgen-{v}"]) for v in VARIANTS)
    paired = sorted({r["seed"] for r in hf["lengthgen-a"]} & {r["seed"] for r in hf["lengthgen-b"]})
    return {"T": length.train_len(own), "L": length.curve_length(own),
            "docs": int(own["lengthgen-a"][0]["config"]["evaluation"]["n_documents"]),
            "shape": f"{llama['num_hidden_layers']} layers, {llama['num_attention_heads']} heads, width "
                     f"{llama['hidden_size']}",
            "steps": int(config.train.steps), "seeds": len(seeds), "runs_all": 2 * len(seeds),
            "runs_done": done, "paired": len(paired), "own_seeds": len(own["lengthgen-a"])}


def load_bench(device_type: str = "cpu") -> Optional[dict]:
    """The stored `make bench` section on `ssmax.hf`, data/results/bench/hf-<device>.json, or None."""
    path = store.results_root() / "bench" / f"hf-{device_type}.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise store.CorruptResultsError(f"{path} is not valid JSON ({err}); rerun `python benchmarks/run.py --hf-only`") from err


def listing(items: list[str]) -> str:
    """"a, b and c" (or "not measured" for none)."""
    return labels.listing(items, none="not measured")


def bench_rows(bench: Optional[dict]) -> list[dict]:
    return list((bench or {}).get("hf_attention") or [])


def bench_words(bench: Optional[dict]) -> dict[str, str]:
    """What the page says of the benchmark: the lengths, the ratios, the largest deviation from 1
    and the machine it ran on."""
    rows, env = bench_rows(bench), (bench or {}).get("environment", {})
    dev = max((abs(r["ratio"] - 1) for r in rows), default=float("nan"))
    load_avg = (env.get("load_average_1min") or {}).get("start")
    return {"T_list": listing([f"{r['T']:,}" for r in rows]), "ratios": listing([f"{r['ratio']:.2f}" for r in rows]),
            "deviation": f"{dev:.0%}", "device": str(env.get("device_name", "no machine")),
            "threads": (f"{env['torch_threads']} torch thread{'s' if env['torch_threads'] != 1 else ''}"
                        if isinstance(env.get("torch_threads"), int) else "an unrecorded number of torch threads"),
            "load": f"{load_avg:.1f}" if isinstance(load_avg, (int, float)) else "not recorded"}


def bench_table_rows(bench: Optional[dict]) -> list[list[str]]:
    return [[f"{r['T']:,}", f"{r['sdpa_ms']:.2f}", f"{r['ssmax_ms']:.2f}", f"{r['ratio']:.3f}"] for r in bench_rows(bench)]


def summary(data: dict[str, Any]) -> str:
    """The page's answer about the cross-check, in one sentence computed from the verdicts and
    the per-window differences; it never says more than the verdicts."""
    found = verdicts(data)
    llama = [v for (impl, _), v in found.items() if impl == "transformers Llama"]
    if not llama:
        return "has not been run yet (the commands below make it)."
    kinds = {v.kind for v in found.values()}
    kind_words = next(iter(kinds)) if len(kinds) == 1 else listing(sorted(kinds))
    reasons = sorted({r for v in found.values() for r in v.reasons})
    rows = [r for r in window_rows(data) if r[3] and r[5]]  # windows both implementations reach
    same = sum(r[3] == r[5] for r in rows)
    n_models = min(len(data["lengthgen"]["transformers Llama"]["lengthgen-a"]),
                   len(data["lengthgen"]["transformers Llama"]["lengthgen-b"]))
    return (f"comes out *{kind_words}*" + (f" ({listing(reasons)})" if reasons else "")
            + f" on both implementations and both RoPE bases, with {n_models} independently trained Llamas per variant: "
            f"in {same} of the {len(rows)} windows the two implementations' paired differences (b) − (a) say the same "
            f"thing ({listing(sorted({r[3] for r in rows}))}).")


def agreement(data: dict[str, Any]) -> str:
    """Where the two implementations' per-window differences differ, or that they do not, with
    the number of windows whose mean differences share a sign."""
    rows = [r for r in window_rows(data) if r[3] and r[5] and r[4] != "not run"]
    if not rows:
        return "With no Llama results there is nothing to compare yet."
    differ = [f"{r[1]} at {r[0]} (our model: {r[3]}; Llama: {r[5]})" for r in rows if r[3] != r[5]]
    sign = sum((float(r[2].split()[0]) > 0) == (float(r[4].split()[0]) > 0) for r in rows)
    if differ:
        return "They differ in " + "; ".join(differ) + f". Their mean differences have the same sign in {sign} of {len(rows)} windows."
    return (f"The two agree in every window, and their mean differences (b) − (a) have the same sign in {sign} of "
            f"the {len(rows)}.")


def training_gap(data: dict[str, Any]) -> str:
    """The Llama's final validation loss minus our model's, per variant (means over seeds)."""
    gaps = []
    for v in VARIANTS:
        mine = [r["metrics"]["final_val_loss"] for r in data["pretrain"]["our model"][v]]
        theirs = [r["metrics"]["final_val_loss"] for r in data["pretrain"]["transformers Llama"][v]]
        if mine and theirs:
            gaps.append(f"({v}) {np.mean(theirs) - np.mean(mine):+.3f}")
    return ("No Llama run has finished yet." if not gaps
            else "The Llama's loss minus our model's: " + ", ".join(gaps) + " nats per byte.")


def detectable(data: dict[str, Any]) -> str:
    """The smallest (b) − (a) loss difference over (T,4T] at θ×50 each implementation's design
    could tell from 0 (the paired interval's half-width)."""
    out = []
    for impl in IMPLEMENTATIONS:
        res = data["lengthgen"][impl]
        if not complete(res):
            continue
        b, _ = length.window_losses(res, "b", d.BEYOND_WINDOWS[1], 50)
        a, _ = length.window_losses(res, "a", d.BEYOND_WINDOWS[1], 50)
        e = d.paired(b, a, True)
        out.append(f"{e.half_width:.3f} nats per byte for {impl} ({e.n} seeds)" if e.n > 1 else f"none for {impl} (one seed)")
    return listing(out)


def figure(data: dict[str, Any], smooth_window: int):
    """Mean loss per position over seeds, our model (dashed) and the Llama (solid), (a) and (b),
    at the trained RoPE base and at θ×50; panels side by side (stacked on a narrow column)."""
    from ..evaluate import smooth
    from . import plots

    own = data["lengthgen"]["our model"]
    T, L = length.train_len(own), length.curve_length(own)
    pos = np.arange(1, L + 1)
    fig, axes = plots.new_figure(ncols=2, sharey=True)
    for ax, theta in zip(axes, THETAS):
        for (impl, v), curve in mean_curves(data, theta).items():
            ax.plot(pos, smooth(curve, smooth_window), color=plots.VARIANT_COLORS[v],
                    ls="--" if impl == "our model" else "-", lw=1.2, label=f"({v}) {impl}")
        ax.axvline(T, color="0.5", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("position")
        ax.set_title(f"RoPE base θ×{theta}")
    for ax in plots.first_column(axes):
        ax.set_ylabel("loss (nats per byte)")
    plots.legend_below(fig, axes[0], ncols=2)
    return fig
