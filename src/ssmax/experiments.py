"""Named experiments x compute profiles -> configs -> runs -> results files.

Names (see `list_experiments`):
  pretrain-{a..f}, learned-pn       language-model pretraining (chapters 2-4)
  needle-sft-{a..f}                 supervised fine-tuning on the needle task (chapter 5)
  lengthgen-{a..f}                  per-position loss up to 16x the training length (chapter 4)
  lengthgen-baselines               inference-time log-n scalings applied to (a) (chapter 4)
  needle-eval-{a..f}                needle accuracy, context length x depth (chapter 5)
  needle-score-{a..f}               attention on the needle per layer and head (chapter 6)

Variants follow the paper: (a) softmax, (b) SSMax, (c) SSMax with s = 1, (d) SSMax with a
bias, (e) (a) switched to SSMax after pretraining, (f) switched for the last part of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from . import distributed
from . import results as store
from .baselines import BASELINES, baseline
from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_corpus
from .device import DEVICE_CHOICES, pick_device
from .evaluate import (fixed_windows, heldout_loss, needle_accuracy, needle_scores, per_position_loss,
                       window_means)
from .model import GPT, GPTConfig
from .train import TrainConfig, train

PROFILES = ("smoke", "cpu", "gpu")
VARIANTS = ("a", "b", "c", "d", "e", "f")
SCALING_OF_VARIANT = {"a": "softmax", "b": "ssmax", "c": "ssmax_fixed", "d": "ssmax_bias",
                      "e": "softmax", "f": "softmax"}  # e and f start as softmax and switch


@dataclass(frozen=True)
class Profile:
    """Everything that sets the scale of a profile; the same code runs every profile."""
    name: str
    model: dict
    pretrain: dict
    seeds: tuple[int, ...]  # for (a), (b) and (e), which costs nothing extra
    switch_fraction: float  # (f): SSMax for the last switch_fraction of the pretraining steps
    sft: dict
    n_digits: int
    lengthgen: dict
    needle_eval: dict
    needle_score: dict
    # per-variant changes to ``sft`` for variants that do not learn the task at length T with the
    # shared settings (the needle chapters only mean something if every variant retrieves there)
    sft_overrides: dict = field(default_factory=dict)
    # wall-time budget of the whole profile on its intended machine (None: not set); the
    # appendix compares the recorded run times against it
    time_budget_min: Optional[float] = None


PROFILE_SETTINGS: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        model=dict(n_layer=2, n_head=2, n_embd=32, block_size=160),
        pretrain=dict(steps=12, batch_size=4, lr=3e-3, warmup_steps=2, eval_every=6, eval_batches=2,
                      checkpoint_every=4, log_every=2),
        seeds=(0, 1),
        switch_fraction=0.25,
        sft=dict(steps=8, batch_size=4, lr=1e-3, warmup_steps=2, eval_every=4, eval_batches=1,
                 checkpoint_every=4, log_every=2),
        n_digits=3,
        lengthgen=dict(max_multiple=4, n_documents=2, batch_size=2, heldout_windows=8),
        needle_eval=dict(multiples=(1, 4), depths=(0.0, 1.0), trials=2),
        needle_score=dict(multiple=2, trials=3),
    ),
    "cpu": Profile(
        name="cpu",
        model=dict(n_layer=4, n_head=4, n_embd=128, block_size=256),
        # 1,250 steps: at 1,500 the whole profile took 86-92 min, too close to the 90-min budget
        pretrain=dict(steps=1250, batch_size=16, lr=2e-3, warmup_steps=100, eval_every=125, eval_batches=16,
                      checkpoint_every=250, log_every=10),
        seeds=(0, 1, 2),
        switch_fraction=0.15,
        sft=dict(steps=1000, batch_size=16, lr=1e-3, warmup_steps=40, eval_every=50, eval_batches=4,
                 checkpoint_every=200, log_every=10),
        n_digits=7,
        lengthgen=dict(max_multiple=16, n_documents=64, batch_size=4, heldout_windows=1024),
        needle_eval=dict(multiples=(1, 2, 4, 8, 16), depths=(0.0, 0.25, 0.5, 0.75, 1.0), trials=20),
        needle_score=dict(multiple=8, trials=100),
        # (b): on the 1,250-step pretrained weights, lr 1e-3 reached val exact 0.12 in 1,000 steps
        # and 0.44 in 2,000; probes of 1,000 steps: 2e-3 0.00, 5e-4 1.00 (0.91 from step 450).
        # (c)'s fixed s = 1 multiplies its attention logits by log n (5.5 at T = 256), so each Adam
        # step moves them several times further than in (b), whose learned s is about 0.2-0.3. At
        # lr 1e-3 (c) never learned past the first digit. Which lower rate works is fragile: on
        # two 1,500-step checkpoints that differed only by float rounding, 3e-4 learned the task
        # on one and reached val exact 0.14 on the other (where 1e-4 reached 0.94, 5e-4 1.00).
        sft_overrides={"b": dict(lr=5e-4), "c": dict(lr=5e-4)},
        time_budget_min=90.0,  # on 2 CPU cores
    ),
    "gpu": Profile(
        name="gpu",
        model=dict(n_layer=8, n_head=8, n_embd=512, block_size=1024),
        # sized so that the headline path (pretrain a and b, needle-sft and needle-eval of both) fits
        # 10 minutes of one H100: `python -m ssmax.estimate` shows the FLOP-based estimate
        pretrain=dict(steps=3000, batch_size=32, lr=6e-4, warmup_steps=300, eval_every=500, eval_batches=8,
                      checkpoint_every=500, log_every=25),
        seeds=(0, 1, 2),
        switch_fraction=0.15,
        sft=dict(steps=1000, batch_size=32, lr=2e-4, warmup_steps=100, eval_every=100, eval_batches=8,
                 checkpoint_every=250, log_every=25),
        n_digits=7,
        lengthgen=dict(max_multiple=20, n_documents=64, batch_size=4, heldout_windows=2048),
        needle_eval=dict(multiples=(1, 2, 4, 8, 16), depths=(0.0, 0.25, 0.5, 0.75, 1.0), trials=20),
        needle_score=dict(multiple=8, trials=100),
    ),
}

# what the book's main claims rest on: the gpu profile is sized so that these fit 10 min of one H100
HEADLINE_EXPERIMENTS = ("pretrain-a", "pretrain-b", "needle-sft-a", "needle-sft-b", "needle-eval-a", "needle-eval-b")
ROPE_THETA_FACTORS = (1, 50)
# Final weights are stored in float16 (half the size in git); every later stage loads these
# same files, so all evaluations see the same rounded weights.
WEIGHTS_DTYPE = torch.float16  # the paper evaluates with theta x 50 and no further training


@dataclass
class ExperimentConfig:
    """One experiment's full config; its hash decides whether stored results are current.
    ``depends_on`` holds the config hashes of the runs whose weights it uses, so a change
    upstream makes everything downstream stale."""
    name: str
    kind: str
    train: Optional[TrainConfig] = None
    init_from: Optional[str] = None  # "experiment--seedS" whose weights start this run
    evaluation: dict = field(default_factory=dict)
    depends_on: dict = field(default_factory=dict)


def describe_profile(profile: str) -> str:
    """A few lines on the scale of a profile, for the chapters' prose."""
    prof = check_profile(profile)
    m, pt, sft = prof.model, prof.pretrain, prof.sft
    params = GPT(_model_config(prof, "softmax")).num_parameters()
    tokens = pt["steps"] * pt["batch_size"] * m["block_size"]
    return "\n".join([
        f"profile {prof.name}: {m['n_layer']} layers, {m['n_head']} heads, width {m['n_embd']}, "
        f"{params / 1e6:.2f}M parameters, byte vocabulary",
        f"pretraining: context T = {m['block_size']}, {pt['steps']} steps x batch {pt['batch_size']} "
        f"= {tokens / 1e6:.1f}M tokens, AdamW lr {pt['lr']:g}, warmup {pt['warmup_steps']}, cosine decay",
        f"seeds for (a), (b), (e): {list(prof.seeds)}; (f) switches to SSMax for the last "
        f"{prof.switch_fraction:.0%} of the steps",
        f"needle fine-tuning: {sft['steps']} steps x batch {sft['batch_size']} at length T, lr {sft['lr']:g}, "
        f"{prof.n_digits}-digit numbers"
        + "".join(f"; ({v}) with {', '.join(f'{k} {x:g}' for k, x in o.items())}"
                  for v, o in prof.sft_overrides.items()),
    ])


