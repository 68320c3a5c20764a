"""Stored runs grouped by their unit of replication, the independently trained model.

A result's unit is the seed of the pretraining run at the root of its chain of weights
(``init_from``, and the theta study's ``lm_model``), read from the registry
(`ssmax.experiments.experiment_config`), never assumed: for a needle variant replicated end to
end seed k fine-tunes pretraining seed k, so the same code sees one unit per seed; in the others
every fine-tuning seed starts from pretraining seed 0, and all of them are one unit. A set-task
run is its own unit (its seed).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from .. import experiments
from ..results import run_key
from .labels import listing

__all__ = ["run_key", "root_seed", "unit_of", "by_unit", "unit_values", "replicates", "grouped_replicates", "Results"]

Results = dict[str, list[dict]]  # {experiment: [result per seed]}, as `experiments.results_for` returns


def _split(key: str) -> tuple[str, int]:
    name, seed = key.rsplit("--seed", 1)
    return name, int(seed)


def root_seed(result: dict) -> int:
    """The seed of the independently trained model a stored run derives from."""
    profile, config = result["profile"], result["config"]
    seen = 0
    while True:
        source = config.get("init_from") or (config.get("evaluation") or {}).get("lm_model")
        if not source:
            return int(result["seed"]) if seen == 0 else seed
        name, seed = _split(source)
        config = experiments.store.to_jsonable(experiments.experiment_config(name, profile, seed))
        seen += 1


def unit_of(result: dict) -> str:
    """The unit's label, e.g. "seed 0"."""
    return f"seed {root_seed(result)}"


def by_unit(runs: list[dict], value: Callable[[dict], float]) -> dict[str, list[float]]:
    """``value`` of every run, grouped by unit (several fine-tuning seeds of one pretrained model
    land in one group)."""
    out: dict[str, list[float]] = {}
    for r in runs:
        out.setdefault(unit_of(r), []).append(float(value(r)))
    return out


def unit_values(runs: list[dict], value: Callable[[dict], float],
                within_se: Optional[Callable[[dict], float]] = None) -> tuple[dict[str, float], dict[str, float]]:
    """One value per unit (the mean over its sub-replicates) and that unit's own error: the
    standard error over its sub-replicates when it has several (fine-tuning seeds), else
    ``within_se`` of its one run (documents or trials), else nan."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(unit_of(r), []).append(r)
    means, ses = {}, {}
    for u, rs in groups.items():
        vals = np.asarray([value(r) for r in rs], dtype=float)
        means[u] = float(vals.mean())
        if vals.size > 1:
            ses[u] = float(vals.std(ddof=1) / math.sqrt(vals.size))
        else:
            ses[u] = float(within_se(rs[0])) if within_se else float("nan")
    return means, ses


def replicates(runs: list[dict]) -> str:
    """"3 fine-tuning seeds of 1 pretrained model" or "3 seeds": what a set of runs holds."""
    units = {unit_of(r) for r in runs}
    if len(units) == len(runs):
        return f"{len(runs)} independently trained model{'s' if len(runs) > 1 else ''}"
    return f"{len(runs)} fine-tuning seeds of {len(units)} pretrained model{'s' if len(units) > 1 else ''}"


def grouped_replicates(runs_by_label: dict[str, list[dict]],
                       phrase: Callable[[list[str], str], str] = lambda labels, what: f"{listing(labels)}: {what}") -> str:
    """"(a) and (b): 5 independently trained models; (d): 1 independently trained model": what each
    labelled set of runs holds, labels with the same grouped, in the order first seen; ``phrase``
    words one group from its labels and what they hold."""
    groups: dict[str, list[str]] = {}
    for label, runs in runs_by_label.items():
        groups.setdefault(replicates(runs), []).append(label)
    return "; ".join(phrase(labels, what) for what, labels in groups.items())
