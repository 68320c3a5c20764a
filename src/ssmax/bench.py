"""What SSMax costs: speed and memory tables (`make bench`).

  (i)   one attention layer, forward + backward, at T = 256, 1k, 4k, 16k, through the model's
        own functions (`position_and_scale`, then the kernel): softmax (RoPE on q and k, then
        scaled_dot_product_attention), SSMax fused (the factor s log n folded into the queries'
        RoPE tables, then the same kernel), SSMax explicit (the T x T matrix materialised, as
        the model's explicit path does) and the PyPI package `scalable-softmax` (a drop-in
        softmax module: it materialises the matrix and uses the row length T as n); median time
        (all implementations interleaved in one process) and peak memory (a fresh process each).
        "ssmax_frozen_s" is the fused path with no gradient for s: its difference to ssmax_fused
        is what the gradient of s costs (one product and one reduction per layer, and the
        factor's own small backward).
  (ii)  whole-model training tokens/s at the cpu profile's model, softmax vs SSMax, steps
        interleaved; KV-cache decoding tokens/s of the same models.
  (iii) training tokens/s with and without torch.compile (optional: --no-compile skips it).
  (iv)  the machine's measured matmul peak and the model's FLOP utilization.
  (v)   `ssmax.hf` in Hugging Face's own Llama attention module (projections, RoPE, the attention
        function, output projection), forward + backward, against the same module on plain SDPA,
        interleaved in one process (needs the `hf` extra; written to data/results/bench/hf-<device>.json,
        also alone: --hf-only).

Prints the tables and writes data/results/bench/<device>.json, which the book's appendix reads.
Run: make bench, or python benchmarks/run.py [--device auto|cpu|cuda] [--quick] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from . import results as store
from .attention import KVCache, QueryScale, explicit_attention_probs, position_and_scale
from .device import DEVICE_CHOICES, pick_device
from .experiments import PROFILE_SETTINGS
from .functional import causal_key_counts
from .model import GPT, GPTConfig
from .rope import rope_angles

IMPLS = ("softmax", "ssmax_fused", "ssmax_frozen_s", "ssmax_explicit", "scalable_softmax")
MATERIALISING = ("ssmax_explicit", "scalable_softmax")  # form the T x T matrix
PEER_PACKAGE = "scalable-softmax==0.1.5"  # the `test` extra installs it
# What the issue asks of the fused path: time relative to softmax at T = 256 and from T = 1024 on,
# and whole-model training throughput relative to softmax.
TARGETS = {"layer_ratio_T256": 1.05, "layer_ratio_from_1024": 1.02, "training_ratio": 0.98}


def peer_softmax(s: float = 0.43):
    """The `scalable_softmax` package's module (None when it is not installed)."""
    try:
        from scalable_softmax import ScalableSoftmax
    except ImportError:
        return None
    return ScalableSoftmax(s=s, learn_scaling=True, bias=False)


class LayerInputs:
    """Queries, keys, values (1, H, T, D), the RoPE tables and log n (computed once per forward
    in the model, so outside the timed call here too), and the per-layer parameters."""

    def __init__(self, T: int, device: torch.device, heads: int, head_dim: int, seed: int = 0):
        gen = torch.Generator(device="cpu").manual_seed(seed)
        shape = (1, heads, T, head_dim)
        self.q, self.k, self.v = (torch.randn(shape, generator=gen).to(device).requires_grad_() for _ in range(3))
        self.cos, self.sin = rope_angles(head_dim, torch.arange(T, device=device), 10_000.0)
        self.log_n = torch.log(causal_key_counts(T, device=device))
        self.scale = QueryScale("ssmax", heads, s_init=0.2).to(device)
        self.peer = peer_softmax()
        if self.peer is not None:
            self.peer = self.peer.to(device)

    def parameters(self) -> list[torch.Tensor]:
        return [self.q, self.k, self.v, self.scale.s] + ([self.peer.s] if self.peer is not None else [])