# --- the registry ---------------------------------------------------------------------------

def list_experiments() -> list[str]:
    names = [f"pretrain-{v}" for v in VARIANTS] + ["learned-pn"]
    names += [f"needle-sft-{v}" for v in VARIANTS]
    names += [f"lengthgen-{v}" for v in VARIANTS] + ["lengthgen-baselines"]
    names += [f"needle-eval-{v}" for v in VARIANTS] + [f"needle-score-{v}" for v in VARIANTS]
    return names


def check_profile(profile: str) -> Profile:
    if profile not in PROFILE_SETTINGS:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}")
    return PROFILE_SETTINGS[profile]


def check_experiment(name: str) -> str:
    if name not in list_experiments():
        raise ValueError(f"unknown experiment {name!r}; allowed: {', '.join(list_experiments())}")
    return name


def seeds_for(name: str, profile: str) -> tuple[int, ...]:
    """(a), (b) and everything built on them get every seed of the profile; (e) too, since it
    costs no training; the rest one seed."""
    check_experiment(name)
    prof = check_profile(profile)
    variant = name.rsplit("-", 1)[-1]
    multi_seed = name.startswith(("pretrain-", "lengthgen-")) and variant in ("a", "b", "e", "baselines")
    return prof.seeds if multi_seed else prof.seeds[:1]


