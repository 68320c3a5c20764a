"""Chapter 4, pretraining (the paper's Fig. 4): the runs, their final losses, the verdict."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .. import experiments as ex
from . import decide as d
from .cost import machine_label
from .labels import listing
from .runs import Results, unit_values

VARIANTS = ("a", "b", "c", "d")
SSMAX_VARIANTS = ("b", "c", "d")


def names() -> list[str]:
    """The experiments chapter 4 reads: pretraining and the held-out loss stored with chapter 5's
    evaluation (the same held-out windows for every model and seed)."""
    return [f"pretrain-{v}" for v in VARIANTS] + [f"lengthgen-{v}" for v in VARIANTS]


def load(profile: str, retrain: bool = False, device: str = "auto") -> Results:
    return ex.results_for(names(), profile, retrain=retrain, device=device)


def final_losses(results: Results, variant: str) -> dict[str, float]:
    """Each model's final loss at the training length on the common held-out windows, by unit."""
    return unit_values(results[f"lengthgen-{variant}"], lambda r: r["metrics"]["heldout_loss"]["model"])[0]


def final_val_losses(results: Results, variant: str) -> dict[str, float]:
    """Each model's final loss on its own validation batches (drawn with its seed), by unit."""
    return unit_values(results[f"pretrain-{variant}"], lambda r: r["metrics"]["final_val_loss"])[0]


def learning_curves(results: Results, variant: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(evaluation steps, validation loss) of every seed of a variant, seed 0 first."""
    return [(np.asarray(r["metrics"]["eval_steps"]), np.asarray(r["metrics"]["val_loss"]))
            for r in results[f"pretrain-{variant}"]]


def learned(results: Results, variant: str, key: str = "learned_s") -> np.ndarray:
    """(seeds, layers, heads) of a learned scalar per head: ``learned_s`` or ``learned_b``."""
    return np.asarray([r["metrics"][key] for r in results[f"pretrain-{variant}"]])


def setting(results: Results) -> dict:
    """What the chapter's prose states about the runs, read from the stored configs."""
    first = results["pretrain-b"][0]
    train = first["config"]["train"]
    model = train["model"]
    env = first["environment"]
    return {"T": model["block_size"], "s0": model["s_init"], "steps": train["steps"],
            "n_seeds": len(results["pretrain-a"]), "params": first["metrics"]["n_parameters"],
            "device": env.get("device_name", env.get("device", "")), "layers": model["n_layer"],
            "heads": model["n_head"], "width": model["n_embd"], "batch": train["batch_size"],
            "tokens": train["steps"] * train["batch_size"] * model["block_size"], "lr": train["lr"],
            "heldout_tokens": results["lengthgen-a"][0]["metrics"]["heldout_tokens"],
            "seeds": {v: len(results[f"pretrain-{v}"]) for v in VARIANTS}}


def validation_drop_by_thirds(metrics: dict) -> tuple[float, float]:
    """How much one run's validation loss fell from its first evaluation to a third of the way,
    and over the last third: whether the run is still learning fast or past its knee."""
    steps = np.asarray(metrics["eval_steps"], dtype=float)
    val = np.asarray(metrics["val_loss"], dtype=float)
    third = steps[-1] / 3
    return float(val[0] - np.interp(third, steps, val)), float(np.interp(2 * third, steps, val) - val[-1])


def drops(results: Results) -> dict[str, tuple[float, float]]:
    return {v: validation_drop_by_thirds(results[f"pretrain-{v}"][0]["metrics"]) for v in VARIANTS}


RULE = ("Each SSMax variant's final held-out loss is compared with softmax's seed by seed; a part holds if "
        "the 95% t-interval of the per-seed differences lies on the paper's side of 0, fails if it lies "
        f"below 0 or below {d.SESOI['loss_at_T']} nats per byte, and is undecided with one model per arm; "
        "statements between two SSMax variants are shown, not counted.")


def pretraining_loss(results: Results) -> d.Verdict:
    """Fig. 4: every SSMax variant ends below softmax; (d) lowest; (c) close to (b)."""
    loss = {v: final_losses(results, v) for v in VARIANTS}
    unit = "nats per byte"
    sesoi = d.SESOI["loss_at_T"]
    parts = [d.part(f"({v}) below (a) in final held-out loss", d.paired(loss[v], loss["a"], higher_is_better=False),
                    sesoi, unit) for v in SSMAX_VARIANTS]
    for v in ("b", "c"):
        parts.append(d.part(f"(d) below ({v}): the bias variant is the lowest",
                            d.paired(loss["d"], loss[v], higher_is_better=False), sesoi, unit, counted=False,
                            note="compares two SSMax variants"))
    # "(c) close to (b)": |c - b| within the smallest effect of interest; positive = closer than that
    close = {u: sesoi - abs(loss["c"][u] - loss["b"][u]) for u in loss["c"] if u in loss["b"]}
    control = {u: sesoi - abs(loss["a"][u] - loss["b"][u]) for u in loss["a"] if u in loss["b"]}
    ctrl = d.decide(d.Effect(tuple(control), tuple(control.values())), sesoi, unit)
    note = "compares two SSMax variants"
    if ctrl.kind == d.REPRODUCED or all(v > 0 for v in control.values()):
        note += "; softmax (a) is as close to (b), so the statement holds for every variant"
    parts.append(d.part(f"(c) within {sesoi:g} of (b) (margin left: {sesoi:g} minus the gap)",
                        d.Effect(tuple(close), tuple(close.values())), sesoi, unit, counted=False, note=note))
    means = ", ".join(f"({v}) {np.mean(list(loss[v].values())):.3f}" for v in VARIANTS)
    return d.Verdict("fig4", "Fig. 4", "SSMax variants (b)-(d) reach a lower pretraining loss than softmax (a); "
                     "(d) lowest; (c) close to (b)", RULE, parts,
                     f"final held-out loss at T, mean over seeds: {means}")


def paired_differences(results: Results) -> dict[str, dict[str, float]]:
    """Each SSMax variant's held-out loss minus softmax's, seed by seed."""
    a = final_losses(results, "a")
    return {v: {u: x - a[u] for u, x in final_losses(results, v).items() if u in a} for v in SSMAX_VARIANTS}


def seed_spread(values: dict[str, float]) -> float:
    return float(max(values.values()) - min(values.values())) if values else math.nan


def machines(results: Results) -> str:
    """Where the pretrainings ran, e.g. "an NVIDIA H200 (6 runs) and a CPU with 2 torch threads (8 runs)"
    (each stored result records its device and torch threads)."""
    where = Counter(machine_label(r["environment"]) for v in VARIANTS for r in results[f"pretrain-{v}"])
    return listing([f"{k} ({n} run{'s' if n > 1 else ''})" for k, n in where.items()])
