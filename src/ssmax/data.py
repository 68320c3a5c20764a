"""Byte-level data: the CPython standard-library corpus, language-model batches, and needles.

A token is a byte (vocabulary 256), so there is no tokenizer to train or ship and every
document length is a byte count. The corpus is the CPython 3.11.7 standard library's own
Python source, test suites included (without them there are too few long files, below),
committed as one xz file (``data/corpus/``, see ``data/README.md``) so that results do not
depend on the reader's Python version; `load_corpus` checks its SHA-256.

Documents are split by document, never cut across splits. Held-out splits must carry many
documents longer than 20,480 bytes (length generalization is evaluated up to 20x a 1,024-token
training context), which a plain 90/5/5 hash split of ~400 long documents cannot give (~20
each), so long and short documents are split by different rules (`assign_split`).

The needle-in-a-haystack task follows the paper: "The special magic {city} number is:
{digits}." hidden at a given depth of haystack text, then a question; the answer is the digits.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import lzma
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np
import torch

__all__ = [
    "SPLITS",
    "SEPARATOR",
    "LONG_DOC_BYTES",
    "CORPUS_FILENAME",
    "CORPUS_SHA256",
    "CITIES",
    "CorpusChecksumError",
    "Document",
    "Corpus",
    "BatchSampler",
    "NeedleExample",
    "assign_split",
    "build_corpus",
    "corpus_stats",
    "default_corpus_path",
    "load_corpus",
    "encode",
    "decode",
    "Haystack",
    "make_needle_example",
    "needle_batch",
    "needle_min_context_len",
]

SPLITS = ("train", "validation", "test")
SEPARATOR = 0
"""Byte appended after every document in `Corpus.stream`: NUL never occurs in Python source
(the compiler rejects it, and `build_corpus` drops any file that has one), so it marks document
boundaries unambiguously."""

LONG_DOC_BYTES = 20_480
"""A document is *long* when it has MORE than this many bytes: it then holds a 20,480-token
evaluation window plus the one byte its last prediction targets."""
LONG_HELDOUT_PER_SPLIT = 72
"""Long documents given to each held-out split (validation, test): at least the 64 the
length-generalization evaluation reads, plus a margin."""
LONG_HELDOUT_MAX_BYTES = 65_536
"""Held-out long documents are drawn among long documents of at most this size; the eval reads
only their first 20 KB, so the bigger files (up to 300 KB) are worth more as training text."""
SHORT_FRACTIONS = (0.90, 0.05, 0.05)
"""Train / validation / test fractions of the short documents, decided by the path hash."""

CORPUS_FILENAME = "cpython-3.11.7-stdlib.jsonl.xz"
CORPUS_SHA256 = "afc7e782aebc16b3a96d0e773e21942e5b3a33ef67a8b338d2bd7e1586a544c6"
"""SHA-256 of the committed corpus file; `load_corpus` refuses a file that does not match."""

_REPO_ROOT = Path(__file__).resolve().parents[2]
_REBUILD_HINT = (
    "Restore it with `git checkout -- data/corpus/`, or rebuild it from a CPython 3.11.7 "
    "installation with `python -m ssmax.data build-corpus` (and update CORPUS_SHA256 in "
    "src/ssmax/data.py if you mean to change the corpus)."
)

PathLike = Union[str, "os.PathLike[str]"]


class CorpusChecksumError(ValueError):
    """The corpus file is not the committed one, so results would not be comparable."""


# --------------------------------------------------------------------------------------------
# bytes <-> text


def encode(text: str) -> np.ndarray:
    """UTF-8 bytes of ``text`` as a uint8 token array (a token is a byte)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def decode(tokens: Union[np.ndarray, torch.Tensor, Iterable[int]]) -> str:
    """Text of a byte-token sequence; invalid UTF-8 (a cut multi-byte character, a model's
    babble) becomes U+FFFD instead of raising."""
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    arr = np.asarray(tokens)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("tokens must be byte values in 0..255")
    return arr.astype(np.uint8).tobytes().decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# corpus


@dataclass(frozen=True, eq=False)
class Document:
    """One source file: its path relative to the stdlib root and its bytes (read-only)."""

    path: str
    tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@dataclass(frozen=True, eq=False)