def check_seed(name: str, profile: str, seed: int) -> int:
    allowed = seeds_for(name, profile)
    if seed not in allowed:
        raise ValueError(f"seed for {name} in profile {profile} must be one of {allowed}; got {seed!r}")
    return seed


def _model_config(profile: Profile, scaling: str) -> GPTConfig:
    return GPTConfig(scaling=scaling, **profile.model)


def _dep(name: str, profile: str, seed: int) -> tuple[str, str]:
    return f"{name}--seed{seed}", store.config_hash(experiment_config(name, profile, seed))


def experiment_config(name: str, profile: str, seed: int = 0) -> ExperimentConfig:
    """The full config of experiment ``name`` in ``profile`` for ``seed``."""
    prof = check_profile(profile)
    check_seed(name, profile, seed)
    variant = name.rsplit("-", 1)[-1]
    T = prof.model["block_size"]

    if name == "learned-pn" or name.startswith("pretrain-"):
        scaling = "learned_pn" if name == "learned-pn" else SCALING_OF_VARIANT[variant]
        steps = prof.pretrain["steps"]
        if variant == "e":  # (a)'s weights, switched to SSMax, no further training
            key, h = _dep("pretrain-a", profile, seed)
            tc = TrainConfig(model=_model_config(prof, "softmax"), seed=seed, **{**prof.pretrain, "steps": 0},
                             switch_to_ssmax_at=0)
            return ExperimentConfig(name, "pretrain", train=tc, init_from=key, depends_on={key: h})
        switch = round(steps * (1 - prof.switch_fraction)) if variant == "f" else None
        tc = TrainConfig(model=_model_config(prof, scaling), seed=seed, switch_to_ssmax_at=switch, **prof.pretrain)
        return ExperimentConfig(name, "pretrain", train=tc)

    if name.startswith("needle-sft-"):
        key, h = _dep(f"pretrain-{variant}", profile, 0)
        scaling = "ssmax" if variant in ("e", "f") else SCALING_OF_VARIANT[variant]
        sft = {**prof.sft, **prof.sft_overrides.get(variant, {})}
        tc = TrainConfig(model=_model_config(prof, scaling), task="needle_sft", seed=seed, betas=(0.9, 0.999),
                         weight_decay=0.0, schedule="cosine", min_lr_ratio=0.0, n_digits=prof.n_digits, **sft)
        return ExperimentConfig(name, "needle_sft", train=tc, init_from=key, depends_on={key: h})

    if name.startswith("lengthgen-"):
        source = "pretrain-a" if variant == "baselines" else f"pretrain-{variant}"
        key, h = _dep(source, profile, seed)
        evaluation = {**prof.lengthgen, "train_len": T, "rope_theta_factors": ROPE_THETA_FACTORS,
                      "baselines": BASELINES if variant == "baselines" else ()}
        return ExperimentConfig(name, "lengthgen", init_from=key, evaluation=evaluation, depends_on={key: h})

    if name.startswith("needle-eval-"):
        key, h = _dep(f"needle-sft-{variant}", profile, 0)
        evaluation = {"context_lengths": [m * T for m in prof.needle_eval["multiples"]],
                      "depths": list(prof.needle_eval["depths"]), "trials": prof.needle_eval["trials"],
                      "n_digits": prof.n_digits, "rope_theta_factors": ROPE_THETA_FACTORS}
        return ExperimentConfig(name, "needle_eval", init_from=key, evaluation=evaluation, depends_on={key: h})

    if name.startswith("needle-score-"):
        key, h = _dep(f"needle-sft-{variant}", profile, 0)
        evaluation = {"context_len": prof.needle_score["multiple"] * T, "trials": prof.needle_score["trials"],
                      "n_digits": prof.n_digits, "rope_theta_factor": 50, "fixed_depth": 0.5}
        return ExperimentConfig(name, "needle_score", init_from=key, evaluation=evaluation, depends_on={key: h})

    raise AssertionError(f"no config rule for {name}")  # unreachable: check_seed validated the name


