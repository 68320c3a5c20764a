"""How long a profile's headline path should take on one GPU, from FLOPs counted per token.

The headline path is what the book's main claims rest on: pretraining (a) softmax and (b) SSMax,
needle fine-tuning of both, and their needle evaluation (seed 0). FLOPs per token are counted by
`torch.utils.flop_counter.FlopCounterMode` on the meta device (nothing is computed), running the
model's explicit attention path so that attention's matmuls are counted too (the counter has no
formula for the CPU flash kernel); it counts the full T x T products, while a causal flash kernel
does about half of them, so attention is overestimated. Time = FLOPs / (peak x an assumed
utilization), per precision: training runs under bfloat16 autocast, evaluations in float32.

    python -m ssmax.estimate [--profile gpu]     prints the table (book/reproduce.md shows it)
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from . import experiments as ex
from .model import GPT, GPTConfig

HEADLINE = tuple(ex.HEADLINE_EXPERIMENTS)  # `python -m ssmax reproduce --profile gpu --headline` runs them
HEADLINE_BUDGET_MIN = 10.0  # the gpu profile's headline path, on one H100


@dataclass(frozen=True)
class Accelerator:
    """Peak rates and the planning assumptions that turn FLOPs into seconds.

    The utilizations are assumptions, not measurements (no GPU was available when the profile was
    sized): a 25M-parameter model in eager PyTorch keeps its matmuls busy (32k-token batches)
    but also runs memory-bound float32 norms, RoPE and the optimizer step and launches many small
    kernels, so a fifth of the bf16 peak is planned for training; float32 matmuls run without
    tensor cores (PyTorch leaves TF32 off for matmuls), at a larger share of a much lower peak.
    The first real run replaces them: every training result records its tokens/s.
    """
    name: str = "NVIDIA H100 SXM"
    bf16_peak_tflops: float = 989.0  # dense bfloat16 tensor-core peak
    fp32_peak_tflops: float = 67.0  # float32 without tensor cores
    bf16_utilization: float = 0.20
    fp32_utilization: float = 0.40
    decode_step_ms: float = 5.0  # one launch-bound pass of an 8-layer model (host side)
    needle_batch_ms: float = 10.0  # building a 32 x 1024 needle batch on the host (measured on 2 CPU cores)
    run_overhead_s: float = 10.0  # per experiment: loading the corpus and weights, writing results

    def bf16_flops_per_s(self) -> float:
        return self.bf16_peak_tflops * 1e12 * self.bf16_utilization

    def fp32_flops_per_s(self) -> float:
        return self.fp32_peak_tflops * 1e12 * self.fp32_utilization


H100 = Accelerator()


@lru_cache(maxsize=None)
def _flops_per_token_cached(config_items: tuple, seq_len: int, train: bool) -> float:
    config = GPTConfig(**dict(config_items))
    with torch.device("meta"):
        model = GPT(config)
        idx = torch.zeros(1, seq_len + 1, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        logits = model(idx[:, :-1], attn_impl="explicit")
        if train:
            F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()).backward()
    return counter.get_total_flops() / seq_len


def flops_per_token(config: GPTConfig, seq_len: int, train: bool) -> float:
    """Matmul FLOPs per token of one sequence of ``seq_len`` tokens: forward, plus backward if
    ``train``. Counted on the meta device, so a 16k-token context costs nothing to count."""
    return _flops_per_token_cached(tuple(sorted(config.to_dict().items())), seq_len, train)


@dataclass
class EstimateRow:
    experiment: str
    what: str
    pflop_bf16: float
    pflop_fp32: float
    host_s: float  # launch-bound decoding, host-side batches, per-run overhead

    def seconds(self, acc: Accelerator) -> float:
        return (self.pflop_bf16 * 1e15 / acc.bf16_flops_per_s() + self.pflop_fp32 * 1e15 / acc.fp32_flops_per_s()
                + self.host_s)


def _training_row(name: str, profile: str, acc: Accelerator) -> EstimateRow:
    tc = ex.experiment_config(name, profile, 0).train
    T, B = tc.model.block_size, tc.batch_size
    train_tokens = tc.steps * B * T
    evals = math.ceil(tc.steps / tc.eval_every)
    eval_tokens = evals * tc.eval_batches * B * T
    host = acc.run_overhead_s + (tc.steps * acc.needle_batch_ms / 1000 if tc.task == "needle_sft" else 0.0)
    return EstimateRow(name, f"{tc.steps} steps x {B} x {T} tokens, {evals} evaluations of {tc.eval_batches} batches",
                       train_tokens * flops_per_token(tc.model, T, train=True) / 1e15,
                       eval_tokens * flops_per_token(tc.model, T, train=False) / 1e15, host)


def _needle_eval_row(name: str, profile: str, acc: Accelerator) -> EstimateRow:
    config = ex.experiment_config(name, profile, 0)
    ev = config.evaluation
    model = ex.experiment_config(config.init_from.rsplit("--seed", 1)[0], profile, 0).train.model
    prompts = len(ev["depths"]) * ev["trials"] * len(ev["rope_thetas"])  # per context length
    flops = sum(prompts * L * flops_per_token(model, L, train=False) for L in ev["context_lengths"])
    # one teacher-forced pass per batch of 10 prompts scores every digit (no decoding loop)
    batches = len(ev["context_lengths"]) * len(ev["depths"]) * math.ceil(ev["trials"] / 10) * len(ev["rope_thetas"])
    host = acc.run_overhead_s + batches * acc.decode_step_ms / 1000
    lengths = "/".join(f"{L // 1024}k" if L >= 1024 else str(L) for L in ev["context_lengths"])
    return EstimateRow(name, f"{prompts} prompts at each of {lengths} tokens, {ev['n_digits']} digits scored in one pass",
                       0.0, flops / 1e15, host)


def headline_estimate(profile: str = "gpu", acc: Accelerator = H100) -> list[EstimateRow]:
    """One row per experiment of the headline path (seed 0)."""
    rows = []
    for name in HEADLINE:
        rows.append(_needle_eval_row(name, profile, acc) if name.startswith("needle-eval-")
                    else _training_row(name, profile, acc))
    return rows


def format_estimate(profile: str = "gpu", acc: Accelerator = H100) -> str:
    rows = headline_estimate(profile, acc)
    prof = ex.check_profile(profile)
    m = prof.model
    params = GPT(GPTConfig(**m)).num_parameters()
    train_fpt = flops_per_token(GPTConfig(**m), m["block_size"], train=True)
    lines = [
        f"profile {profile}: {m['n_layer']} layers x width {m['n_embd']}, T = {m['block_size']}, {params / 1e6:.1f}M "
        f"parameters; {train_fpt / 1e6:.0f} MFLOP per training token (forward + backward, FlopCounterMode)",
        f"assumed {acc.name}: bf16 {acc.bf16_peak_tflops:g} TFLOP/s peak x {acc.bf16_utilization:.0%} = "
        f"{acc.bf16_flops_per_s() / 1e12:.0f} TFLOP/s (training, autocast); float32 {acc.fp32_peak_tflops:g} x "
        f"{acc.fp32_utilization:.0%} = {acc.fp32_flops_per_s() / 1e12:.0f} TFLOP/s (evaluation); "
        f"{acc.decode_step_ms:g} ms per decoding step; {acc.run_overhead_s:g} s per run",
        f"{'experiment':15s} {'bf16 PFLOP':>10s} {'fp32 PFLOP':>10s} {'host s':>7s} {'minutes':>8s}  what",
    ]
    total = 0.0
    for r in rows:
        seconds = r.seconds(acc)
        total += seconds
        lines.append(f"{r.experiment:15s} {r.pflop_bf16:10.2f} {r.pflop_fp32:10.2f} {r.host_s:7.1f} "
                     f"{seconds / 60:8.2f}  {r.what}")
    lines.append(f"{'total':15s} {'':10s} {'':10s} {'':7s} {total / 60:8.2f}  "
                 f"(budget {HEADLINE_BUDGET_MIN:g} min: {'within' if total / 60 <= HEADLINE_BUDGET_MIN else 'OVER'})")
    return "\n".join(lines)


def headline_minutes(profile: str = "gpu", acc: Accelerator = H100) -> float:
    return sum(r.seconds(acc) for r in headline_estimate(profile, acc)) / 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssmax.estimate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="gpu", choices=ex.PROFILES)
    args = parser.parse_args(argv)
    print(format_estimate(args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
