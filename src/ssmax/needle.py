"""The needle-in-a-haystack task, as in the paper: "The special magic {city} number is: {digits}."
hidden at a given depth of haystack text (a window of one corpus split), then a question; the
answer is the digits. `make_needle_example` builds one prompt for evaluation, `needle_batch` a
supervised batch for fine-tuning (loss on the answer digits only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from .data import SEPARATOR, check_positive_int, encode

__all__ = [
    "CITIES",
    "NeedleExample",
    "Haystack",
    "make_needle_example",
    "needle_batch",
    "needle_min_context_len",
]

CITIES = (
    "Amsterdam", "Athens", "Bangkok", "Barcelona", "Beijing", "Berlin", "Bogota", "Boston",
    "Brussels", "Budapest", "Buenos Aires", "Cairo", "Cape Town", "Chicago", "Copenhagen",
    "Delhi", "Dubai", "Dublin", "Edinburgh", "Florence", "Geneva", "Hamburg", "Hanoi",
    "Havana", "Helsinki", "Hong Kong", "Istanbul", "Jakarta", "Jerusalem", "Kyoto", "Lagos",
    "Lima", "Lisbon", "London", "Los Angeles", "Madrid", "Manila", "Melbourne", "Mexico City",
    "Miami", "Montreal", "Moscow", "Mumbai", "Munich", "Nairobi", "New York", "Osaka", "Oslo",
    "Paris", "Prague", "Rome", "San Francisco", "Santiago", "Seoul", "Shanghai", "Singapore",
    "Stockholm", "Sydney", "Tokyo", "Toronto", "Vienna", "Warsaw", "Zurich",
)
"""Needle cities (ASCII; some of several words), after the paper's "special magic {city} number"."""

MIN_HAYSTACK_BYTES = 16
_SNAP_BYTES = 200


def _needle_text(city: str, number: str) -> str:
    return f"The special magic {city} number is: {number}."


def _question_text(city: str) -> str:
    return f"\nWhat is the special magic {city} number? The special magic {city} number is: "


def needle_min_context_len(city: str, n_digits: int = 7) -> int:
    """Smallest ``context_len`` that fits needle, question, answer and 16 haystack bytes."""
    return (len(_needle_text(city, "0" * n_digits)) + 2 + len(_question_text(city)) + n_digits
            + MIN_HAYSTACK_BYTES)


@dataclass(frozen=True, eq=False)
class NeedleExample:
    """One needle prompt. ``tokens`` is everything the model reads before answering;
    ``tokens + answer`` has exactly ``context_len`` bytes. Spans are [start, end) in ``tokens``."""

    tokens: np.ndarray
    answer: np.ndarray
    number_span: tuple[int, int]
    needle_span: tuple[int, int]
    city: str
    number: str
    depth: float
    context_len: int


