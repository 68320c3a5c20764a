"""What the stored runs of a profile cost, read from the results files only (the appendix
"What SSMax costs" shows these).

* `runs` / `group_summary`: every stored run with its budget group (`experiments.budget_group`),
  the device its results record, its wall time and the training tokens it processed.
* `estimated_minutes`: training tokens over a measured training speed (tokens/s), an *estimate*
  of the training time on the machine that speed was measured on.
* `reference_runs` / `reference_comparison`: runs of the same experiments computed earlier on
  another device, kept under ``data/results/<folder>/`` (see its README), against the profile's.
* `bench_tables`: the stored benchmark (`ssmax.bench`) as `report.Table` objects.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Optional


from .. import results as store
from .labels import listing

REFERENCE_FOLDER = "reference-cpu"


def _read_folder(folder: str, checked: bool = True) -> dict[str, dict]:
    """The runs of ``data/results/<folder>/``; ``checked=False`` reads plain JSON (reference runs
    written before results carried a checksum)."""
    path = store.results_root() / folder
    if not path.is_dir():
        return {}
    read = store.read_result_file if checked else (lambda p: json.loads(p.read_text()))
    # only <experiment>--seed<k>.json of known experiments: a stray copy is not a run
    return {p.stem: read(p) for p in store.result_files(path)}


def _block_size(result: dict, stored: dict[str, dict]) -> Optional[int]:
    """The context length a training run trained at: its own model's, else the model it starts
    from (`init_from`)."""
    model = (result["config"].get("train") or {}).get("model")
    if model:
        return int(model["block_size"])
    source = stored.get(result["config"].get("init_from") or "")
    return None if source is None else _block_size(source, stored)


def training_tokens(result: dict, stored: dict[str, dict]) -> int:
    """Tokens a language-model training run processed: steps x batch x context length, times
    the number of learning-rate tries it recorded (needle fine-tuning, ``lr_tries``); 0 for
    runs that do not train a language model (evaluations, set tasks)."""
    train = result["config"].get("train")
    if not train or result["config"]["kind"] == "set_task":
        return 0
    block = _block_size(result, stored)
    if block is None:
        return 0
    tries = len(result["metrics"].get("lr_tries") or [None])
    return int(train["steps"]) * int(train["batch_size"]) * block * tries


def runs(profile: str) -> list[dict[str, Any]]:
    """One row per stored run of ``profile``: key, experiment, kind, group, device, threads (torch's),
    wall_s, train_tokens."""
    from ..experiments import budget_group

    stored = _read_folder(profile)
    rows = []
    for key, r in stored.items():
        env = r["environment"]
        rows.append({"key": key, "experiment": r["experiment"], "kind": r["config"]["kind"],
                     "group": budget_group(r["experiment"]),
                     "device": store.device_label(env), "threads": env.get("torch_threads"),
                     "wall_s": float(env.get("wall_time_s", float("nan"))),
                     "train_tokens": training_tokens(r, stored)})
    return rows


def group_summary(profile: str) -> dict[str, dict[str, Any]]:
    """Per budget group: runs, wall minutes (summed over runs), training tokens, the devices the
    runs record, and the group's budget in minutes (`experiments.time_budgets`)."""
    from ..experiments import time_budgets

    budgets = time_budgets(profile)
    out: dict[str, dict[str, Any]] = {}
    for row in runs(profile):
        g = out.setdefault(row["group"], {"runs": 0, "wall_min": 0.0, "train_tokens": 0, "devices": set(),
                                          "train_runs": 0, "budget_min": budgets.get(row["group"])})
        g["runs"] += 1
        g["wall_min"] += row["wall_s"] / 60
        g["train_tokens"] += row["train_tokens"]
        g["train_runs"] += row["train_tokens"] > 0
        g["devices"].add(row["device"])
    for g in out.values():
        g["devices"] = " and ".join(sorted(g["devices"]))
    return out


def machine_label(env: dict) -> str:
    """A results file's machine in words: "an NVIDIA H200" or "a CPU with 2 torch threads"."""
    device = store.device_label(env)
    return f"a CPU with {env.get('torch_threads', '?')} torch threads" if device == "cpu" else f"an {device}"


def machines(rows: list[dict[str, Any]]) -> str:
    """The machines rows of `runs` record, in words: "an NVIDIA H200 and a CPU with 2 torch threads"."""
    return listing(sorted({machine_label({"device": r["device"], "torch_threads": r["threads"]}) for r in rows}),
                   none="no machine")


def estimated_minutes(tokens: int, tokens_per_s: float) -> float:
    """Minutes to process ``tokens`` at ``tokens_per_s``: an estimate, valid only as far as the
    speed was measured on the same model and machine."""
    if tokens_per_s <= 0:
        raise ValueError(f"tokens_per_s must be > 0; got {tokens_per_s}")
    return tokens / tokens_per_s / 60


def reference_runs(folder: str = REFERENCE_FOLDER) -> dict[str, dict]:
    """The runs stored under ``data/results/<folder>/`` (empty if the folder is absent), read as
    plain JSON: they are kept for comparison, and predate the results' checksums."""
    return _read_folder(folder, checked=False)


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_difference(a: dict, b: dict) -> dict[str, tuple[Any, Any]]:
    """Fields where two runs' configurations differ, ``{field: (a's, b's)}`` (None: absent)."""
    fa, fb = _flat(a["config"]), _flat(b["config"])
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def headline_metric(result: dict) -> tuple[str, float]:
    """The number a run is compared by: final validation loss (training), else accuracy at the
    largest test size (set tasks)."""
    m = result["metrics"]
    if "final_val_loss" in m:
        return "final validation loss", float(m["final_val_loss"])
    if result["config"]["kind"] == "set_task":
        return "accuracy at the largest n", float(m["accuracy"][-1])
    raise ValueError(f"no comparable metric in {result['experiment']}")


def reference_comparison(profile: str, folder: str = REFERENCE_FOLDER) -> list[dict[str, Any]]:
    """Each reference run beside the profile's run of the same experiment and seed: devices,
    wall times, the compared metric, and the configuration fields that differ (fields the
    older run lacks show as None)."""
    ours = _read_folder(profile)
    rows = []
    for key, ref in reference_runs(folder).items():
        # compared by their headline number: pretrainings and set tasks (the other reference runs
        # are kept for their 2-core times, `two_core_times`)
        if key not in ours or ref["config"]["kind"] not in ("pretrain", "set_task"):
            continue
        run = ours[key]
        metric, ref_value = headline_metric(ref)
        rows.append({"key": key, "experiment": ref["experiment"], "seed": ref["seed"], "metric": metric,
                     "reference": ref_value, "profile": headline_metric(run)[1],
                     "reference_device": store.device_label(ref["environment"]),
                     "profile_device": store.device_label(run["environment"]),
                     "reference_wall_s": float(ref["environment"]["wall_time_s"]),
                     "profile_wall_s": float(run["environment"]["wall_time_s"]),
                     "reference_threads": ref["environment"].get("torch_threads"),
                     "reference_tokens_per_s": ref["environment"].get("train_train_tokens_per_s"),
                     "same_config": ref["config_hash"] == run["config_hash"],
                     "config_difference": config_difference(ref, run)})
    return rows


def reference_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per compared metric: runs, largest |difference|, and the reference runs' summed wall
    minutes."""
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"runs": 0, "max_abs_diff": 0.0, "reference_wall_min": 0.0,
                                                         "profile_wall_min": 0.0, "same_config": True})
    for r in rows:
        s = out[r["metric"]]
        s["runs"] += 1
        s["max_abs_diff"] = max(s["max_abs_diff"], abs(r["profile"] - r["reference"]))
        s["reference_wall_min"] += r["reference_wall_s"] / 60
        s["profile_wall_min"] += r["profile_wall_s"] / 60
        s["same_config"] &= r["same_config"]
    return dict(out)


# --- the benchmark as tables ----------------------------------------------------------------

def bench_tables(result: dict) -> dict[str, Any]:
    """The stored benchmark as `report.Table` objects: "layer_time", "layer_memory", "training",
    "decoding", "compile"."""
    from ..bench import IMPLS, _ratio
    from .html import Table

    rows = result["attention_layer"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in rows)]
    by = {(r["impl"], r["T"]): r for r in rows}
    lengths = sorted({r["T"] for r in rows})

    def time_cell(impl: str, T: int) -> str:
        r = by[(impl, T)]
        if r["median_ms"] is None:
            return "skipped"
        return f"{r['median_ms']:,.2f} (×{_ratio(r, by[('softmax', T)]):.2f})"

    header = ["T"] + [i.replace("_", " ") for i in impls]
    out = {
        "layer_time": Table(header, [[f"{T:,}"] + [time_cell(i, T) for i in impls] for T in lengths],
                            caption="attention layer, forward + backward: median ms (× softmax's time)"),
        "layer_memory": Table(header, [[f"{T:,}"] + ["skipped" if by[(i, T)]["peak_mb"] is None
                                                     else f"{by[(i, T)]['peak_mb']:,.1f}" for i in impls]
                                       for T in lengths],
                              caption="peak memory above the inputs, MB (a fresh process per case)"),
    }
    peak = result.get("matmul_peak_gflops")
    train = result["training"]
    soft = next(r["tokens_per_s"] for r in train if r["scaling"] == "softmax")
    out["training"] = Table(["model", "tokens/s", "GFLOP/s", "of the matmul peak", "of softmax's speed (median ratio)"],
                            [[r["scaling"], f"{r['tokens_per_s']:,.0f}", f"{r['model_gflops_per_s']:.1f}",
                              "–" if not peak else f"{r['model_gflops_per_s'] / peak:.1%}",
                              f"{r.get('ratio_to_softmax', r['tokens_per_s'] / soft):.1%}"] for r in train])
    decode = result.get("decoding") or []
    if decode:
        dsoft = next(r["tokens_per_s"] for r in decode if r["scaling"] == "softmax")
        out["decoding"] = Table(["model", "tokens/s", "of softmax's"],
                                [[r["scaling"], f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / dsoft:.1%}"]
                                 for r in decode])
    comp = result.get("compile")
    if comp:
        base = {r["model"]: r["tokens_per_s"] for r in comp["rows"]}
        out["compile"] = Table(["model", "tokens/s", "x eager"],
                               [[r["model"], f"{r['tokens_per_s']:,.0f}",
                                 "–" if "+" not in r["model"] else f"{r['tokens_per_s'] / base[r['model'].split('+')[0]]:.2f}"]
                                for r in comp["rows"]])
    return out


def bench_checks(result: dict) -> dict[str, Any]:
    """The benchmark's checks as numbers (`bench.check_numbers`, which `bench.format_checks` prints)."""
    from ..bench import check_numbers

    return check_numbers(result)


def bench_checks_table(result: dict):
    """`bench_checks` per T as a `report.Table`."""
    from .html import Table

    rows = [[f"{c['T']:,}", f"{c['ratio']:.3f}", f"{c['diff_ms']:+.3f}", f"{c['target']:.2f}",
             "within" if c["ratio"] <= c["target"] else "outside",
             "–" if c["s_grad_ms"] is None else f"{c['s_grad_ms']:+.3f}"] for c in bench_checks(result)["layer"]]
    return Table(["T", "fused SSMax / softmax time", "difference, ms", "target", "check", "of it, the gradient of s, ms"], rows)


# --- the profile's time on 2 CPU cores, measured ---------------------------------------------------
TWO_CORE_THREADS = 2  # the machine the cpu profile is meant for: 2 cores, torch using both


def on_two_cores(result: dict) -> bool:
    """Whether a run was computed where the cpu profile is meant to run: on the CPU, with
    `TWO_CORE_THREADS` torch threads (one run at a time)."""
    env = result["environment"]
    return env.get("device") == "cpu" and env.get("torch_threads") == TWO_CORE_THREADS


def _tries(result: dict) -> int:
    return len(result["metrics"].get("lr_tries") or [None])


def two_core_times(profile: str, folder: str = REFERENCE_FOLDER) -> list[dict[str, Any]]:
    """One row per run of the profile (every experiment and seed `experiments.run_keys` lists):
    its wall time on 2 CPU cores and where that number comes from, in this order:

    * "measured": the run itself, stored under ``data/results/<profile>/``, ran on 2 cores;
    * "reference run": the same experiment and seed ran on 2 cores under ``<folder>``;
    * "same experiment" / "same kind": the mean per learning-rate try of the runs of the same
      experiment (else of the same kind) measured on 2 cores, times this run's tries;
    * "not measured": none of those exists (``minutes`` is nan).

    Nothing here is estimated from another machine's speed."""
    from .. import experiments as ex

    # plain JSON: only the recorded environments are read (the chapters check their own results)
    ours, refs = _read_folder(profile, checked=False), reference_runs(folder)
    measured = {k: r for k, r in ours.items() if on_two_cores(r)}
    measured.update({k: r for k, r in refs.items() if on_two_cores(r) and k not in measured})
    per_try: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in measured.values():
        wall = float(r["environment"]["wall_time_s"]) / _tries(r)
        per_try[("experiment", r["experiment"])].append(wall)
        per_try[("kind", r["config"]["kind"])].append(wall)
    rows = []
    for name, seed in ex.run_keys(profile):
        key = store.run_key(name, seed)
        stored = ours.get(key)
        kind = stored["config"]["kind"] if stored else ex.experiment_config(name, profile, seed).kind
        tries = _tries(stored) if stored else 1
        if key in ours and on_two_cores(ours[key]):
            source, wall = "measured", float(ours[key]["environment"]["wall_time_s"])
        elif key in measured:
            source, wall = "reference run", float(measured[key]["environment"]["wall_time_s"])
        elif per_try[("experiment", name)]:
            source, wall = "same experiment", tries * sum(per_try[("experiment", name)]) / len(per_try[("experiment", name)])
        elif per_try[("kind", kind)]:
            source, wall = "same kind", tries * sum(per_try[("kind", kind)]) / len(per_try[("kind", kind)])
        else:
            source, wall = "not measured", float("nan")
        rows.append({"key": key, "experiment": name, "kind": kind, "group": ex.budget_group(name),
                     "source": source, "minutes": wall / 60})
    return rows


KIND_WORDS = {"pretrain": "pretraining", "lengthgen": "per-position loss", "needle_sft": "needle fine-tuning",
              "needle_eval": "needle evaluation", "needle_score": "needle score", "theta_study": "theta study",
              "set_task": "set task"}


def two_core_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per kind of run: runs in the profile, how many of their times are measured on 2 cores
    (the run itself or its reference run), the minutes summed (nan if any is not measured)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault(r["kind"], {"kind": KIND_WORDS.get(r["kind"], r["kind"]), "runs": 0, "measured": 0,
                                       "minutes": 0.0, "group": r["group"]})
        s["runs"] += 1
        s["measured"] += r["source"] in ("measured", "reference run")
        s["minutes"] += r["minutes"]
    return list(out.values())


def retrain_minutes(profile: str, names: list[str], rows: Optional[list[dict[str, Any]]] = None) -> float:
    """Minutes on 2 CPU cores that rerunning ``names`` (every seed; a chapter's ``retrain True``)
    takes, from `two_core_times` (runs of an unmeasured kind left out)."""
    import math

    rows = two_core_times(profile) if rows is None else rows
    wanted = set(names)
    return sum(r["minutes"] for r in rows if r["experiment"] in wanted and not math.isnan(r["minutes"]))
