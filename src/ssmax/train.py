"""Training: `train(config) -> TrainOutcome`, deterministic and resumable.

Language-model pretraining (the paper's Table 2, scaled down) and supervised fine-tuning on the
needle task (Table 3: loss on the answer digits only). A checkpoint holds the model, optimizer,
RNG and data-sampler states, the step and the metrics so far, so a rerun after an interruption
ends with exactly the metrics of an uninterrupted run. Under torchrun the same loop trains with
DistributedDataParallel, each process on its share of the global batch (see `distributed`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .data import BatchSampler, load_corpus
from .needle import Haystack, needle_batch
from .model import GPT, GPTConfig, switch_to_ssmax
from .results import config_hash

TASKS = ("lm", "needle_sft")
SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    model: GPTConfig
    steps: int
    batch_size: int
    lr: float
    task: str = "lm"
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    switch_to_ssmax_at: Optional[int] = None  # variant (f): softmax until this step, then SSMax
    n_digits: int = 7  # needle task
    eval_every: int = 100
    eval_batches: int = 8
    checkpoint_every: int = 200
    log_every: int = 10
    # bfloat16 autocast on CUDA (the gpu profile); off, the run trains in float32 on any device,
    # as the cpu profile's committed results do wherever they were computed
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = GPTConfig(**self.model)
        self.betas = tuple(self.betas)
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}; got {self.task!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        for name in ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "steps" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'steps' else 'positive'} integer; got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {self.warmup_steps}")
        if self.switch_to_ssmax_at is not None:
            if self.model.scaling != "softmax":
                raise ValueError("switch_to_ssmax_at needs model.scaling='softmax' (the model switches to 'ssmax')")
            if not 0 <= self.switch_to_ssmax_at <= self.steps:
                raise ValueError(f"switch_to_ssmax_at must be in [0, steps={self.steps}]; got {self.switch_to_ssmax_at}")


@dataclass
class TrainOutcome:
    model: GPT
    metrics: dict = field(default_factory=dict)  # deterministic: identical after a resume
    timing: dict = field(default_factory=dict)  # wall time and throughput: machine-dependent


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warmup, then constant or cosine decay to min_lr_ratio * lr."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def _optimizer(model: GPT, config: TrainConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.param_groups(config.weight_decay), lr=config.lr, betas=config.betas)


def _add_switched_parameters(model: GPT, optimizer: torch.optim.Optimizer) -> None:
    """After switch_to_ssmax the new s parameters join the optimizer, undecayed."""
    new = [b.attn.query_scale.s for b in model.blocks]
    optimizer.add_param_group({"params": new, "weight_decay": 0.0, "lr": optimizer.param_groups[0]["lr"]})


class _Batches:
    """The training data of a task, with a state that a checkpoint can hold."""

    def __init__(self, config: TrainConfig):
        corpus = load_corpus()
        T = config.model.block_size
        if config.task == "lm":
            self.sampler = BatchSampler(corpus.stream("train"), config.batch_size, T, seed=config.seed)
            self.val = [b for b in _fixed_batches(BatchSampler(corpus.stream("validation"), config.batch_size, T,
                                                                seed=10_000 + config.seed), config.eval_batches)]
        else:
            self.rng = np.random.default_rng(config.seed)
            self.haystack = Haystack(corpus.stream("train"))
            val_rng = np.random.default_rng(10_000 + config.seed)
            val_haystack = Haystack(corpus.stream("validation"))
            self.val = [needle_batch(val_rng, val_haystack, config.batch_size, T, config.n_digits)
                        for _ in range(config.eval_batches)]
        self.config = config

    def next(self):
        if self.config.task == "lm":
            x, y = self.sampler.next()
            return x, y, None
        return needle_batch(self.rng, self.haystack, self.config.batch_size, self.config.model.block_size,
                            self.config.n_digits)

    def state_dict(self) -> dict:
        if self.config.task == "lm":
            return {"sampler": self.sampler.state_dict()}
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if self.config.task == "lm":
            self.sampler.load_state_dict(state["sampler"])
        else:
            self.rng.bit_generator.state = state["rng"]


def _fixed_batches(sampler: BatchSampler, count: int):
    for _ in range(count):
        x, y = sampler.next()
        yield x, y, None


def batch_loss(model: GPT, x: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over all positions, or over the masked (answer) positions only."""
    return loss_from_logits(model(x), y, mask)