class Corpus:
    """Documents by split. Streams are built once and cached (read-only arrays)."""

    splits: dict[str, list[Document]]
    _streams: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def documents(self, split: str, min_len: int = 0) -> list[Document]:
        """Documents of ``split`` (in path order) with at least ``min_len`` bytes."""
        _check_split(split)
        if int(min_len) != min_len or min_len < 0:
            raise ValueError(f"min_len must be a non-negative int, got {min_len!r}")
        return [d for d in self.splits[split] if len(d) >= min_len]

    def stream(self, split: str) -> np.ndarray:
        """All documents of ``split`` concatenated, each followed by `SEPARATOR` (0); uint8,
        read-only. Language-model windows are cut from this."""
        _check_split(split)
        if split not in self._streams:
            docs = self.splits[split]
            sep = np.array([SEPARATOR], dtype=np.uint8)
            parts = [p for d in docs for p in (d.tokens, sep)]
            arr = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
            arr.setflags(write=False)
            self._streams[split] = arr
        return self._streams[split]

    def n_tokens(self, split: str) -> int:
        """Bytes of text in ``split`` (separators not counted)."""
        _check_split(split)
        return sum(len(d) for d in self.splits[split])


def _split_key(path: str) -> bytes:
    return hashlib.sha256(("ssmax-split-v1:" + path).encode("utf-8")).digest()


def _split_u(path: str) -> float:
    """A uniform number in [0, 1) fixed by the path alone (stable across runs and machines)."""
    return int.from_bytes(_split_key(path)[:8], "big") / 2.0**64


def assign_split(docs: Iterable[tuple[str, int]]) -> dict[str, str]:
    """Split name for each ``(path, n_bytes)``; deterministic, by document.

    * Short documents (<= `LONG_DOC_BYTES` bytes): the path hash ``u`` in [0, 1) decides:
      ``u < 0.90`` train, ``u < 0.95`` validation, else test.
    * Long documents of at most `LONG_HELDOUT_MAX_BYTES`: sorted by path hash; the first
      `LONG_HELDOUT_PER_SPLIT` go to test, the next as many to validation, the rest to train.
    * Long documents above `LONG_HELDOUT_MAX_BYTES`: train.

    The hash is SHA-256 of ``"ssmax-split-v1:" + path``, never Python's salted ``hash()``.
    """
    out: dict[str, str] = {}
    candidates = []
    for path, n in docs:
        if n <= LONG_DOC_BYTES:
            u = _split_u(path)
            a, b = SHORT_FRACTIONS[0], SHORT_FRACTIONS[0] + SHORT_FRACTIONS[1]
            out[path] = "train" if u < a else ("validation" if u < b else "test")
        elif n <= LONG_HELDOUT_MAX_BYTES:
            candidates.append(path)
        else:
            out[path] = "train"
    candidates.sort(key=lambda p: (_split_key(p), p))
    k = LONG_HELDOUT_PER_SPLIT
    for i, path in enumerate(candidates):
        out[path] = "test" if i < k else ("validation" if i < 2 * k else "train")
    return out


def default_corpus_path() -> Path:
    """The committed corpus file, ``data/corpus/cpython-3.11.7-stdlib.jsonl.xz``."""
    return _REPO_ROOT / "data" / "corpus" / CORPUS_FILENAME


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_records(path: Path) -> list[tuple[str, str]]:
    with lzma.open(path, "rt", encoding="utf-8", newline="\n") as f:
        return [(r["path"], r["text"]) for r in map(json.loads, f)]


def load_corpus(path: Optional[PathLike] = None, sha256: Optional[str] = CORPUS_SHA256) -> Corpus:
    """The corpus, split; cached per process (decompressing takes about a second).

    The file's SHA-256 must equal ``sha256`` (default: the committed `CORPUS_SHA256`; ``None``
    skips the check, e.g. right after a rebuild). A mismatch raises `CorpusChecksumError`.
    """
    p = Path(default_corpus_path() if path is None else path).resolve()
    return _load_corpus_cached(str(p), sha256)


@functools.lru_cache(maxsize=4)
def _load_corpus_cached(path: str, sha256: Optional[str]) -> Corpus:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"corpus file not found: {p}. {_REBUILD_HINT}")
    if sha256 is not None:
        actual = _sha256_file(p)
        if actual != sha256:
            raise CorpusChecksumError(
                f"corpus file {p} has SHA-256 {actual}, expected {sha256}: it is not the "
                f"committed corpus (corrupted, truncated, or rebuilt). {_REBUILD_HINT}")
    records = _read_records(p)
    split_of = assign_split((path_, len(text.encode("utf-8"))) for path_, text in records)
    splits: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for rel, text in records:
        tokens = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)  # read-only view
        splits[split_of[rel]].append(Document(rel, tokens))
    return Corpus(splits)