def attention(inputs: LayerInputs, impl: str) -> torch.Tensor:
    """One causal attention call as a `GPT` layer makes it (from the q, k, v projections to the
    attention output), so the bench times exactly what the model runs."""
    q, k, v = inputs.q, inputs.k, inputs.v
    if impl in ("softmax", "scalable_softmax"):
        q, k = position_and_scale(q, k, inputs.cos, inputs.sin, None)
    else:
        factor = inputs.scale(None, log_n=inputs.log_n)  # (H, T, 1), folded into q's RoPE tables
        if impl == "ssmax_frozen_s":
            factor = factor.detach()
        q, k = position_and_scale(q, k, inputs.cos, inputs.sin, factor)
    if impl in ("softmax", "ssmax_fused", "ssmax_frozen_s"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if impl == "ssmax_explicit":
        positions = torch.arange(q.shape[2], device=q.device)
        return torch.matmul(explicit_attention_probs(q, k, positions), v.float()).to(q.dtype)
    if impl == "scalable_softmax":
        if inputs.peer is None:
            raise RuntimeError(f"the peer row needs `pip install {PEER_PACKAGE}` (the package's test extra)")
        T = q.shape[2]
        logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        return torch.matmul(inputs.peer(logits.masked_fill(~mask, float("-inf"))), v)
    raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed_call(impl: str, inputs: LayerInputs, device: torch.device) -> float:
    """Seconds for one forward + backward."""
    _sync(device)
    t0 = time.perf_counter()
    attention(inputs, impl).sum().backward()
    _sync(device)
    elapsed = time.perf_counter() - t0
    for t in inputs.parameters():
        t.grad = None
    return elapsed


def _rss_kb(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory_case(impl: str, T: int, device: torch.device, heads: int, head_dim: int) -> dict:
    """Peak memory of one forward + backward above the inputs (run it in a fresh process). On
    Linux the resident-memory high-water mark is reset to the current size first, so a peak
    reached while importing does not hide the call's; elsewhere only growth above it shows."""
    inputs = LayerInputs(T, device, heads, head_dim)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        base_kb, peak_field = _rss_kb("VmRSS"), "VmHWM"
    except OSError:
        base_kb, peak_field = None, None
    if base_kb is None:
        base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _timed_call(impl, inputs, device)
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_kb = _rss_kb(peak_field) if peak_field else None
        peak_mb = ((peak_kb if peak_kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) - base_kb) / 1024
    return {"impl": impl, "T": T, "peak_mb": peak_mb}


# fewest rounds for which a ratio is the median of per-round ratios; with fewer (--quick) one slow
# round decides it, and the ratio shown beside two median times would not be their ratio
MIN_PAIRED_ROUNDS = 5


def paired_ratio(times: list[float], base: list[float]) -> float:
    """``times`` relative to ``base``: the median over rounds of the ratio within each round (a
    load spike on a shared machine then moves both sides), or, with fewer than
    `MIN_PAIRED_ROUNDS` rounds, the ratio of the medians (what the printed times show)."""
    if len(times) < MIN_PAIRED_ROUNDS:
        return statistics.median(times) / statistics.median(base)
    return statistics.median(a / b for a, b in zip(times, base))


def time_interleaved(impls, T: int, device: torch.device, heads: int, head_dim: int, reps: int,
                     min_time_s: float = 0.0, max_reps: int = 2000) -> dict[str, dict]:
    """Median forward + backward time of each implementation, called in turn (in rotating order)
    within one process, so that a drift in the machine's speed hits them all alike. At least
    ``reps`` rounds, more (up to ``max_reps``) until each has ``min_time_s`` of samples.
    ``ratio_to_softmax`` is the median over rounds of the time relative to softmax's in the same
    round: a load spike on a shared machine then moves both sides of a ratio."""
    impls = list(impls)
    inputs = LayerInputs(T, device, heads, head_dim)
    for impl in impls:  # warm-up
        _timed_call(impl, inputs, device)
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    rounds = 0
    while rounds < reps or (min(sum(t) for t in times.values()) < min_time_s and rounds < max_reps):
        shift = rounds % len(impls)
        for impl in impls[shift:] + impls[:shift]:
            times[impl].append(_timed_call(impl, inputs, device))
        rounds += 1
    out = {}
    for impl, t in times.items():
        out[impl] = {"median_ms": 1000 * statistics.median(t), "reps": len(t)}
        if "softmax" in times:
            out[impl]["ratio_to_softmax"] = paired_ratio(t, times["softmax"])
    return out


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
    peer_missing = peer_softmax() is None
    for T in lengths:
        matrix_gb = heads * T * T * 4 * 4 / 2**30  # logits, probs and their gradients
        skipped = {}
        for impl in MATERIALISING:
            if matrix_gb > max_explicit_gb:
                skipped[impl] = f"would need about {matrix_gb:.0f} GB for the T x T matrices"
        if peer_missing:
            skipped["scalable_softmax"] = f"not installed (pip install {PEER_PACKAGE})"
        impls = [i for i in IMPLS if i not in skipped]
        timing = _fresh_process(["--time-case", str(T), *impls, *shape_args, "--reps", str(reps),
                                 "--min-time", str(min_time_s)])
        for impl in IMPLS:
            if impl in skipped:
                rows.append({"impl": impl, "T": T, "median_ms": None, "peak_mb": None, "skipped": skipped[impl]})
                continue
            memory = _fresh_process(["--memory-case", impl, str(T), *shape_args])
            rows.append({**memory, **timing[impl]})
            print(f"  {impl:17s} T={T:6d}: {rows[-1]['median_ms']:9.2f} ms (x{rows[-1]['ratio_to_softmax']:.3f}), "
                  f"{rows[-1]['peak_mb']:8.1f} MB", file=sys.stderr, flush=True)
    return rows


# --- whole model ---------------------------------------------------------------------------

def _cpu_profile_model(scaling: str, device: torch.device) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(scaling=scaling, **PROFILE_SETTINGS["cpu"].model)).to(device)


def _flops_per_token(model: GPT) -> float:
    """6 N for the weights plus causal attention's 6 L T d (the usual estimate)."""
    c = model.config
    return 6 * model.num_parameters() + 6 * c.n_layer * c.block_size * c.n_embd


def _train_step(model, opt, x, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
    opt.zero_grad()
    loss.backward()
    opt.step()
    _sync(device)
    return time.perf_counter() - t0


def _interleaved_training(models: dict, device: torch.device, steps: int, warmup: int = 2) -> dict[str, list[float]]:
    """Step times of each model, one step of each in turn (rotating order), after a warm-up."""
    prof = PROFILE_SETTINGS["cpu"]
    B, T = prof.pretrain["batch_size"], prof.model["block_size"]
    x = torch.randint(0, 256, (B, T + 1), generator=torch.Generator().manual_seed(0)).to(device)
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}
    names = list(models)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + steps):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = _train_step(models[name], opts[name], x, device)
            if i >= warmup:
                times[name].append(elapsed)
    return times