def loss_from_logits(logits: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    losses = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
    if mask is None:
        return losses.mean()
    mask = mask.flatten().float()
    return (losses * mask).sum() / mask.sum()


@torch.no_grad()
def evaluate_batches(model: GPT, batches, device: torch.device) -> dict:
    """Validation loss; for the needle task also exact-match accuracy of the teacher-forced
    greedy answer (all answer digits are the argmax)."""
    was_training = model.training
    model.eval()
    losses, exact, total = [], 0, 0
    for x, y, mask in batches:
        x, y = x.to(device), y.to(device)
        m = None if mask is None else mask.to(device)
        logits = model(x)
        losses.append(loss_from_logits(logits, y, m).item())
        if m is not None:
            correct = (logits.argmax(-1) == y) | ~m
            exact += int(correct.all(dim=1).sum())
            total += x.shape[0]
    model.train(was_training)
    out = {"val_loss": float(np.mean(losses))}
    if total:
        out["val_exact"] = exact / total
    return out


def train(
    config: TrainConfig,
    *,
    device: torch.device,
    init_state: Optional[dict] = None,
    checkpoint_path: Optional[Path] = None,
    progress: bool = True,
    on_step: Optional[Callable[[int], None]] = None,
    build_model: Optional[Callable[[GPTConfig], torch.nn.Module]] = None,
    stop_at_val_exact: Optional[float] = None,
) -> TrainOutcome:
    """Train from scratch (or from ``init_state`` weights, for fine-tuning); resume from
    ``checkpoint_path`` if it exists. Returns the model and its metrics.

    Under torchrun every rank calls this; rank 0 alone evaluates and writes checkpoints, so only
    its metrics hold the validation numbers. ``build_model`` makes another model from the config
    (one that is called like a `GPT`, e.g. `ssmax.hf_crosscheck.HFLanguageModel`).

    ``stop_at_val_exact`` trains the needle task to a criterion: training ends at the first
    validation check whose exact match reaches it (``steps`` is then the most it may take), so
    models that learn the task at different speeds all end having learned it. The schedule stays
    the one of ``steps``; ``metrics["stopped_at"]`` records the step."""
    distributed.check_batch_size(config.batch_size)
    if stop_at_val_exact is not None and (config.task != "needle_sft" or not 0 < stop_at_val_exact <= 1):
        raise ValueError(f"stop_at_val_exact must be in (0, 1] and needs task='needle_sft'; got "
                         f"{stop_at_val_exact!r} with task={config.task!r}")
    main = distributed.is_main()
    torch.manual_seed(config.seed)
    model_config = GPTConfig(**config.model.to_dict())
    model = (GPT(model_config) if build_model is None else build_model(model_config)).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    optimizer = _optimizer(model, config)
    batches = _Batches(config)
    key = config_hash(config)
    metrics: dict = {"steps": [], "train_loss": [], "eval_steps": [], "val_loss": [], "lr": []}
    if config.task == "needle_sft":
        metrics["val_exact"] = []
    start_step, elapsed = 0, 0.0
    # the train-loss average since the last log line: checkpointed too, or a resume between two
    # log steps (log_every not dividing checkpoint_every) would average fewer steps
    running, running_n = 0.0, 0

    if checkpoint_path is not None and checkpoint_path.exists():
        ckpt = load_checkpoint(checkpoint_path, key, map_location=device)
        if config.switch_to_ssmax_at is not None and ckpt["step"] > config.switch_to_ssmax_at:
            # the switch happens at the start of step switch_to_ssmax_at, after that checkpoint
            switch_to_ssmax(model)
            _add_switched_parameters(model, optimizer)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        batches.load_state_dict(ckpt["data"])
        torch.set_rng_state(ckpt["torch_rng"])
        metrics, start_step, elapsed = ckpt["metrics"], ckpt["step"], ckpt["elapsed_s"]
        running, running_n = ckpt.get("running_loss", (0.0, 0))

    def checkpoint(step: int) -> None:
        if checkpoint_path is not None and main:
            save_checkpoint(checkpoint_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "data": batches.state_dict(),
                "torch_rng": torch.get_rng_state(), "metrics": metrics, "step": step,
                "running_loss": (running, running_n), "elapsed_s": elapsed + time.perf_counter() - t0}, key)

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and config.mixed_precision
                else torch.autocast(device.type, enabled=False))
    model.train()
    net = distributed.wrap(model, device)  # the model itself in a single process
    t0 = time.perf_counter()
    last_eval: Optional[dict] = None
    done = start_step
    bar = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, disable=not (progress and main),
               desc=f"{config.task} {config.model.scaling}", leave=False, dynamic_ncols=True)
    for step in bar:
        if config.switch_to_ssmax_at is not None and step == config.switch_to_ssmax_at:
            switch_to_ssmax(model)
            _add_switched_parameters(model, optimizer)
            net = distributed.wrap(model, device)  # DDP must see the new parameters
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y, mask = distributed.local_share(*batches.next())  # the whole batch in a single process
        x, y = x.to(device), y.to(device)
        with autocast:
            loss = batch_loss(net, x, y, None if mask is None else mask.to(device))
        # every example has the same number of loss positions, so the mean of the ranks' means is
        # the mean over the global batch
        global_loss = distributed.global_mean(loss.detach())
        if not torch.isfinite(global_loss):
            raise FloatingPointError(f"training loss became {global_loss.item()} at step {step} "
                                     f"(lr {lr:.3g}); lower the learning rate or check the data")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        running += global_loss.item()
        running_n += 1
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            metrics["steps"].append(done)
            metrics["train_loss"].append(running / running_n)
            metrics["lr"].append(lr)
            bar.set_postfix(loss=f"{running / running_n:.3f}")
            running, running_n = 0.0, 0
        evaluated = done % config.eval_every == 0 or done == config.steps
        if main and evaluated:
            ev = last_eval = evaluate_batches(model, batches.val, device)
            metrics["eval_steps"].append(done)
            metrics["val_loss"].append(ev["val_loss"])
            if "val_exact" in ev:
                metrics["val_exact"].append(ev["val_exact"])
        # rank 0 evaluated; every rank must stop at the same step
        stopped = stop_at_val_exact is not None and evaluated and bool(
            distributed.from_main(last_eval["val_exact"] >= stop_at_val_exact if main else None))
        if stopped:
            metrics["stopped_at"] = done
        elif done % config.checkpoint_every == 0 and done < config.steps:
            checkpoint(done)
        if on_step is not None:
            on_step(done)
        if stopped:
            break
    bar.close()

    if config.steps == 0 and config.switch_to_ssmax_at == 0:
        switch_to_ssmax(model)
    # the loop's last step already evaluated the final weights, unless there was no step to run
    final = last_eval if last_eval is not None or not main else evaluate_batches(model, batches.val, device)
    wall = elapsed + time.perf_counter() - t0
    tokens = max(0, done - start_step) * config.batch_size * config.model.block_size
    timing = {
        "wall_time_s": wall,
        "train_tokens_per_s": tokens / max(1e-9, time.perf_counter() - t0) if tokens else None,
    }
    if final is not None:
        metrics["final_val_loss"] = final["val_loss"]
    metrics.update({
        "n_parameters": model.num_parameters(),
        "scaling_after_training": model.config.scaling,
        **{f"learned_{k}": v.tolist() for k, v in model.scale_parameters().items()},
    })
    if final is not None and "val_exact" in final:
        metrics["final_val_exact"] = final["val_exact"]
    if model.p_n is not None:
        metrics["learned_p_n"] = model.p_n.detach().cpu().tolist()
    return TrainOutcome(model=model, metrics=metrics, timing=timing)