# --- running --------------------------------------------------------------------------------

def _split_key(key: str) -> tuple[str, int]:
    name, seed = key.rsplit("--seed", 1)
    return name, int(seed)


def load_weights(name: str, profile: str, seed: int, device: torch.device) -> tuple[GPT, ExperimentConfig]:
    """The trained model of a training experiment, checked against its current config."""
    config = experiment_config(name, profile, seed)
    path = store.weights_path(profile, name, seed)
    if not path.exists():
        raise store.MissingResultsError(f"no weights for {name} (profile {profile}, seed {seed}) at {path}: "
                                        f"run `{store.run_command(name, profile, seed)}`")
    payload = load_checkpoint(path, store.config_hash(config), map_location=device)
    model = GPT(GPTConfig(**payload["model_config"])).to(device)
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    return model.eval(), config


def _source_model(config: ExperimentConfig, profile: str, device: torch.device) -> GPT:
    """The trained model that ``config.init_from`` names (whose weights a run starts from or
    evaluates)."""
    name, seed = _split_key(config.init_from)
    return load_weights(name, profile, seed, device)[0]


def _run_training(config: ExperimentConfig, profile: str, seed: int, device: torch.device, progress: bool):
    init_state = None if config.init_from is None else _source_model(config, profile, device).state_dict()
    ckpt = store.checkpoints_root() / profile / f"{config.name}--seed{seed}.pt"
    outcome = train(config.train, device=device, init_state=init_state, checkpoint_path=ckpt, progress=progress)
    if distributed.is_main():
        save_checkpoint(store.weights_path(profile, config.name, seed),
                        {"model_config": outcome.model.config.to_dict(),
                         "state_dict": {k: v.detach().cpu().to(WEIGHTS_DTYPE) for k, v in outcome.model.state_dict().items()}},
                        store.config_hash(config))
        ckpt.unlink(missing_ok=True)
    return outcome.metrics, outcome.timing


def _run_lengthgen(config: ExperimentConfig, profile: str, device: torch.device) -> dict:
    ev = config.evaluation
    model = _source_model(config, profile, device)
    T = ev["train_len"]
    length = ev["max_multiple"] * T
    docs = [d.tokens for d in load_corpus().documents("test", min_len=length + 1)][: ev["n_documents"]]
    if len(docs) < ev["n_documents"]:
        raise ValueError(f"the test split has only {len(docs)} documents of >= {length + 1} tokens; "
                         f"n_documents={ev['n_documents']} needs more")
    theta0 = model.config.rope_theta
    scalings = {"model": None} if not ev["baselines"] else {b: baseline(b, T) for b in ev["baselines"]}
    curves = {}
    for factor in ev["rope_theta_factors"]:
        for label, fn in scalings.items():
            curve = per_position_loss(model, docs, length, device, rope_theta=theta0 * factor,
                                      query_scale_fn=fn, batch_size=ev["batch_size"])
            curves[f"{label}@theta_x{factor}"] = {"curve": curve.tolist(), "windows": window_means(curve, T)}
    # in-distribution loss on one fixed set of test windows of length T (the same for every model
    # and seed, unlike the validation batches drawn during training)
    windows = fixed_windows(load_corpus().stream("test"), T, ev["heldout_windows"], seed=0)
    heldout = {label: heldout_loss(model, windows, device, query_scale_fn=fn) for label, fn in scalings.items()}
    return {"curves": curves, "n_documents": len(docs), "length": length, "heldout_loss": heldout,
            "heldout_tokens": int(windows[:, 1:].size)}


def _run_needle_eval(config: ExperimentConfig, profile: str, seed: int, device: torch.device) -> dict:
    ev = config.evaluation
    model = _source_model(config, profile, device)
    haystack = load_corpus().stream("test")
    out = {}
    for factor in ev["rope_theta_factors"]:
        out[f"theta_x{factor}"] = needle_accuracy(
            model, haystack, ev["context_lengths"], ev["depths"], ev["trials"], device, n_digits=ev["n_digits"],
            rope_theta=model.config.rope_theta * factor, seed=seed)
    return out