def training_throughput(device: torch.device, steps: int) -> list[dict]:
    """Tokens/s of whole training steps at the cpu profile's model, softmax vs SSMax, the two
    models' steps interleaved; ``ratio_to_softmax`` is the median over rounds of softmax's step
    time over SSMax's (tokens/s relative to softmax)."""
    prof = PROFILE_SETTINGS["cpu"]
    tokens = prof.pretrain["batch_size"] * prof.model["block_size"]
    models = {s: _cpu_profile_model(s, device) for s in ("softmax", "ssmax")}
    times = _interleaved_training(models, device, steps)
    rows = []
    for scaling, model in models.items():
        tok_s = tokens / statistics.median(times[scaling])
        rows.append({"scaling": scaling, "tokens_per_s": tok_s, "parameters": model.num_parameters(),
                     "steps": len(times[scaling]),
                     "ratio_to_softmax": paired_ratio(times["softmax"], times[scaling]),
                     "model_gflops_per_s": tok_s * _flops_per_token(model) / 1e9})
    return rows


@torch.no_grad()
def decode_throughput(device: torch.device, new_tokens: int, rounds: int, batch: int = 1) -> list[dict]:
    """KV-cache decoding tokens/s at the cpu profile's model: a prompt of T tokens (untimed),
    then ``new_tokens`` greedy single-token steps through `GPT.forward` with the cache, as
    `GPT.generate` runs them; softmax and SSMax in turn, the median of ``rounds`` rounds."""
    T = PROFILE_SETTINGS["cpu"].model["block_size"]
    models = {s: _cpu_profile_model(s, device).eval() for s in ("softmax", "ssmax")}
    prompt = torch.randint(0, 256, (batch, T), generator=torch.Generator().manual_seed(1)).to(device)
    times: dict[str, list[float]] = {s: [] for s in models}
    names = list(models)
    for r in range(rounds + 1):  # the first round warms up
        for name in names[r % 2:] + names[:r % 2]:
            model, cache = models[name], KVCache(models[name].config.n_layer)
            token = model(prompt, cache=cache)[:, -1].argmax(-1, keepdim=True)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(new_tokens):
                token = model(token, cache=cache)[:, -1].argmax(-1, keepdim=True)
            _sync(device)
            if r:
                times[name].append(time.perf_counter() - t0)
    return [{"scaling": s, "tokens_per_s": batch * new_tokens / statistics.median(t), "prompt_len": T,
             "new_tokens": new_tokens, "batch": batch, "rounds": rounds} for s, t in times.items()]