def corpus_stats(corpus: Corpus) -> dict[str, dict[str, int]]:
    """Documents, bytes and long documents (> `LONG_DOC_BYTES`) per split, for the README."""
    return {s: {"documents": len(corpus.documents(s)), "bytes": corpus.n_tokens(s),
                "long_documents": len(corpus.documents(s, min_len=LONG_DOC_BYTES + 1))}
            for s in SPLITS}


# --------------------------------------------------------------------------------------------
# building the corpus file (one-off; needs a CPython 3.11.7 standard library)

_TEST_DIRS = frozenset({"test", "tests", "idle_test"})
_NEVER_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
_TEST_DATA_DIR = re.compile(r"(.*data\d*|encoded_modules|crashers)$")
_GENERATED_MARKERS = ("gencodec.py", "DO NOT EDIT", "Auto-generated by", "Autogenerated by")
_GENERATED_FILES = frozenset({"pydoc_data/topics.py"})


def _exclusion_reason(rel: str, raw: bytes, include_tests: bool) -> Optional[str]:
    """Why a stdlib ``*.py`` file is left out of the corpus, or None to keep it."""
    parts = rel.split("/")
    dirs = parts[:-1]
    if any(d in _NEVER_DIRS for d in dirs):
        return "third-party or cache"
    if any(d.startswith("config-") for d in dirs) or parts[-1].startswith("_sysconfigdata"):
        return "machine-specific build configuration"
    in_tests = any(d in _TEST_DIRS for d in dirs)
    if in_tests and not include_tests:
        return "test suite"
    if in_tests and any(_TEST_DATA_DIR.fullmatch(d) for d in dirs):
        return "test fixture data"
    if rel in _GENERATED_FILES or any(m.encode() in raw[:1500] for m in _GENERATED_MARKERS):
        return "auto-generated table"
    if b"\x00" in raw:
        return "contains a NUL byte"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, rel, "exec", dont_inherit=True)
    except Exception:  # SyntaxError, RecursionError, ...: deliberate bad-syntax fixtures
        return "not valid Python 3.11 source"
    return None


def _collect(stdlib_dir: Path, include_tests: bool) -> tuple[list[tuple[str, str]], dict[str, int]]:
    kept: list[tuple[str, str]] = []
    dropped: dict[str, int] = {}
    for root, dirnames, filenames in os.walk(stdlib_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in _NEVER_DIRS)
        for name in filenames:
            if not name.endswith(".py"):
                continue
            full = Path(root) / name
            rel = full.relative_to(stdlib_dir).as_posix()
            raw = full.read_bytes()
            reason = _exclusion_reason(rel, raw, include_tests)
            if reason is None:
                kept.append((rel, raw.decode("utf-8")))
            else:
                dropped[reason] = dropped.get(reason, 0) + 1
    kept.sort()
    return kept, dropped


def build_corpus(stdlib_dir: PathLike, out_path: PathLike, *, include_tests: bool = True) -> dict[str, Any]:
    """Write the corpus file from a CPython standard library; returns its hash and stats.

    Keeps every ``*.py`` that is valid UTF-8 and compiles, sorted by relative path, minus:
    third-party packages and caches, machine-specific build configuration, auto-generated
    tables (codec tables, ``pydoc_data/topics.py``), test fixture data directories, and, with
    ``include_tests=False``, the test suites. One JSON line ``{"path", "text"}`` per document,
    xz-compressed with fixed settings so that the output is byte-reproducible on one machine.
    """
    stdlib_dir = Path(stdlib_dir).resolve()
    if not stdlib_dir.is_dir():
        raise ValueError(f"stdlib_dir must be a directory, got {stdlib_dir}")
    kept, dropped = _collect(stdlib_dir, include_tests)
    buf = io.StringIO()
    for rel, text in kept:
        buf.write(json.dumps({"path": rel, "text": text}, ensure_ascii=False, sort_keys=True))
        buf.write("\n")
    payload = buf.getvalue().encode("utf-8")
    data = lzma.compress(payload, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                         preset=9 | lzma.PRESET_EXTREME)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return {"path": str(out), "sha256": hashlib.sha256(data).hexdigest(), "documents": len(kept),
            "raw_bytes": sum(len(t.encode("utf-8")) for _, t in kept), "compressed_bytes": len(data),
            "dropped": dropped}


