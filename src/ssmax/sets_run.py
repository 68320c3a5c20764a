"""The set-task experiments: names, configs per profile, training, evaluation, metrics.

Names (``python -m ssmax list``):
  maxret-<variant>                 max retrieval, plain q.k/sqrt(d) logits
  keyret-<variant>-bounded         key retrieval, g cos(q, k) with g <= g_max (a bounded margin)
  keyret-<variant>-unbounded       key retrieval, g cos(q, k) with g free
with <variant> one of softmax, ssmax (learned s), ssmax_fixed (s = 1), asentmax. Every model is
trained on sets of n ~ U{4..16} items and tested on fixed sets of 16 to 4,096 items (cpu profile;
65,536 on gpu) that every variant and seed shares. A softmax run also scores its model with the inference-time fixes
(log n / log 16 beyond 16; Velickovic et al.'s adaptive temperature): no retraining.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_checkpoint, save_checkpoint
from .sets import (EVAL_VARIANTS, VARIANTS, SetBatch, SetModel, attention_entropy, effective_margin, sample_batch,
                   set_s_init, target_weight, top_two_gap, two_level_weight)

SET_TASKS = {"maxret": ("maxret", "dot"), "keyret-bounded": ("keyret", "capped"),
             "keyret-unbounded": ("keyret", "free")}
TRAIN_SIZES = (4, 16)  # n ~ U{4..16} per training example
CHANCE = 0.1  # 10 classes
# fixed data streams: validation and test sets depend on the task and n only, never on the model
VAL_SEED, TEST_SEED = 7_000_000, 9_000_000


@dataclass(frozen=True)
class SetProfile:
    steps: int
    batch_size: int
    lr: float
    val_sets_per_size: int  # validation sets at each training size
    test_sizes: tuple[int, ...]
    test_sets: int  # per test size
    seeds: tuple[int, ...]
    warmup_steps: int = 100
    checkpoint_every: int = 500
    log_every: int = 100
    eval_chunk_items: int = 1 << 17  # items per evaluation forward pass
    time_budget_min: Optional[float] = None  # wall time of all set runs on the profile's machine


SET_PROFILES = {
    "smoke": SetProfile(steps=12, batch_size=16, lr=3e-3, val_sets_per_size=4, test_sizes=(16, 256), test_sets=20,
                        seeds=(0, 1), warmup_steps=2, checkpoint_every=6, log_every=4),
    "cpu": SetProfile(steps=1500, batch_size=128, lr=3e-3, val_sets_per_size=200,
                      test_sizes=(16, 64, 256, 1024, 4096), test_sets=2000, seeds=(0, 1, 2),
                      time_budget_min=45.0),  # on 2 CPU cores
    "gpu": SetProfile(steps=10000, batch_size=256, lr=3e-3, val_sets_per_size=500,
                      test_sizes=(16, 64, 256, 1024, 4096, 16384, 65536), test_sets=5000, seeds=(0, 1, 2, 3, 4)),
}


@dataclass
class SetRunConfig:
    """Everything one set-task run depends on (its hash decides whether results are current)."""
    task: str
    variant: str
    logits: str
    seed: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    val_sets_per_size: int
    test_sizes: tuple[int, ...]
    test_sets: int
    width: int = 64
    n_head: int = 1
    n_classes: int = 10
    key_dim: int = 64
    train_min_size: int = TRAIN_SIZES[0]
    train_max_size: int = TRAIN_SIZES[1]
    s_init: float = 0.0  # filled in from the training sizes
    gain_max: float = 8.0  # "capped" logits: g <= gain_max (see `GAIN_MAX_RULE`)
    gain_init: float = 2.0
    entmax_alpha: float = 1.5  # ASEntmax: the paper's alpha
    entmax_iters: int = 30
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_variants: tuple[str, ...] = ()
    checkpoint_every: int = 500
    log_every: int = 100
    eval_chunk_items: int = 1 << 17

    def __post_init__(self) -> None:
        self.test_sizes = tuple(self.test_sizes)
        self.eval_variants = tuple(self.eval_variants)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}; got {self.variant!r}")
        for name in ("steps", "batch_size", "val_sets_per_size", "test_sets", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if any(n < 2 for n in self.test_sizes):
            raise ValueError(f"test_sizes must be >= 2; got {self.test_sizes}")
        if not set(self.eval_variants) <= set(EVAL_VARIANTS) or (self.eval_variants and self.variant != "softmax"):
            raise ValueError(f"eval_variants must be drawn from {EVAL_VARIANTS}, for softmax only; got {self.eval_variants}")


# Set before any run, from chapter 1's formula at the largest training size: g_max is the
# smallest integer gain whose two-level margin gives softmax a target weight >= 0.99 at n = 16,
# 1 / (1 + 15 e^{-g}) >= 0.99  <=>  g >= log(1485) = 7.30, so the cap never stops the softmax
# model from solving the task where it trains; beyond that the margin cannot grow.
GAIN_MAX_RULE = "smallest integer g with 1 / (1 + (16 - 1) e^{-g}) >= 0.99"


def gain_max_from_rule(train_max_size: int = TRAIN_SIZES[1], weight: float = 0.99) -> float:
    return float(math.ceil(math.log((train_max_size - 1) * weight / (1 - weight))))


# --- names ------------------------------------------------------------------------------------

def set_experiment_names() -> list[str]:
    names = [f"maxret-{v}" for v in VARIANTS]
    for margin in ("bounded", "unbounded"):
        names += [f"keyret-{v}-{margin}" for v in VARIANTS]
    return names


def parse_name(name: str) -> tuple[str, str, str]:
    """``(setting, task, variant)`` of a set experiment name; setting is a key of SET_TASKS."""
    if name not in set_experiment_names():
        raise ValueError(f"unknown set experiment {name!r}; allowed: {', '.join(set_experiment_names())}")
    task, rest = name.split("-", 1)
    if task == "maxret":
        return "maxret", task, rest
    variant, margin = rest.rsplit("-", 1)
    return f"keyret-{margin}", task, variant


def check_set_profile(profile: str) -> SetProfile:
    if profile not in SET_PROFILES:
        raise ValueError(f"profile must be one of {tuple(SET_PROFILES)}; got {profile!r}")
    return SET_PROFILES[profile]


def set_seeds(profile: str) -> tuple[int, ...]:
    return check_set_profile(profile).seeds


def set_run_config(name: str, profile: str, seed: int) -> SetRunConfig:
    setting, task, variant = parse_name(name)
    prof = check_set_profile(profile)
    _, logits = SET_TASKS[setting]
    return SetRunConfig(task=task, variant=variant, logits=logits, seed=seed, steps=prof.steps,
                        batch_size=prof.batch_size, lr=prof.lr, warmup_steps=prof.warmup_steps,
                        val_sets_per_size=prof.val_sets_per_size, test_sizes=prof.test_sizes, test_sets=prof.test_sets,
                        s_init=round(set_s_init(*TRAIN_SIZES), 6), gain_max=gain_max_from_rule(),
                        eval_variants=EVAL_VARIANTS if variant == "softmax" else (),
                        checkpoint_every=prof.checkpoint_every, log_every=prof.log_every,
                        eval_chunk_items=prof.eval_chunk_items)


# --- training ---------------------------------------------------------------------------------

def build_model(cfg: SetRunConfig) -> SetModel:
    return SetModel(cfg.task, cfg.variant, cfg.logits, width=cfg.width, n_head=cfg.n_head, n_classes=cfg.n_classes,
                    key_dim=cfg.key_dim, s_init=cfg.s_init, gain_max=cfg.gain_max, gain_init=cfg.gain_init,
                    entmax_alpha=cfg.entmax_alpha, entmax_iters=cfg.entmax_iters)


def _to(batch: SetBatch, device: torch.device) -> SetBatch:
    return SetBatch(*(None if t is None else t.to(device) for t in dataclasses.astuple(batch)))


def _lr_at(cfg: SetRunConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_set_model(cfg: SetRunConfig, device: torch.device, config_hash: str,
                    checkpoint_path: Optional[Path] = None) -> tuple[SetModel, dict]:
    """Adam with warmup and cosine decay on freshly drawn sets of n ~ U{4..16}; resumable from
    ``checkpoint_path`` (model, optimizer, data-generator state and history)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(1_000 + cfg.seed)
    history = {"step": [], "loss": [], "accuracy": []}
    window = [0.0, 0, 0]  # loss sum, correct, examples since the last logged step
    start = 0
    if checkpoint_path is not None and checkpoint_path.exists():
        ckpt = load_checkpoint(checkpoint_path, config_hash, map_location=device)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["generator"])
        history, window, start = ckpt["history"], ckpt["window"], ckpt["step"]
    model.train()
    for step in range(start, cfg.steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(cfg, step)
        sizes = torch.randint(cfg.train_min_size, cfg.train_max_size + 1, (cfg.batch_size,), generator=gen)
        batch = _to(sample_batch(cfg.task, sizes, gen, cfg.n_classes, cfg.key_dim), device)
        logits, _ = model(batch)
        loss = F.cross_entropy(logits, batch.label)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss at step {step} ({cfg.task}, {cfg.variant})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        window = [window[0] + float(loss.detach()) * len(sizes),
                  window[1] + int((logits.argmax(-1) == batch.label).sum()), window[2] + len(sizes)]
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            history["step"].append(done)
            history["loss"].append(window[0] / window[2])
            history["accuracy"].append(window[1] / window[2])
            window = [0.0, 0, 0]
        if checkpoint_path is not None and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            save_checkpoint(checkpoint_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                              "generator": gen.get_state(), "history": history, "window": window,
                                              "step": done}, config_hash)
    return model.eval(), history