def compile_throughput(device: torch.device, steps: int) -> dict:
    """Training tokens/s at the cpu profile's model with and without torch.compile (default
    mode), softmax and SSMax, all four interleaved; the first compiled step's time (the
    compilation) and how far the compiled model's logits are from the eager model's."""
    prof = PROFILE_SETTINGS["cpu"]
    tokens = prof.pretrain["batch_size"] * prof.model["block_size"]
    models, compile_s, logit_diff = {}, {}, {}
    shape = (prof.pretrain["batch_size"], prof.model["block_size"] + 1)  # the shape the timed steps use
    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(2)).to(device)
    for scaling in ("softmax", "ssmax"):
        eager = _cpu_profile_model(scaling, device)
        compiled = torch.compile(_cpu_profile_model(scaling, device))
        t0 = time.perf_counter()
        # the first training step compiles the forward and backward graphs
        _train_step(compiled, torch.optim.AdamW(compiled.parameters(), lr=1e-3), x, device)
        compile_s[scaling] = time.perf_counter() - t0
        _train_step(eager, torch.optim.AdamW(eager.parameters(), lr=1e-3), x, device)  # the same update
        with torch.no_grad():
            logit_diff[scaling] = float((compiled(x[:, :-1]) - eager(x[:, :-1])).abs().max())
        models[f"{scaling}"] = eager
        models[f"{scaling}+compile"] = compiled
    times = _interleaved_training(models, device, steps)
    rows = [{"model": name, "tokens_per_s": tokens / statistics.median(t), "steps": len(t)} for name, t in times.items()]
    return {"rows": rows, "compile_s": compile_s, "max_abs_logit_diff": logit_diff,
            "mode": "default", "torch_version": torch.__version__}