def _run_needle_score(config: ExperimentConfig, profile: str, seed: int, device: torch.device) -> dict:
    ev = config.evaluation
    model = _source_model(config, profile, device)
    haystack = load_corpus().stream("test")
    theta = model.config.rope_theta * ev["rope_theta_factor"]
    fixed = needle_scores(model, haystack, ev["context_len"], 1, device, depth=ev["fixed_depth"],
                          n_digits=ev["n_digits"], rope_theta=theta, seed=seed)
    random = needle_scores(model, haystack, ev["context_len"], ev["trials"], device, depth=None,
                           n_digits=ev["n_digits"], rope_theta=theta, seed=seed + 1)
    return {"fixed_depth": fixed, "random_trials": random}


def run(name: str, profile: str, seed: int = 0, device: str = "auto", force: bool = False,
        progress: bool = True) -> dict:
    """Run one experiment (and, first, any dependency whose results are missing or stale);
    write and return its results. Current results are reused unless ``force``.

    Under torchrun every rank calls this: training runs on all ranks (DistributedDataParallel),
    evaluations on rank 0 alone; rank 0 writes, and the others read only after a barrier."""
    distributed.setup(device)
    check_experiment(name)
    check_profile(profile)
    check_seed(name, profile, seed)
    config = experiment_config(name, profile, seed)
    if not force and store.has_current_result(profile, name, seed, config):
        return store.load_result(profile, name, seed, config)
    for key in config.depends_on:
        dep_name, dep_seed = _split_key(key)
        run(dep_name, profile, dep_seed, device=device, progress=progress)
    dev = pick_device(device)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    timing: dict = {}
    if config.kind in ("pretrain", "needle_sft"):
        metrics, timing = _run_training(config, profile, seed, dev, progress)
    elif not distributed.is_main():  # evaluations run on rank 0 alone
        metrics = None
    elif config.kind == "lengthgen":
        metrics = _run_lengthgen(config, profile, dev)
    elif config.kind == "needle_eval":
        metrics = _run_needle_eval(config, profile, seed, dev)
    else:
        metrics = _run_needle_score(config, profile, seed, dev)
    if distributed.is_main():
        env = {**store.environment(dev, time.perf_counter() - t0), "world_size": distributed.world_size(),
               **{f"train_{k}": v for k, v in timing.items()}}
        store.save_result(profile, name, seed, config, metrics, env)
    distributed.barrier()  # the other ranks read results and weights only once rank 0 wrote them
    return store.load_result(profile, name, seed, config)


def reproduce(profile: str, device: str = "auto", force: bool = True, progress: bool = True,
              headline: bool = False) -> dict[str, float]:
    """Run every experiment of a profile (all seeds), or with ``headline`` only pretraining,
    needle fine-tuning and needle evaluation of (a) and (b), seed 0 (see `ssmax.estimate`);
    returns the wall time of each run."""
    check_profile(profile)
    times = {}
    for name in HEADLINE_EXPERIMENTS if headline else list_experiments():
        for seed in seeds_for(name, profile)[:1] if headline else seeds_for(name, profile):
            t0 = time.perf_counter()
            run(name, profile, seed, device=device, force=force, progress=progress)
            times[f"{name}--seed{seed}"] = time.perf_counter() - t0
    return times


# --- what notebooks call --------------------------------------------------------------------

def check_notebook_parameters(profile: Any, retrain: Any, device: Any) -> None:
    """Fail in a notebook's first cells, with the allowed values, on a bad papermill parameter."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}; got {profile!r}")
    if not isinstance(retrain, bool):
        raise ValueError(f"retrain must be True or False; got {retrain!r}")
    if device not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}; got {device!r}")


def results_for(names: list[str], profile: str, retrain: bool = False, device: str = "auto") -> dict[str, list[dict]]:
    """The results a chapter needs: ``{name: [result per seed]}``.

    With retrain=False only current stored results are used; anything missing or stale raises
    an error that lists the commands to run (a notebook never trains for an hour by surprise).
    With retrain=True the chapter's experiments are rerun (their dependencies only if needed).
    """
    out: dict[str, list[dict]] = {}
    problems = []
    for name in names:
        out[name] = []
        for seed in seeds_for(name, profile):
            if retrain:
                out[name].append(run(name, profile, seed, device=device, force=True, progress=False))
                continue
            try:
                out[name].append(store.load_result(profile, name, seed, experiment_config(name, profile, seed)))
            except store.ResultsError as err:
                problems.append(str(err))
    if problems:
        raise store.MissingResultsError(
            f"{len(problems)} result(s) missing or stale for profile {profile!r}. Run `make reproduce PROFILE={profile}` "
            f"(or rerun this notebook with retrain=True), or one by one:\n  " + "\n  ".join(problems))
    return out