# --------------------------------------------------------------------------------------------
# language-model batches


def _check_pos_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class BatchSampler:
    """Random ``seq_len + 1``-byte windows of a token stream, as (x, y) with y = x shifted by one.

    Deterministic given ``seed``; `state_dict` captures the generator so that a resumed run sees
    exactly the batches an uninterrupted run would.
    """

    def __init__(self, stream: np.ndarray, batch_size: int, seq_len: int, seed: int):
        stream = np.asarray(stream)
        if stream.ndim != 1 or stream.dtype != np.uint8:
            raise ValueError(f"stream must be a 1-D uint8 array, got shape {stream.shape} {stream.dtype}")
        self.batch_size = _check_pos_int("batch_size", batch_size)
        self.seq_len = _check_pos_int("seq_len", seq_len)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if self.seq_len + 1 > len(stream):
            raise ValueError(f"seq_len + 1 must be <= len(stream) = {len(stream)}, got seq_len={seq_len}")
        self.stream = stream
        self.seed = int(seed)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._offsets = np.arange(self.seq_len + 1)
        self.batches_drawn = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch: x, y int64 tensors of shape (batch_size, seq_len)."""
        starts = self._rng.integers(0, len(self.stream) - self.seq_len, size=self.batch_size)
        win = torch.from_numpy(self.stream[starts[:, None] + self._offsets].astype(np.int64))
        self.batches_drawn += 1
        return win[:, :-1].contiguous(), win[:, 1:].contiguous()

    __next__ = next

    def __iter__(self) -> "BatchSampler":
        return self

    def state_dict(self) -> dict[str, Any]:
        """JSON-serializable state (generator state, batch count and the sampler's shape)."""
        return {"seed": self.seed, "batch_size": self.batch_size, "seq_len": self.seq_len,
                "stream_len": int(len(self.stream)), "batches_drawn": self.batches_drawn,
                "bit_generator": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from `state_dict`; the sampler must have the same shape and stream length."""
        for key in ("batch_size", "seq_len", "stream_len"):
            mine = self.batch_size if key == "batch_size" else self.seq_len if key == "seq_len" else len(self.stream)
            if state.get(key) != mine:
                raise ValueError(f"state {key}={state.get(key)!r} does not match this sampler's {key}={mine}")
        self._rng.bit_generator.state = state["bit_generator"]
        self.batches_drawn = int(state.get("batches_drawn", 0))
        self.seed = int(state.get("seed", self.seed))


# --------------------------------------------------------------------------------------------
# needle in a haystack

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
    batch_size = _check_pos_int("batch_size", batch_size)
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


# --------------------------------------------------------------------------------------------
# command line


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m ssmax.data build-corpus [--stdlib DIR] [--out FILE] [--no-tests] | stats`."""
    import sysconfig

    parser = argparse.ArgumentParser(prog="python -m ssmax.data", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build-corpus", help="write the corpus file from a CPython 3.11.7 stdlib")
    b.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"])
    b.add_argument("--out", default=str(default_corpus_path()))
    b.add_argument("--no-tests", action="store_true", help="leave out the stdlib's test suites")
    st = sub.add_parser("stats", help="print documents, bytes and long documents per split")
    st.add_argument("--path", default=None)
    args = parser.parse_args(argv)
    if args.command == "build-corpus":
        if sys.version_info[:3] != (3, 11, 7):
            print(f"warning: running Python {sys.version.split()[0]}, the committed corpus is from 3.11.7",
                  file=sys.stderr)
        info = build_corpus(args.stdlib, args.out, include_tests=not args.no_tests)
        print(json.dumps(info, indent=1))
        if info["sha256"] != CORPUS_SHA256:
            print(f"note: CORPUS_SHA256 in src/ssmax/data.py is {CORPUS_SHA256}; set it to {info['sha256']} "
                  "to adopt this file", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    corpus = load_corpus(args.path, sha256=CORPUS_SHA256 if args.path is None else None)
    elapsed = time.perf_counter() - t0
    print(json.dumps(corpus_stats(corpus), indent=1))
    print(f"loaded in {elapsed:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