class Haystack:
    """Separator-free runs of a stream, to draw windows that stay inside one document.

    Indexing a 23 MB stream takes ~10 ms, so callers that draw many needles (a training loop,
    an evaluation grid) build one and pass it instead of the raw array."""

    def __init__(self, haystack: np.ndarray):
        haystack = np.asarray(haystack)
        if haystack.ndim != 1 or haystack.dtype != np.uint8:
            raise ValueError(f"haystack must be a 1-D uint8 array, got shape {haystack.shape} {haystack.dtype}")
        self.data = haystack
        seps = np.flatnonzero(haystack == SEPARATOR)
        self.starts = np.concatenate([[0], seps + 1])
        self.lengths = np.concatenate([seps, [len(haystack)]]) - self.starts

    def window(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """A uniformly random n-byte window among those without a separator."""
        counts = np.maximum(self.lengths - n + 1, 0)
        total = int(counts.sum())
        if total == 0:
            longest = int(self.lengths.max()) if len(self.lengths) else 0
            raise ValueError(f"haystack has no separator-free run of {n} bytes (longest: {longest}); "
                             "use a stream with longer documents or a smaller context_len")
        k = int(rng.integers(0, total))
        seg = int(np.searchsorted(np.cumsum(counts), k, side="right"))
        offset = k - int(counts[:seg].sum())
        start = int(self.starts[seg]) + offset
        return self.data[start:start + n]


def _check_needle_args(context_len: Any, depth: Any, n_digits: Any) -> None:
    if isinstance(n_digits, bool) or not isinstance(n_digits, (int, np.integer)) or not 1 <= n_digits <= 12:
        raise ValueError(f"n_digits must be an int in 1..12, got {n_digits!r}")
    if isinstance(context_len, bool) or not isinstance(context_len, (int, np.integer)) or context_len <= 0:
        raise ValueError(f"context_len must be a positive int, got {context_len!r}")
    if depth is not None and not (isinstance(depth, (int, float, np.floating, np.integer)) and 0.0 <= depth <= 1.0):
        raise ValueError(f"depth must be a float in [0, 1], got {depth!r}")


def _make_needle(rng: np.random.Generator, hay: Haystack, context_len: int, depth: float, n_digits: int,
                 city: Optional[str], number: Optional[str]) -> NeedleExample:
    if city is None:
        fitting = [c for c in CITIES if needle_min_context_len(c, n_digits) <= context_len]
        if not fitting:
            raise ValueError(f"context_len must be >= {min(needle_min_context_len(c, n_digits) for c in CITIES)} "
                             f"for n_digits={n_digits} (needle, question, answer and {MIN_HAYSTACK_BYTES} "
                             f"haystack bytes), got {context_len}")
        city = fitting[int(rng.integers(0, len(fitting)))]
    elif not (city.isascii() and city.isprintable() and city.strip()):
        raise ValueError(f"city must be non-empty printable ASCII, got {city!r}")
    need = needle_min_context_len(city, n_digits)
    if context_len < need:
        raise ValueError(f"context_len must be >= {need} for city={city!r} and n_digits={n_digits} "
                         f"(needle, question, answer and {MIN_HAYSTACK_BYTES} haystack bytes), got {context_len}")
    if number is None:
        digits = [int(rng.integers(1, 10))] + [int(d) for d in rng.integers(0, 10, size=n_digits - 1)]
        number = "".join(map(str, digits))
    elif not (len(number) == n_digits and number.isascii() and number.isdigit()):
        raise ValueError(f"number must be a string of n_digits={n_digits} ASCII digits, got {number!r}")

    needle = encode(_needle_text(city, number))
    question = encode(_question_text(city))
    n_hay = context_len - n_digits - len(needle) - 2 - len(question)
    hay = hay.window(rng, n_hay)

    pos = int(round(depth * n_hay))
    back = hay[max(0, pos - _SNAP_BYTES):pos]
    nl = np.flatnonzero(back == ord("\n"))
    if len(nl):
        pos = max(0, pos - _SNAP_BYTES) + int(nl[-1]) + 1  # just after that newline
    newline = np.array([ord("\n")], dtype=np.uint8)
    tokens = np.concatenate([hay[:pos], newline, needle, newline, hay[pos:], question])
    tokens.setflags(write=False)
    answer = encode(number)
    answer.setflags(write=False)
    n0 = pos + 1
    digits0 = n0 + len(needle) - 1 - n_digits
    assert len(tokens) + n_digits == context_len
    return NeedleExample(tokens=tokens, answer=answer, number_span=(digits0, digits0 + n_digits),
                         needle_span=(n0, n0 + len(needle)), city=city, number=number, depth=float(depth),
                         context_len=int(context_len))


def _as_haystack(haystack: np.ndarray | Haystack) -> Haystack:
    return haystack if isinstance(haystack, Haystack) else Haystack(haystack)


def make_needle_example(rng: np.random.Generator, haystack: np.ndarray | Haystack, context_len: int, depth: float,
                        n_digits: int = 7, city: Optional[str] = None,
                        number: Optional[str] = None) -> NeedleExample:
    """A needle prompt of exactly ``context_len - n_digits`` bytes (the answer fills the rest).

    The haystack is a uniformly random window of ``haystack`` that contains no separator, so
    it lies inside one document. The needle line ``\\n{needle}\\n`` goes at fraction ``depth``
    of it (0: the very start, 1: right before the question), moved back to just after the
    nearest newline within 200 bytes, if any, so that a code line is not cut. City and number
    (``n_digits`` digits, the first non-zero) are drawn from ``rng`` unless given.
    """
    _check_needle_args(context_len, depth, n_digits)
    if depth is None:
        raise ValueError("depth must be a float in [0, 1], got None")
    return _make_needle(rng, _as_haystack(haystack), int(context_len), float(depth), int(n_digits), city, number)


def needle_batch(rng: np.random.Generator, haystack: np.ndarray | Haystack, batch_size: int, context_len: int,
                 n_digits: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A supervised needle batch with random depth, city and number per example.

    Each full sequence (prompt + answer) has ``context_len`` bytes; x = sequence[:-1],
    y = sequence[1:] (int64, shape (batch_size, context_len - 1)); ``loss_mask`` (bool, same
    shape) is True exactly where y is an answer digit.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    _check_needle_args(context_len, 0.0, n_digits)
    hay = _as_haystack(haystack)
    seqs = []
    for _ in range(batch_size):
        depth = float(rng.uniform(0.0, 1.0))
        e = _make_needle(rng, hay, int(context_len), depth, int(n_digits), None, None)
        seqs.append(np.concatenate([e.tokens, e.answer]))
    seq = torch.from_numpy(np.stack(seqs).astype(np.int64))
    x, y = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
    mask = torch.zeros_like(y, dtype=torch.bool)
    mask[:, context_len - 1 - n_digits:] = True
    return x, y, mask