def compile_in_fresh_process(device: torch.device, steps: int) -> dict:
    """`compile_throughput` in a new process with an empty inductor cache, so that the compile
    time is a cold start's (torch.compile caches compiled graphs on disk between processes)."""
    with tempfile.TemporaryDirectory(prefix="ssmax-inductor-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-m", "ssmax.bench", "--device", device.type, "--compile-case", str(steps)],
                             capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_peak(device: torch.device, size: int = 2048, reps: int = 10) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / min(times) / 1e9


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--quick", action="store_true", help="T up to 1k, fewer repetitions, no torch.compile, "
                                                             "nothing written (a smoke check)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile section (minutes on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice); "
                                                                      "1 on a shared, oversubscribed machine")
    parser.add_argument("--hf-only", action="store_true", help="only section (v), ssmax.hf in transformers' Llama "
                                                               "attention (written to bench/hf-<device>.json)")
    parser.add_argument("--memory-case", nargs=2, metavar=("IMPL", "T"), help=argparse.SUPPRESS)
    parser.add_argument("--time-case", nargs="+", metavar="T IMPL", help=argparse.SUPPRESS)
    parser.add_argument("--compile-case", type=int, metavar="STEPS", help=argparse.SUPPRESS)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5, help="least number of timed calls per case")
    parser.add_argument("--min-time", type=float, default=3.0,
                        help="time each case for at least this many seconds (up to 2000 calls)")
    args = parser.parse_args(argv)
    if args.heads < 1:
        parser.error(f"--heads must be >= 1; got {args.heads}")
    if args.head_dim < 2 or args.head_dim % 2:
        parser.error(f"--head-dim must be an even integer >= 2 (RoPE rotates pairs); got {args.head_dim}")
    if args.reps < 1:
        parser.error(f"--reps must be >= 1 (each case needs a timed call); got {args.reps}")
    if not args.min_time >= 0 or args.min_time == float("inf"):
        parser.error(f"--min-time must be a finite number of seconds >= 0; got {args.min_time}")
    device = pick_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be a positive integer; got {args.threads}")
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the fresh processes of the layer table too
    if args.memory_case:
        impl, T = args.memory_case[0], int(args.memory_case[1])
        if impl not in IMPLS:
            parser.error(f"IMPL must be one of {IMPLS}; got {impl!r}")
        print(json.dumps(peak_memory_case(impl, T, device, args.heads, args.head_dim)))
        return 0
    if args.compile_case is not None:
        print(json.dumps(compile_throughput(device, args.compile_case)))
        return 0
    if args.time_case:
        T, impls = int(args.time_case[0]), args.time_case[1:]
        if not impls or any(i not in IMPLS for i in impls):
            parser.error(f"--time-case takes T and implementations from {IMPLS}; got {args.time_case}")
        print(json.dumps(time_interleaved(impls, T, device, args.heads, args.head_dim, args.reps, args.min_time)))
        return 0

    lengths = (256, 1024) if args.quick else (256, 1024, 4096, 16384)
    if args.hf_only:  # up to 4k: the section alone is a quick check of the cost on one machine
        return run_hf_only(device, lengths[:3], args.heads, args.head_dim, 2 if args.quick else args.reps,
                           0.0 if args.quick else args.min_time, write=not args.quick)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    print(f"attention layer (1 x {args.heads} heads x T x {args.head_dim}), forward + backward on {device}:",
          file=sys.stderr)
    layer = layer_table(device, lengths, args.heads, args.head_dim, 2 if args.quick else args.reps,
                        max_explicit_gb=12.0 if device.type == "cpu" else 60.0,
                        min_time_s=0.0 if args.quick else args.min_time)
    print("whole-model training and decoding ...", file=sys.stderr, flush=True)
    train = training_throughput(device, 3 if args.quick else 30)
    decode = decode_throughput(device, new_tokens=8 if args.quick else 128, rounds=1 if args.quick else 9)
    compiled = None
    if not (args.quick or args.no_compile):
        print("torch.compile (compiling takes a while) ...", file=sys.stderr, flush=True)
        compiled = compile_in_fresh_process(device, 20)
    print("ssmax.hf in transformers' Llama attention ...", file=sys.stderr, flush=True)
    hf_rows = hf_attention_table(device, lengths, args.heads, args.head_dim, 2 if args.quick else args.reps,
                                 0.0 if args.quick else args.min_time)
    peak = matmul_peak(device)
    env = store.environment(device, time.perf_counter() - t0)
    env["load_average_1min"] = {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}
    result = {"device": str(device), "environment": env, "attention_layer": layer, "training": train,
              "decoding": decode, "compile": compiled, "matmul_peak_gflops": peak, "targets": TARGETS,
              "setup": {"heads": args.heads, "head_dim": args.head_dim, "quick": args.quick}}
    print(format_tables(result))
    if hf_rows is not None:
        hf_result = {"device": str(device), "environment": env, "hf_attention": hf_rows, "targets": TARGETS,
                     "setup": result["setup"]}
        print("\n" + format_hf(hf_result))
    if not args.quick:
        path = store.results_root() / "bench" / f"{device.type}.json"
        store.write_json_atomic(path, result)
        print(f"written to {path}", file=sys.stderr)
        if hf_rows is not None:
            store.write_json_atomic(store.results_root() / "bench" / f"hf-{device.type}.json", hf_result)
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


