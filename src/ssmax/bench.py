"""What SSMax costs: speed and memory tables (`make bench`).

  (i)   one attention layer, forward + backward, at T = 256, 1k, 4k, 16k: softmax through
        scaled_dot_product_attention, SSMax fused (queries times s log n, then the same kernel),
        and SSMax explicit (materialise the T x T matrix, what a drop-in "softmax module"
        replacement does); median time and peak memory, each case in a fresh process.
  (ii)  whole-model training tokens/s, softmax vs SSMax, at the cpu profile's configuration.
  (iii) the machine's measured matmul peak and the model's FLOP utilization.

Prints the tables and writes data/results/bench/<device>.json, which the book's appendix reads.
Run: make bench, or python benchmarks/run.py [--device auto|cpu|cuda] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import results as store
from .device import DEVICE_CHOICES, pick_device
from .experiments import PROFILE_SETTINGS
from .attention import QueryScale
from .functional import causal_key_counts
from .model import GPT, GPTConfig

IMPLS = ("softmax", "ssmax_fused", "ssmax_explicit")


def attention(q, k, v, scale: QueryScale, impl: str):
    """One causal attention call; the SSMax cases scale the queries with the model's own
    `QueryScale`, so the bench times exactly what a `GPT` layer adds."""
    T = q.shape[2]
    if impl == "softmax":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    q = q * scale(causal_key_counts(T, device=q.device)).to(q.dtype)  # factor (H, T, 1)
    if impl == "ssmax_fused":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    return torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1) @ v


def _inputs(T: int, device: torch.device, heads: int, head_dim: int):
    gen = torch.Generator(device="cpu").manual_seed(0)
    shape = (1, heads, T, head_dim)
    q, k, v = (torch.randn(shape, generator=gen).to(device).requires_grad_() for _ in range(3))
    return q, k, v, QueryScale("ssmax", heads, s_init=0.2).to(device)


def _timed_call(impl: str, inputs, device: torch.device) -> float:
    """Seconds for one forward + backward."""
    q, k, v, scale = inputs
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    attention(q, k, v, scale, impl).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    for t in (q, k, v, scale.s):
        t.grad = None
    return elapsed


def peak_memory_case(impl: str, T: int, device: torch.device, heads: int, head_dim: int) -> dict:
    """Peak memory of one forward + backward above the inputs (run it in a fresh process)."""
    inputs = _inputs(T, device, heads, head_dim)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _timed_call(impl, inputs, device)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"impl": impl, "T": T, "peak_mb": peak_mb}


def time_interleaved(impls, T: int, device: torch.device, heads: int, head_dim: int, reps: int,
                     min_time_s: float = 0.0, max_reps: int = 50) -> dict[str, dict]:
    """Median forward + backward time of each implementation, called in turn (in rotating order)
    within one process, so that a drift in the machine's speed hits them all alike. At least
    ``reps`` rounds, more (up to ``max_reps``) until each has ``min_time_s`` of samples."""
    impls = list(impls)
    inputs = _inputs(T, device, heads, head_dim)
    for impl in impls:  # warm-up
        _timed_call(impl, inputs, device)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    rounds = 0
    while rounds < reps or (min(sum(t) for t in times.values()) < min_time_s and rounds < max_reps):
        shift = rounds % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            times[impl].append(_timed_call(impl, inputs, device))
        rounds += 1
    return {impl: {"median_ms": 1000 * statistics.median(t), "reps": len(t)} for impl, t in times.items()}


def _fresh_process(args: list[str]):
    """Run ``python -m ssmax.bench`` with ``args`` in a new process; its last line is JSON."""
    out = subprocess.run([sys.executable, "-m", "ssmax.bench", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def layer_table(device: torch.device, lengths, heads: int, head_dim: int, reps: int, max_explicit_gb: float,
                min_time_s: float = 0.0) -> list[dict]:
    """One row per (implementation, T): the median time (implementations interleaved in one
    process per T) and the peak memory (a fresh process per case, so that one case's peak does
    not hide the next one's)."""
    rows = []
    shape_args = ["--device", device.type, "--heads", str(heads), "--head-dim", str(head_dim)]
    for T in lengths:
        matrix_gb = heads * T * T * 4 * 4 / 2**30  # logits, probs and their gradients
        impls = [i for i in IMPLS if i != "ssmax_explicit" or matrix_gb <= max_explicit_gb]
        timing = _fresh_process(["--time-case", str(T), *impls, *shape_args, "--reps", str(reps),
                                 "--min-time", str(min_time_s)])
        for impl in IMPLS:
            if impl not in impls:
                rows.append({"impl": impl, "T": T, "median_ms": None, "peak_mb": None,
                             "skipped": f"would need about {matrix_gb:.0f} GB for the T x T matrices"})
                continue
            memory = _fresh_process(["--memory-case", impl, str(T), *shape_args])
            rows.append({**memory, **timing[impl]})
            print(f"  {impl:15s} T={T:6d}: {rows[-1]['median_ms']:9.1f} ms, {rows[-1]['peak_mb']:8.1f} MB",
                  file=sys.stderr, flush=True)
    return rows


def training_throughput(device: torch.device, steps: int) -> list[dict]:
    """Tokens/s of whole training steps at the cpu profile's model, softmax vs SSMax."""
    prof = PROFILE_SETTINGS["cpu"]
    B, T = prof.pretrain["batch_size"], prof.model["block_size"]
    rows = []
    for scaling in ("softmax", "ssmax"):
        torch.manual_seed(0)
        model = GPT(GPTConfig(scaling=scaling, **prof.model)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randint(0, 256, (B, T + 1), device=device)
        times = []
        for i in range(steps + 2):
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - t0)
        n = model.num_parameters()
        flops_per_token = 6 * n + 6 * prof.model["n_layer"] * T * prof.model["n_embd"]  # + causal attention
        tok_s = B * T / statistics.median(times)
        rows.append({"scaling": scaling, "tokens_per_s": tok_s, "parameters": n,
                     "model_gflops_per_s": tok_s * flops_per_token / 1e9})
    return rows


def matmul_peak(device: torch.device, size: int = 2048, reps: int = 10) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / min(times) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--quick", action="store_true", help="T up to 1k, fewer repetitions (for a smoke check)")
    parser.add_argument("--memory-case", nargs=2, metavar=("IMPL", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--time-case", nargs="+", metavar="T IMPL", help=argparse.SUPPRESS)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5, help="least number of timed calls per case")
    parser.add_argument("--min-time", type=float, default=2.0,
                        help="time each case for at least this many seconds (up to 50 calls)")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    if args.memory_case:
        impl, T = args.memory_case[0], int(args.memory_case[1])
        if impl not in IMPLS:
            parser.error(f"IMPL must be one of {IMPLS}; got {impl!r}")
        print(json.dumps(peak_memory_case(impl, T, device, args.heads, args.head_dim)))
        return 0
    if args.time_case:
        T, impls = int(args.time_case[0]), args.time_case[1:]
        if not impls or any(i not in IMPLS for i in impls):
            parser.error(f"--time-case takes T and implementations from {IMPLS}; got {args.time_case}")
        print(json.dumps(time_interleaved(impls, T, device, args.heads, args.head_dim, args.reps, args.min_time)))
        return 0

    lengths = (256, 1024) if args.quick else (256, 1024, 4096, 16384)
    t0 = time.perf_counter()
    print(f"attention layer (1 x {args.heads} heads x T x {args.head_dim}), forward + backward on {device}:",
          file=sys.stderr)
    layer = layer_table(device, lengths, args.heads, args.head_dim, 2 if args.quick else args.reps,
                        max_explicit_gb=12.0 if device.type == "cpu" else 60.0,
                        min_time_s=0.0 if args.quick else args.min_time)
    train = training_throughput(device, 3 if args.quick else 10)
    peak = matmul_peak(device)
    result = {"device": str(device), "environment": store.environment(device, time.perf_counter() - t0),
              "attention_layer": layer, "training": train, "matmul_peak_gflops": peak,
              "setup": {"heads": args.heads, "head_dim": args.head_dim, "quick": args.quick}}
    print(format_tables(result))
    if not args.quick:
        path = store.results_root() / "bench" / f"{device.type}.json"
        store.write_json_atomic(path, result)
        print(f"written to {path}", file=sys.stderr)
    return 0


def load_benchmark(device_type: str = "cpu") -> dict:
    """The stored benchmark of a device type (data/results/bench/<device>.json)."""
    path = store.results_root() / "bench" / f"{device_type}.json"
    if not path.exists():
        raise store.MissingResultsError(f"no benchmark at {path}: run `make bench`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise store.CorruptResultsError(f"{path} is not valid JSON ({err}); rerun `make bench`") from err


def format_tables(result: dict) -> str:
    """The printed tables (the appendix prints the same from the stored JSON)."""
    lines = ["attention layer, forward + backward: median ms / peak MB",
             f"{'T':>6s} " + " ".join(f"{impl:>22s}" for impl in IMPLS) + f" {'fused/softmax':>14s}"]
    by = {(r["impl"], r["T"]): r for r in result["attention_layer"]}
    for T in sorted({r["T"] for r in result["attention_layer"]}):
        cells = []
        for impl in IMPLS:
            r = by[(impl, T)]
            cells.append(f"{'skipped':>22s}" if r["median_ms"] is None
                         else f"{r['median_ms']:10.1f} / {r['peak_mb']:9.1f}")
        ratio = by[("ssmax_fused", T)]["median_ms"] / by[("softmax", T)]["median_ms"]
        lines.append(f"{T:6d} " + " ".join(cells) + f" {ratio:14.3f}")
    lines.append("")
    lines.append(f"training at the cpu profile's model: tokens/s (model GFLOP/s, utilization of the "
                 f"{result['matmul_peak_gflops']:.0f} GFLOP/s matmul peak)")
    for r in result["training"]:
        lines.append(f"  {r['scaling']:8s} {r['tokens_per_s']:10,.0f} tokens/s  ({r['model_gflops_per_s']:.1f} GFLOP/s, "
                     f"{r['model_gflops_per_s'] / result['matmul_peak_gflops']:.1%})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
