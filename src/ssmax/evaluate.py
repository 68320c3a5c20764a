"""Evaluations: per-position loss far beyond the training length, needle retrieval accuracy,
and the needle score (where attention goes).

All run through the fused attention path except the needle score, which asks the model for the
attention rows of the answer's queries only (`GPT.attention_rows`), never a full T x T matrix.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .attention import QueryScaleFn
from .needle import Haystack, make_needle_example
from .model import GPT


@torch.no_grad()
def per_position_loss(
    model: GPT,
    documents: Sequence[np.ndarray],
    length: int,
    device: torch.device,
    rope_theta: Optional[float] = None,
    query_scale_fn: Optional[QueryScaleFn] = None,
    batch_size: int = 4,
) -> np.ndarray:
    """Mean next-token loss at each position 1..length over the first length+1 tokens of each
    document (every document must be that long). Position p (1-based) predicts token p from
    the p tokens before it, so the curve shows how loss behaves as the context grows."""
    if length < 1:
        raise ValueError(f"length must be >= 1; got {length}")
    docs = [np.asarray(d[: length + 1], dtype=np.int64) for d in documents]
    short = [i for i, d in enumerate(docs) if len(d) < length + 1]
    if short:
        raise ValueError(f"{len(short)} documents are shorter than length + 1 = {length + 1} tokens")
    if not docs:
        raise ValueError("documents must not be empty")
    model.eval()
    total = torch.zeros(length, dtype=torch.float64)
    for start in range(0, len(docs), batch_size):
        chunk = torch.from_numpy(np.stack(docs[start:start + batch_size])).to(device)
        logits = model(chunk[:, :-1], rope_theta, query_scale_fn=query_scale_fn)
        losses = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")
        total += losses.sum(0).double().cpu()
    return (total / len(docs)).numpy()


def fixed_windows(stream: np.ndarray, length: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` windows of ``length + 1`` tokens at seeded random offsets of a token stream: one
    held-out set, identical for every model and training seed."""
    if len(stream) < length + 1:
        raise ValueError(f"the stream ({len(stream)} tokens) is shorter than length + 1 = {length + 1}")
    starts = np.random.default_rng(seed).integers(0, len(stream) - length, size=count)
    return np.stack([stream[i:i + length + 1] for i in starts]).astype(np.int64)


