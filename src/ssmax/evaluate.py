"""Evaluations: per-position loss far beyond the training length, needle retrieval (exact match
and the more sensitive first-digit accuracy, digit accuracy and bits per digit), and the needle
score (where attention goes).

All run through the fused attention path except the needle score, which asks the model for the
attention rows of the answer's queries only (`GPT.attention_rows`), never a full T x T matrix.

Needle answers are scored from one teacher-forced pass over prompt + answer: greedy decoding
produces the number exactly when the argmax at every answer position, given the correct earlier
digits, is the correct digit, so exact match and first-digit match need no decoding loop, and the
same pass gives each digit's probability (bits per digit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    per_document: bool = False,
) -> np.ndarray:
    """Mean next-token loss at each position 1..length over the first length+1 tokens of each
    document (every document must be that long). Position p (1-based) predicts token p from
    the p tokens before it, so the curve shows how loss behaves as the context grows.
    ``per_document=True`` returns the losses of each document (documents x length) instead, for
    comparisons paired by document."""
    if length < 1:
        raise ValueError(f"length must be >= 1; got {length}")
    docs = [np.asarray(d[: length + 1], dtype=np.int64) for d in documents]
    short = [i for i, d in enumerate(docs) if len(d) < length + 1]
    if short:
        raise ValueError(f"{len(short)} documents are shorter than length + 1 = {length + 1} tokens")
    if not docs:
        raise ValueError("documents must not be empty")
    model.eval()
    rows = []
    for start in range(0, len(docs), batch_size):
        chunk = torch.from_numpy(np.stack(docs[start:start + batch_size])).to(device)
        logits = model(chunk[:, :-1], rope_theta, query_scale_fn=query_scale_fn)
        losses = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")
        rows.append(losses.double().cpu())
    per_doc = torch.cat(rows).numpy()
    return per_doc if per_document else per_doc.mean(0)


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


def unigram_loss(train_stream: np.ndarray, test_stream: np.ndarray, vocab_size: int = 256) -> float:
    """Cross-entropy (nats per token) of the test tokens under the training split's token
    frequencies (add-one smoothed): the loss of a model that ignores the context entirely, the
    floor below which a language model's loss says it still uses its context."""
    counts = np.bincount(np.asarray(train_stream), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    test_counts = np.bincount(np.asarray(test_stream), minlength=vocab_size).astype(np.float64)
    return float(-(test_counts * logp).sum() / test_counts.sum())


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


def beyond_window(length: int, train_len: int) -> str:
    """The label of the window of every position beyond T, e.g. "(T,16T]"."""
    return window_label(1, length // train_len)


def window_multiples(label: str) -> tuple[int, int]:
    """The multiples of T a window label spans: "(T,4T]" -> (1, 4), "[1,T]" -> (0, 1)."""
    def multiple(bound: str) -> int:
        if bound == "1":  # "[1," : the first position
            return 0
        return 1 if bound == "T" else int(bound[:-1])

    lo, hi = label[1:-1].split(",")
    return multiple(lo), multiple(hi)


def window_label(lo_multiple: int, hi_multiple: int) -> str:
    def t(k: int) -> str:
        return "T" if k == 1 else f"{k}T"
    return f"[1,{t(hi_multiple)}]" if lo_multiple == 0 else f"({t(lo_multiple)},{t(hi_multiple)}]"


def _needle_examples(rng: np.random.Generator, haystack: Haystack, context_len: int, depth: float,
                     count: int, n_digits: int):
    return [make_needle_example(rng, haystack, context_len, depth, n_digits=n_digits) for _ in range(count)]


OUTCOMES = ("correct", "first_digit", "wrong")


@dataclass
class AnswerScores:
    """Per-trial scores of needle answers from one teacher-forced pass (arrays of length trials,
    or trials x n_digits): the greedy answer's exactness, its first digit, each digit's argmax
    correctness and each digit's information content in bits, -log2 p(digit | correct prefix)."""

    exact: np.ndarray
    first_digit: np.ndarray
    digit_correct: np.ndarray
    bits: np.ndarray

    def outcomes(self) -> list[str]:
        return [OUTCOMES[0] if e else OUTCOMES[1] if f else OUTCOMES[2] for e, f in zip(self.exact, self.first_digit)]


def answer_scores(logits: torch.Tensor, answers: torch.Tensor) -> AnswerScores:
    """Scores from the logits that predict the answer digits (B, n_digits, vocab), teacher-forced,
    against the answer tokens (B, n_digits)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    correct = logits.argmax(-1) == answers
    bits = -logp.gather(-1, answers[..., None])[..., 0] / math.log(2)
    correct, bits = correct.cpu().numpy(), bits.cpu().numpy().astype(np.float64)
    return AnswerScores(exact=correct.all(1), first_digit=correct[:, 0], digit_correct=correct, bits=bits)


@torch.no_grad()
def score_needle_examples(model: GPT, examples: Sequence, device: torch.device, rope_theta: Optional[float] = None,
                          batch_size: int = 10) -> AnswerScores:
    """Teacher-forced scores of needle examples that share one context length (one forward pass of
    prompt + answer[:-1] per example; the last prompt position predicts the first digit)."""
    parts = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        seq = torch.from_numpy(np.stack([np.concatenate([e.tokens, e.answer]) for e in chunk]).astype(np.int64))
        n_digits, prompt_len = len(chunk[0].answer), len(chunk[0].tokens)
        logits = model(seq[:, :-1].to(device), rope_theta)[:, prompt_len - 1:]
        parts.append(answer_scores(logits, seq[:, prompt_len:prompt_len + n_digits].to(device)))
    return AnswerScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("exact", "first_digit", "digit_correct", "bits")))


NEEDLE_METRICS = ("exact", "first_digit", "digit_accuracy", "bits_per_digit")


@torch.no_grad()
def needle_accuracy(
    model: GPT,
    haystack: np.ndarray | Haystack,
    context_lengths: Sequence[int],
    depths: Sequence[float],
    trials: int,
    device: torch.device,
    n_digits: int = 7,
    rope_theta: Optional[float] = None,
    seed: int = 0,
    batch_size: int = 10,
) -> dict:
    """Retrieval on a context-length x depth grid: for each cell, the share of trials answered
    exactly (greedy), with the right first digit, the mean share of digits right given the
    correct earlier ones, and the mean bits per digit (log2 10 = 3.32 for a uniform guess) with
    the standard deviation of the per-trial means (``bits_per_digit_sd``).

    Grids are len(context_lengths) x len(depths). Cell (i, j) draws its examples from
    ``np.random.default_rng([seed, i, j])``: the same examples for every model evaluated with the
    same seed and grid, so comparisons between models are paired.
    """
    model.eval()
    hay = haystack if isinstance(haystack, Haystack) else Haystack(haystack)  # index the stream once
    grids = {m: np.zeros((len(context_lengths), len(depths))) for m in (*NEEDLE_METRICS, "bits_per_digit_sd")}
    for i, length in enumerate(context_lengths):
        for j, depth in enumerate(depths):
            rng = np.random.default_rng([seed, i, j])
            examples = _needle_examples(rng, hay, length, depth, trials, n_digits)
            sc = score_needle_examples(model, examples, device, rope_theta, batch_size)
            grids["exact"][i, j] = sc.exact.mean()
            grids["first_digit"][i, j] = sc.first_digit.mean()
            grids["digit_accuracy"][i, j] = sc.digit_correct.mean()
            grids["bits_per_digit"][i, j] = sc.bits.mean()
            # spread of the per-trial means, for standard errors of the cell and pooled means
            grids["bits_per_digit_sd"][i, j] = sc.bits.mean(1).std(ddof=1) if trials > 1 else np.nan
    return {"context_lengths": list(context_lengths), "depths": list(depths), "trials": trials,
            **{m: g.tolist() for m, g in grids.items()}}


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
    per trial (the paper's Fig. 8). Also returns each trial's greedy outcome (from the same
    teacher-forced logits, see the module docstring) and bits per digit.
    """
    model.eval()
    hay = haystack if isinstance(haystack, Haystack) else Haystack(haystack)  # index the stream once
    rng = np.random.default_rng(seed)
    scores, outcomes, depths, bits = [], [], [], []
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
        answer = torch.from_numpy(e.answer.astype(np.int64))[None].to(device)
        sc = answer_scores(logits[:, rows], answer)
        outcomes.append(sc.outcomes()[0])
        bits.append(float(sc.bits.mean()))
        depths.append(d)
    arr = np.stack(scores)  # (trials, layers, heads)
    return {"context_len": context_len, "scores": arr.tolist(), "outcomes": outcomes, "depths": depths,
            "bits_per_digit": bits, "top_score": arr.reshape(len(arr), -1).max(1).tolist()}
