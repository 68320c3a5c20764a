"""How long a profile's headline path should take on one GPU, from FLOPs counted per token.

The headline path is what the book's main claims rest on: pretraining (a) softmax and (b) SSMax,
needle fine-tuning of both, and their needle evaluation (seed 0). FLOPs per token are counted by
`torch.utils.flop_counter.FlopCounterMode` on the meta device (nothing is computed), running the
model's explicit attention path so that attention's matmuls are counted too (the counter has no
formula for the CPU flash kernel); it counts the full T x T products, while a causal flash kernel
does about half of them, so attention is overestimated. Time = FLOPs / (peak x an assumed
utilization), per precision: training runs under bfloat16 autocast, evaluations in float32.

    python -m ssmax.estimate [--profile gpu]     prints the table (book/reproduce.md shows it)
    python -m ssmax.estimate --measure           times the profile's training steps on this machine's
                                                 GPU (bf16 autocast, softmax and SSMax interleaved)
                                                 and writes data/results/bench/<device>-<profile>.json;
                                                 the table then shows the measured rate beside the
                                                 assumed one
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from . import experiments as ex
from . import results as store
from .device import DEVICE_CHOICES, pick_device
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


def measured_path(profile: str = "gpu"):
    return store.results_root() / "bench" / f"cuda-{profile}.json"


def measure_training(profile: str = "gpu", device: str = "auto", steps: int = 20, warmup: int = 3) -> dict:
    """Training steps of the profile's pretraining model (its batch and context, AdamW, bf16
    autocast where the profile asks for it), softmax and SSMax in turn after a warm-up: median
    step time, tokens/s, and the achieved FLOP rate by the counted FLOPs per token."""
    dev = pick_device(device)
    prof = ex.check_profile(profile)
    B, T = prof.pretrain["batch_size"], prof.model["block_size"]
    mixed = bool(prof.pretrain.get("mixed_precision")) and dev.type == "cuda"
    x = torch.randint(0, 256, (B, T + 1), generator=torch.Generator().manual_seed(0)).to(dev)
    models, opts = {}, {}
    for scaling in ("softmax", "ssmax"):
        torch.manual_seed(0)
        models[scaling] = GPT(GPTConfig(scaling=scaling, **prof.model)).to(dev)
        opts[scaling] = torch.optim.AdamW(models[scaling].parameters(), lr=1e-4)
    times: dict[str, list[float]] = {s: [] for s in models}
    from .bench import _sync, time_interleaved  # the appendix's timing helpers

    for i in range(warmup + steps):
        for scaling in (list(models) if i % 2 == 0 else list(models)[::-1]):
            _sync(dev)
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mixed):
                loss = F.cross_entropy(models[scaling](x[:, :-1]).flatten(0, 1).float(), x[:, 1:].flatten())
            opts[scaling].zero_grad(set_to_none=True)
            loss.backward()
            opts[scaling].step()
            _sync(dev)
            if i >= warmup:
                times[scaling].append(time.perf_counter() - t0)
    fpt = flops_per_token(GPTConfig(**prof.model), T, train=True)
    rows = {s: {"median_step_s": statistics.median(t), "tokens_per_s": B * T / statistics.median(t),
                "tflops_per_s": B * T * fpt / statistics.median(t) / 1e12, "steps": len(t)}
            for s, t in times.items()}
    rows["ssmax"]["ratio_to_softmax"] = statistics.median(a / b for a, b in zip(times["softmax"], times["ssmax"]))
    # the appendix's interleaved layer timing, at this model's head shape
    heads, head_dim = prof.model["n_head"], prof.model["n_embd"] // prof.model["n_head"]
    layer = {str(L): time_interleaved(("softmax", "ssmax_fused"), L, dev, heads, head_dim, reps=20)
             for L in (T, 4 * T, 16 * T)}
    return {"profile": profile, "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "batch_size": B, "block_size": T, "mixed_precision": mixed, "flops_per_token": fpt,
            "training": rows, "attention_layer": layer,
            "environment": store.environment(dev, sum(map(sum, times.values())))}


def format_measured(profile: str = "gpu") -> str:
    """The measured training rate (if a GPU measurement is stored) against the assumed one, and
    the headline path's training time at the measured rate."""
    path = measured_path(profile)
    if not path.exists():
        return f"measured: none yet (python -m ssmax.estimate --measure on a GPU writes {path.name})"
    m = json.loads(path.read_text())
    soft, ssm = m["training"]["softmax"], m["training"]["ssmax"]
    train_tokens = sum(ex.experiment_config(n, profile, 0).train.steps * m["batch_size"] * m["block_size"]
                       for n in HEADLINE if not n.startswith("needle-eval-"))
    return (f"measured on {m['device_name']} ({'bf16 autocast' if m['mixed_precision'] else 'float32'}, "
            f"{soft['steps']} steps each): softmax {soft['tokens_per_s']:,.0f} tokens/s "
            f"({soft['tflops_per_s']:.0f} TFLOP/s), SSMax {ssm['tokens_per_s']:,.0f} tokens/s "
            f"(x{ssm['ratio_to_softmax']:.3f} of softmax's rate); the headline path's training steps at "
            f"softmax's measured rate: {train_tokens / soft['tokens_per_s'] / 60:.1f} min; one attention layer "
            f"(forward + backward, float32), fused SSMax / softmax time: "
            + ", ".join(f"x{r['ssmax_fused']['ratio_to_softmax']:.3f} at T = {L}" for L, r in sorted(m["attention_layer"].items(), key=lambda kv: int(kv[0]))))


def headline_minutes(profile: str = "gpu", acc: Accelerator = H100) -> float:
    return sum(r.seconds(acc) for r in headline_estimate(profile, acc)) / 60


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssmax.estimate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="gpu", choices=ex.PROFILES)
    parser.add_argument("--measure", action="store_true", help="time training steps on this machine's GPU")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    if args.measure:
        if pick_device(args.device).type != "cuda":
            print("error: --measure times a GPU; this machine has none (or --device cpu was given)", file=sys.stderr)
            return 2
        result = measure_training(args.profile, args.device, args.steps)
        store.write_json_atomic(measured_path(args.profile), result)
        print(json.dumps(result["training"], indent=1))
    print(format_estimate(args.profile))
    print(format_measured(args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