# --- (v) ssmax.hf in transformers' Llama attention ----------------------------------------------

HF_IMPLS = ("sdpa", "ssmax")  # the attn_implementation of the same LlamaAttention module


def hf_attention_table(device: torch.device, lengths, heads: int, head_dim: int, reps: int,
                       min_time_s: float = 0.0, max_reps: int = 2000) -> Optional[list[dict]]:
    """Median forward + backward time of one `LlamaAttention` module on "sdpa" and on "ssmax"
    (`ssmax.hf.enable`), the two called in turn (rotating order) on the same inputs; the ratio is
    the median over rounds of ssmax's time over sdpa's in the same round. None without the extra."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
        from . import hf
    except ImportError:
        return None
    rows = []
    for T in lengths:
        torch.manual_seed(0)
        width = heads * head_dim
        model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=width, intermediate_size=width,
                                             num_hidden_layers=1, num_attention_heads=heads, num_key_value_heads=heads,
                                             head_dim=head_dim, max_position_embeddings=T)).to(device)
        hf.enable(model)
        attn = model.model.layers[0].self_attn
        x = torch.randn(1, T, width, device=device, requires_grad=True)
        positions = torch.arange(T, device=device)[None]
        cos_sin = model.model.rotary_emb(x, positions)

        def call(impl: str) -> float:
            model.config._attn_implementation_internal = impl  # what set_attn_implementation sets
            _sync(device)
            t0 = time.perf_counter()
            attn(x, position_embeddings=cos_sin, attention_mask=None, position_ids=positions)[0].sum().backward()
            _sync(device)
            elapsed = time.perf_counter() - t0
            x.grad = None
            model.zero_grad(set_to_none=True)
            return elapsed

        for impl in HF_IMPLS:  # warm-up
            call(impl)
        times: dict[str, list[float]] = {impl: [] for impl in HF_IMPLS}
        rounds = 0
        while rounds < reps or (min(sum(t) for t in times.values()) < min_time_s and rounds < max_reps):
            order = HF_IMPLS if rounds % 2 == 0 else HF_IMPLS[::-1]
            for impl in order:
                times[impl].append(call(impl))
            rounds += 1
        ratio = statistics.median(a / b for a, b in zip(times["ssmax"], times["sdpa"]))
        rows.append({"T": T, "sdpa_ms": 1000 * statistics.median(times["sdpa"]),
                     "ssmax_ms": 1000 * statistics.median(times["ssmax"]), "ratio": ratio, "reps": rounds})
        print(f"  transformers Llama attention T={T:6d}: sdpa {rows[-1]['sdpa_ms']:9.2f} ms, ssmax.hf "
              f"{rows[-1]['ssmax_ms']:9.2f} ms (x{ratio:.3f})", file=sys.stderr, flush=True)
    return rows


def format_hf(result: dict) -> str:
    rows = result.get("hf_attention")
    if not rows:
        return "ssmax.hf in transformers' Llama attention: not measured (pip install -e '.[hf]')"
    lines = ["ssmax.hf in transformers' Llama attention module (projections, RoPE, attention, output), forward + "
             "backward: median ms (x time of the same module on SDPA, interleaved)"]
    for r in rows:
        target = TARGETS["layer_ratio_T256"] if r["T"] < 1024 else TARGETS["layer_ratio_from_1024"]
        lines.append(f"  T = {r['T']:6d}: sdpa {r['sdpa_ms']:9.2f}  ssmax.hf {r['ssmax_ms']:9.2f}  (x{r['ratio']:.3f}, "
                     f"{'within' if r['ratio'] <= target else 'OUTSIDE'} the {target:.2f} target)")
    return "\n".join(lines)


def run_hf_only(device: torch.device, lengths, heads: int, head_dim: int, reps: int, min_time_s: float,
                write: bool) -> int:
    """`--hf-only`: section (v) alone, written to data/results/bench/hf-<device>.json."""
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    rows = hf_attention_table(device, lengths, heads, head_dim, reps, min_time_s)
    if rows is None:
        raise SystemExit("error: --hf-only needs transformers: pip install -e '.[hf]'")
    env = store.environment(device, time.perf_counter() - t0)
    env["load_average_1min"] = {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}
    result = {"device": str(device), "environment": env, "hf_attention": rows, "targets": TARGETS,
              "setup": {"heads": heads, "head_dim": head_dim, "reps": reps, "min_time_s": min_time_s}}
    print(format_hf(result))
    if write:
        path = store.results_root() / "bench" / f"hf-{device.type}.json"
        store.write_json_atomic(path, result)
        print(f"written to {path}", file=sys.stderr)
    return 0


# --- the printed tables (the appendix prints the same from the stored JSON) ------------------

def _ratio(row: dict, softmax_row: dict) -> Optional[float]:
    if row["median_ms"] is None:
        return None
    return row.get("ratio_to_softmax", row["median_ms"] / softmax_row["median_ms"])


def format_layer_table(result: dict) -> str:
    rows = result["attention_layer"]
    impls = [i for i in IMPLS if any(r["impl"] == i for r in rows)]
    by = {(r["impl"], r["T"]): r for r in rows}
    lengths = sorted({r["T"] for r in rows})
    header = f"{'T':>6s}" + "".join(f"{impl:>17s}" for impl in impls)
    lines = ["attention layer (RoPE on q and k, then attention), forward + backward: median ms (x time of softmax)",
             header]
    for T in lengths:
        cells = []
        for impl in impls:
            r = by[(impl, T)]
            ratio = _ratio(r, by[("softmax", T)])
            cells.append(f"{'skipped':>17s}" if ratio is None else f"{r['median_ms']:9.2f} (x{ratio:4.2f})")
        lines.append(f"{T:6d}" + "".join(cells))
    lines += ["", "peak memory above the inputs, MB (a fresh process per case)", header]
    for T in lengths:
        lines.append(f"{T:6d}" + "".join(f"{'skipped':>17s}" if by[(i, T)]["peak_mb"] is None
                                         else f"{by[(i, T)]['peak_mb']:17.1f}" for i in impls))
    return "\n".join(lines)


def format_training(result: dict) -> str:
    lines = [f"training at the cpu profile's model, steps interleaved: tokens/s (model GFLOP/s, utilization of "
             f"the {result['matmul_peak_gflops']:.0f} GFLOP/s matmul peak)"]
    for r in result["training"]:
        ratio = f", {r['ratio_to_softmax']:.1%} of softmax's" if "ratio_to_softmax" in r else ""
        lines.append(f"  {r['scaling']:8s} {r['tokens_per_s']:10,.0f} tokens/s  ({r['model_gflops_per_s']:.1f} GFLOP/s, "
                     f"{r['model_gflops_per_s'] / result['matmul_peak_gflops']:.1%}){ratio}")
    return "\n".join(lines)


def format_decoding(result: dict) -> str:
    rows = result.get("decoding") or []
    if not rows:
        return "KV-cache decoding: not measured"
    r0 = rows[0]
    lines = [f"KV-cache decoding at the cpu profile's model (batch {r0['batch']}, {r0['prompt_len']}-token prompt, "
             f"{r0['new_tokens']} new tokens, median of {r0['rounds']} rounds)"]
    soft = next(r["tokens_per_s"] for r in rows if r["scaling"] == "softmax")
    for r in rows:
        lines.append(f"  {r['scaling']:8s} {r['tokens_per_s']:10,.0f} tokens/s  ({r['tokens_per_s'] / soft:.1%} of softmax's)")
    return "\n".join(lines)


def format_compile(result: dict) -> str:
    comp = result.get("compile")
    if not comp:
        return "torch.compile: not measured (run `make bench` without --no-compile)"
    lines = [f"training with torch.compile (mode {comp['mode']}) vs eager, cpu profile's model, steps interleaved"]
    rows = {r["model"]: r for r in comp["rows"]}
    for name, r in rows.items():
        base = rows[name.split("+")[0]]["tokens_per_s"]
        extra = "" if "+" not in name else f"  (x{r['tokens_per_s'] / base:.2f} of eager)"
        lines.append(f"  {name:16s} {r['tokens_per_s']:10,.0f} tokens/s{extra}")
    for scaling, seconds in comp["compile_s"].items():
        lines.append(f"  {scaling}: first compiled step {seconds:.1f} s; largest |compiled - eager| logit "
                     f"{comp['max_abs_logit_diff'][scaling]:.2e}")
    return "\n".join(lines)


def check_numbers(result: dict) -> dict:
    """The stored measurements against the targets, as numbers: per T the fused SSMax / softmax
    time ratio, the difference in ms, the target and the part the gradient of s costs; the
    memory exponent of the fused path between the two longest T; the whole-model ratios."""
    targets = result.get("targets", TARGETS)
    by = {(r["impl"], r["T"]): r for r in result["attention_layer"]}
    lengths = sorted({r["T"] for r in result["attention_layer"]})
    layer = []
    for T in lengths:
        fused, soft = by[("ssmax_fused", T)], by[("softmax", T)]
        frozen = by.get(("ssmax_frozen_s", T))
        layer.append({"T": T, "ratio": _ratio(fused, soft), "diff_ms": fused["median_ms"] - soft["median_ms"],
                      "target": targets["layer_ratio_T256"] if T < 1024 else targets["layer_ratio_from_1024"],
                      "s_grad_ms": None if frozen is None else fused["median_ms"] - frozen["median_ms"]})
    t1, t2 = lengths[-2], lengths[-1]
    m1, m2 = by[("ssmax_fused", t1)]["peak_mb"], by[("ssmax_fused", t2)]["peak_mb"]
    train = {r["scaling"]: r for r in result["training"]}
    decode = {r["scaling"]: r["tokens_per_s"] for r in result.get("decoding") or []}
    return {"layer": layer, "memory_T": (t1, t2), "memory_mb": (m1, m2),
            "memory_exponent": math.log(m2 / m1) / math.log(t2 / t1) if m1 > 0 and m2 > 0 else None,
            "training_ratio": train["ssmax"].get("ratio_to_softmax",
                                                 train["ssmax"]["tokens_per_s"] / train["softmax"]["tokens_per_s"]),
            "training_target": targets["training_ratio"],
            "decoding_ratio": decode["ssmax"] / decode["softmax"] if decode else None}


def format_checks(result: dict) -> str:
    """`check_numbers` as printed lines (reported, not asserted: one machine, one moment); the
    time difference in ms beside each ratio, since the ratio is worst where one attention call
    is cheapest."""
    c = check_numbers(result)
    lines = []
    for row in c["layer"]:
        s_grad = "" if row["s_grad_ms"] is None else f"; the gradient of s {row['s_grad_ms']:+.3f} ms of it"
        lines.append(f"T = {row['T']:6d}: fused SSMax / softmax time = {row['ratio']:.3f}, {row['diff_ms']:+.3f} ms "
                     f"({'within' if row['ratio'] <= row['target'] else 'OUTSIDE'} the {row['target']:.2f} target){s_grad}")
    (t1, t2), (m1, m2) = c["memory_T"], c["memory_mb"]
    if c["memory_exponent"] is not None:
        lines.append(f"fused SSMax memory from T = {t1} to {t2}: x{m2 / m1:.2f}, i.e. ~T^{c['memory_exponent']:.2f}")
    else:
        lines.append(f"fused SSMax memory from T = {t1} to {t2}: too small to measure ({m1:.1f} MB, {m2:.1f} MB)")
    ratio, target = c["training_ratio"], c["training_target"]
    lines.append(f"whole-model training: SSMax at {ratio:.1%} of softmax's tokens/s "
                 f"({'within' if ratio >= target else 'OUTSIDE'} the {target:.0%} target)")
    if c["decoding_ratio"] is not None:
        lines.append(f"KV-cache decoding: SSMax at {c['decoding_ratio']:.1%} of softmax's tokens/s")
    return "\n".join(lines)


def format_tables(result: dict) -> str:
    """Every table, as `make bench` prints them."""
    return "\n\n".join([format_layer_table(result), format_training(result), format_decoding(result),
                        format_compile(result), format_checks(result)])


if __name__ == "__main__":
    sys.exit(main())