@torch.no_grad()
def heldout_loss(model: GPT, windows: np.ndarray, device: torch.device, rope_theta: Optional[float] = None,
                 query_scale_fn: Optional[QueryScaleFn] = None, batch_size: int = 32) -> float:
    """Mean next-token loss over every position of the given windows (in-distribution when the
    windows have the training length)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(windows), batch_size):
        chunk = torch.from_numpy(windows[start:start + batch_size]).to(device)
        logits = model(chunk[:, :-1], rope_theta, query_scale_fn=query_scale_fn)
        losses = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="sum")
        total += float(losses)
        count += chunk[:, 1:].numel()
    return total / count


def window_means(curve: np.ndarray, train_len: int, multiples: Sequence[int] = (1, 4, 16)) -> dict[str, float]:
    """Mean of a per-position curve over the windows [1,T], (T,4T], (4T,16T] (1-based
    positions; a window past the end of the curve is left out)."""
    out, lo = {}, 0
    for m in multiples:
        hi = min(len(curve), m * train_len)
        if hi > lo:
            out[window_label(lo // train_len, m)] = float(np.mean(curve[lo:hi]))
        lo = hi
    return out


def smooth(curve: Sequence[float], window: int) -> np.ndarray:
    """Centered moving average (shorter windows at the ends), for plotting per-position curves."""
    arr = np.asarray(curve, dtype=float)
    if window <= 1:
        return arr
    kernel = np.ones(window)
    num = np.convolve(arr, kernel, mode="same")
    den = np.convolve(np.ones_like(arr), kernel, mode="same")
    return num / den


def window_label(lo_multiple: int, hi_multiple: int) -> str:
    def t(k: int) -> str:
        return "T" if k == 1 else f"{k}T"
    return f"[1,{t(hi_multiple)}]" if lo_multiple == 0 else f"({t(lo_multiple)},{t(hi_multiple)}]"


def _needle_examples(rng: np.random.Generator, haystack: Haystack, context_len: int, depth: float,
                     count: int, n_digits: int):
    return [make_needle_example(rng, haystack, context_len, depth, n_digits=n_digits) for _ in range(count)]


def _outcome(generated: np.ndarray, number: str) -> str:
    """correct / first_digit / wrong, for the generated answer tokens against the number."""
    predicted = bytes(np.asarray(generated).astype(np.uint8)).decode("latin-1")
    if predicted == number:
        return "correct"
    if predicted[:1] == number[:1]:
        return "first_digit"
    return "wrong"


@torch.no_grad()
def needle_accuracy(
    model: GPT,
    haystack: np.ndarray,
    context_lengths: Sequence[int],
    depths: Sequence[float],
    trials: int,
    device: torch.device,
    n_digits: int = 7,
    rope_theta: Optional[float] = None,
    seed: int = 0,
    batch_size: int = 10,
) -> dict:
    """Greedy retrieval (KV-cache decoding) on a context-length x depth grid.

    Returns exact-match and first-digit accuracy grids (len(context_lengths) x len(depths)) and
    the trial count per cell. Every cell draws its own examples from ``seed``.
    """
    model.eval()
    hay = Haystack(haystack)  # index the stream once, not per example
    exact = np.zeros((len(context_lengths), len(depths)))
    first = np.zeros_like(exact)
    for i, length in enumerate(context_lengths):
        for j, depth in enumerate(depths):
            rng = np.random.default_rng([seed, i, j])
            examples = _needle_examples(rng, hay, length, depth, trials, n_digits)
            for start in range(0, trials, batch_size):
                chunk = examples[start:start + batch_size]
                prompt = torch.from_numpy(np.stack([e.tokens for e in chunk]).astype(np.int64)).to(device)
                out = model.generate(prompt, n_digits, rope_theta=rope_theta)[:, prompt.shape[1]:].cpu().numpy()
                for e, answer in zip(chunk, out):
                    outcome = _outcome(answer, e.number)
                    exact[i, j] += outcome == "correct"
                    first[i, j] += outcome in ("correct", "first_digit")
    return {"context_lengths": list(context_lengths), "depths": list(depths), "trials": trials,
            "exact": (exact / trials).tolist(), "first_digit": (first / trials).tolist()}


@torch.no_grad()
def needle_scores(
    model: GPT,
    haystack: np.ndarray,
    context_len: int,
    trials: int,
    device: torch.device,
    depth: Optional[float] = 0.5,
    n_digits: int = 7,
    rope_theta: Optional[float] = None,
    seed: int = 0,
) -> dict:
    """The needle score of every layer and head: the attention mass that the queries producing
    the answer put on the needle number's tokens, averaged over those queries.

    The answer's queries are the last prompt position (it predicts the first digit) and the
    first n_digits - 1 answer positions, fed the correct digits (teacher forcing), so the
    score measures where the model looks while answering. ``depth=None`` draws a random depth
    per trial (the paper's Fig. 8). Also returns each trial's greedy outcome.
    """
    model.eval()
    hay = Haystack(haystack)  # index the stream once, not per example
    rng = np.random.default_rng(seed)
    scores, outcomes, depths = [], [], []
    for _ in range(trials):
        d = float(rng.uniform()) if depth is None else depth
        e = make_needle_example(rng, hay, context_len, d, n_digits=n_digits)
        seq = np.concatenate([e.tokens, e.answer]).astype(np.int64)
        idx = torch.from_numpy(seq[:-1])[None].to(device)
        rows = torch.arange(len(e.tokens) - 1, len(seq) - 1, device=device)
        logits, maps = model.attention_rows(idx, rows, rope_theta=rope_theta)
        lo, hi = e.number_span
        per_layer = [m[0, :, :, lo:hi].sum(-1).mean(-1) for m in maps]  # (H,) per layer
        scores.append(torch.stack(per_layer).cpu().numpy())
        generated = model.generate(torch.from_numpy(e.tokens.astype(np.int64))[None].to(device), n_digits,
                                   rope_theta=rope_theta)[0, len(e.tokens):].cpu().numpy()
        outcomes.append(_outcome(generated, e.number))
        depths.append(d)
    arr = np.stack(scores)  # (trials, layers, heads)
    return {"context_len": context_len, "scores": arr.tolist(), "outcomes": outcomes, "depths": depths,
            "top_score": arr.reshape(len(arr), -1).max(1).tolist()}
