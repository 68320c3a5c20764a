"""Byte-level data: the CPython standard-library corpus and language-model batches.

A token is a byte (vocabulary 256), so there is no tokenizer to train or ship and every
document length is a byte count. The corpus is the CPython 3.11.7 standard library's own
Python source, test suites included (without them there are too few long files, below),
committed as one xz file (``data/corpus/``, see ``data/README.md``) so that results do not
depend on the reader's Python version; `load_corpus` checks its SHA-256.

Documents are split by document, never cut across splits. Held-out splits must carry many
documents longer than 20,480 bytes (length generalization is evaluated up to 20x a 1,024-token
training context), which a plain 90/5/5 hash split of ~400 long documents cannot give (~20
each), so long and short documents are split by different rules (`assign_split`).

The needle-in-a-haystack task built on this corpus lives in `ssmax.needle`.
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

from .atomic import sha256_of_file
from .paths import REPO_ROOT, in_checkout

__all__ = [
    "SPLITS",
    "SEPARATOR",
    "LONG_DOC_BYTES",
    "CORPUS_FILENAME",
    "CORPUS_SHA256",
    "CorpusChecksumError",
    "Document",
    "Corpus",
    "BatchSampler",
    "assign_split",
    "build_corpus",
    "corpus_stats",
    "default_corpus_path",
    "load_corpus",
    "encode",
    "decode",
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

_REPO_ROOT = REPO_ROOT
_CHECKOUT_HINT = (
    "Restore it with `git checkout -- data/corpus/`, or rebuild it from a CPython 3.11.7 "
    "installation with `python -m ssmax.data build-corpus` (and update CORPUS_SHA256 in "
    "src/ssmax/data.py if you mean to change the corpus)."
)
_INSTALLED_HINT = (
    "The corpus ships with the repository, not with the installed package: run from a clone of "
    f"the repository (it is data/corpus/{CORPUS_FILENAME} there), or pass its path to "
    "load_corpus(path=...)."
)


def _rebuild_hint() -> str:
    """What to do about a missing or wrong corpus: git advice only inside a checkout."""
    return _CHECKOUT_HINT if in_checkout() else _INSTALLED_HINT

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
        raise FileNotFoundError(f"corpus file not found: {p}. {_rebuild_hint()}")
    if sha256 is not None:
        actual = sha256_of_file(p)
        if actual != sha256:
            raise CorpusChecksumError(
                f"corpus file {p} has SHA-256 {actual}, expected {sha256}: it is not the "
                f"committed corpus (corrupted, truncated, or rebuilt). {_rebuild_hint()}")
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


def check_positive_int(name: str, value: Any) -> int:
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
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seq_len = check_positive_int("seq_len", seq_len)
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