# --- evaluation -------------------------------------------------------------------------------

def fixed_sets(task: str, n: int, n_sets: int, chunk: int, seed_base: int, n_classes: int = 10, key_dim: int = 64):
    """The fixed sets of size n (the same for every model): yields batches of at most ``chunk``
    sets, each from its own seeded generator, so no chunk depends on how many came before."""
    offset = 0 if task == "maxret" else 500_000
    for first in range(0, n_sets, chunk):
        gen = torch.Generator().manual_seed(seed_base + offset + 7919 * n + first)
        yield sample_batch(task, torch.full((min(chunk, n_sets - first),), n), gen, n_classes, key_dim)


def _labels(cfg: SetRunConfig) -> list[Optional[str]]:
    """The model itself (None), then each inference-time variant it is scored with."""
    return [None, *cfg.eval_variants]


@torch.no_grad()
def measure(model: SetModel, cfg: SetRunConfig, sizes: tuple[int, ...], n_sets: int, seed_base: int,
            device: torch.device, keep_margins: bool = False) -> dict[str, dict]:
    """For the model and each inference-time variant: per set size, accuracy (correct, trials),
    mean target weight, mean attention entropy, median effective margin and top-two gap, mean
    inverse temperature. ``keep_margins`` also returns every set's margin (for the theory)."""
    out: dict[str, dict] = {}
    for n in sizes:
        chunk = max(1, cfg.eval_chunk_items // n)
        acc: dict[str, dict[str, list]] = {}
        for batch in fixed_sets(cfg.task, n, n_sets, chunk, seed_base, cfg.n_classes, cfg.key_dim):
            batch = _to(batch, device)
            raw, x, h_q = model.read(batch)
            for label in _labels(cfg):
                att = model.attend(raw, h_q, batch.n, batch.mask, eval_variant=label,
                                   train_max_size=cfg.train_max_size)
                pred = model.classify(att, x).argmax(-1)
                parts = acc.setdefault(label or "model", {k: [] for k in
                                                          ("correct", "weight", "entropy", "margin", "gap", "factor")})
                parts["correct"].append((pred == batch.label).cpu())
                parts["weight"].append(target_weight(att, batch.target).cpu())
                parts["entropy"].append(attention_entropy(att).cpu())
                parts["margin"].append(effective_margin(att, batch.target, batch.mask).cpu())
                parts["gap"].append(top_two_gap(att, batch.target, batch.mask).cpu())
                parts["factor"].append(att.factor.mean(1).cpu())
        for label, parts in acc.items():
            cat = {k: torch.cat(v).double() for k, v in parts.items()}
            row = out.setdefault(label, {k: [] for k in ("set_sizes", "accuracy", "correct", "trials", "target_weight",
                                                          "entropy", "margin", "top_two_gap", "factor")})
            row["set_sizes"].append(n)
            row["correct"].append(int(cat["correct"].sum()))
            row["trials"].append(int(cat["correct"].numel()))
            row["accuracy"].append(float(cat["correct"].mean()))
            row["target_weight"].append(float(cat["weight"].mean()))
            row["entropy"].append(float(cat["entropy"].mean()))
            row["margin"].append(float(cat["margin"].median()))
            row["top_two_gap"].append(float(cat["gap"].median()))
            row["factor"].append(float(cat["factor"].mean()))
            if keep_margins:
                row.setdefault("_margins", []).append(cat["margin"])
    return out


def factor_function(model: SetModel, label: Optional[str], train_max_size: int):
    """The inverse temperature F(n) of a model (or of a softmax model with an inference-time
    factor), for the two-level prediction; None where it has no closed form (ASEntmax, the
    adaptive temperature)."""
    if model.variant == "asentmax" or label == "adaptive_temperature":
        return None
    if model.variant == "softmax":
        if label == "logn":
            from .baselines import qwen_logn

            return lambda n: qwen_logn(train_max_size)(torch.as_tensor(n, dtype=torch.float32)).double()
        return lambda n: torch.ones_like(torch.as_tensor(n, dtype=torch.float64))
    s = 1.0 if model.variant == "ssmax_fixed" else float(model.query_scale.s.detach().float().mean())
    return lambda n: s * torch.log(torch.as_tensor(n, dtype=torch.float64))


def theory_curve(margins: torch.Tensor, factor_fn, sizes) -> list[float]:
    """Mean over the validation sets of 1 / (1 + (n - 1) e^{-F(n) Delta_i}): chapter 1's
    two-level weight with each set's margin at the training sizes held fixed as n grows."""
    n = torch.as_tensor(list(sizes), dtype=torch.float64)
    weights = two_level_weight(n[:, None], margins[None, :].double(), factor_fn(n)[:, None])
    return weights.mean(1).tolist()


def theory_grid(max_size: int) -> list[int]:
    return sorted({int(round(x)) for x in np.logspace(np.log10(4), np.log10(max_size), 60)})


def run_set_experiment(cfg: SetRunConfig, device: torch.device, config_hash: str,
                       checkpoint_path: Optional[Path] = None) -> tuple[dict, dict]:
    """Train, then measure at the training sizes (validation sets) and the test sizes; returns
    (metrics, timing). On the CPU it uses one thread: the set model's operations are tiny, and
    on a shared 2-core machine a second thread makes them slower (waiting), not faster."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _train_and_measure(cfg, device, config_hash, checkpoint_path)
    finally:
        torch.set_num_threads(threads)


def _train_and_measure(cfg: SetRunConfig, device: torch.device, config_hash: str,
                       checkpoint_path: Optional[Path]) -> tuple[dict, dict]:
    t0, c0 = time.perf_counter(), time.process_time()
    model, history = train_set_model(cfg, device, config_hash, checkpoint_path)
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    val_sizes = tuple(range(cfg.train_min_size, cfg.train_max_size + 1))
    val = measure(model, cfg, val_sizes, cfg.val_sets_per_size, VAL_SEED, device, keep_margins=True)
    test = measure(model, cfg, cfg.test_sizes, cfg.test_sets, TEST_SEED, device)
    grid = theory_grid(max(cfg.test_sizes))

    def block(label: str, label_arg: Optional[str]) -> dict:
        row = dict(test[label])
        v = dict(val[label])
        margins = torch.cat(v.pop("_margins"))
        row["val"] = v
        row["margin_train"] = float(margins.median())
        fn = factor_function(model, label_arg, cfg.train_max_size)
        row["theory"] = None if fn is None else {
            "at_set_sizes": theory_curve(margins, fn, cfg.test_sizes), "n": grid, "target_weight": theory_curve(margins, fn, grid)}
        return row

    metrics = block("model", None)
    metrics.update(task=cfg.task, variant=cfg.variant, logits=cfg.logits, chance=1.0 / cfg.n_classes,
                   train_history=history, final_train_loss=history["loss"][-1],
                   learned_s=model.query_scale.s.detach().tolist() if cfg.variant == "ssmax" else None,
                   gain=None if model.gain() is None else float(model.gain().detach()),
                   eval_variants={label: block(label, label) for label in cfg.eval_variants})
    # wall and CPU seconds of training and of measuring (the CPU time does not grow when other
    # jobs share the machine; the wall time does)
    timing = {"wall_s": round(t_train, 2), "cpu_s": round(c_train, 2),
              "measure_wall_s": round(time.perf_counter() - t0 - t_train, 2),
              "measure_cpu_s": round(time.process_time() - c0 - c_train, 2)}
    return metrics, timing
