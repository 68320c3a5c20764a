"""The byte corpus and the language-model batches (fast: ~5 s)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from ssmax import data as D


@pytest.fixture(scope="module")
def corpus() -> D.Corpus:
    return D.load_corpus()


# ----------------------------------------------------------------------------------- corpus


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    bad = tmp_path / D.CORPUS_FILENAME
    shutil.copyfile(D.default_corpus_path(), bad)
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(D.CorpusChecksumError) as err:
        D.load_corpus(bad)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert str(bad) in msg and D.CORPUS_SHA256 in msg and "build-corpus" in msg


def test_missing_corpus_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="build-corpus"):
        D.load_corpus(tmp_path / "nope.jsonl.xz")


def test_load_is_cached(corpus):
    assert D.load_corpus() is corpus


def test_splits_disjoint_complete_and_deterministic(corpus):
    paths = {s: [d.path for d in corpus.documents(s)] for s in D.SPLITS}
    sets = {s: set(p) for s, p in paths.items()}
    assert all(len(sets[s]) == len(paths[s]) for s in D.SPLITS)
    assert not (sets["train"] & sets["validation"] or sets["train"] & sets["test"]
                or sets["validation"] & sets["test"])
    assert all(p == sorted(p) for p in paths.values())
    every = [(d.path, len(d)) for s in D.SPLITS for d in corpus.documents(s)]
    again = D.assign_split(reversed(every))  # order of the input does not matter
    assert all(again[d.path] == s for s in D.SPLITS for d in corpus.documents(s))
    n = sum(len(p) for p in paths.values())
    assert 0.7 < len(paths["train"]) / n < 0.95
    assert 0.7 < corpus.n_tokens("train") / sum(corpus.n_tokens(s) for s in D.SPLITS) < 0.9


def test_enough_long_held_out_documents(corpus):
    for split in ("validation", "test"):
        assert len(corpus.documents(split, min_len=20_481)) >= 64, split
    assert len(corpus.documents("train", min_len=20_481)) >= 64


def test_documents_are_bytes_without_separators(corpus):
    docs = corpus.documents("validation")
    assert all(d.tokens.dtype == np.uint8 and not (d.tokens == D.SEPARATOR).any() for d in docs)
    assert any(d.path.endswith(".py") and b'"""' in d.tokens.tobytes() for d in docs)


def test_stream_layout(corpus):
    s = corpus.stream("validation")
    docs = corpus.documents("validation")
    assert s.dtype == np.uint8 and not s.flags.writeable
    assert len(s) == corpus.n_tokens("validation") + len(docs)
    ends = np.flatnonzero(s == D.SEPARATOR)
    assert len(ends) == len(docs) and ends[-1] == len(s) - 1
    assert np.array_equal(s[: len(docs[0])], docs[0].tokens)
    assert corpus.stream("validation") is s


def test_unknown_split(corpus):
    for call in (corpus.stream, corpus.documents, corpus.n_tokens):
        with pytest.raises(ValueError, match="split must be one of"):
            call("valid")


def test_encode_decode_roundtrip():
    text = "def f(x):\n    return 'π'\n"
    t = D.encode(text)
    assert t.dtype == np.uint8 and len(t) == len(text.encode())
    assert D.decode(t) == text
    cut = D.decode(torch.tensor(t[:-3].astype(np.int64)))  # half of the 2-byte 'π'
    assert cut == "def f(x):\n    return '\ufffd"  # replaced, not raised


# ------------------------------------------------------------------------------ LM batches


def test_batch_sampler_shift_and_determinism(corpus):
    stream = corpus.stream("validation")
    a, b = D.BatchSampler(stream, 4, 64, seed=3), D.BatchSampler(stream, 4, 64, seed=3)
    for _ in range(3):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xa.shape == ya.shape == (4, 64) and xa.dtype == torch.int64
    assert torch.equal(xa[:, 1:], ya[:, :-1])
    assert not torch.equal(D.BatchSampler(stream, 4, 64, seed=4).next()[0], D.BatchSampler(stream, 4, 64, seed=3).next()[0])


def test_batch_sampler_exact_resume(corpus):
    stream = corpus.stream("validation")
    full = D.BatchSampler(stream, 2, 32, seed=0)
    batches = [full.next() for _ in range(6)]
    first = D.BatchSampler(stream, 2, 32, seed=0)
    for _ in range(3):
        first.next()
    state = json.loads(json.dumps(first.state_dict()))  # survives JSON
    resumed = D.BatchSampler(stream, 2, 32, seed=123)
    resumed.load_state_dict(state)
    for x, y in batches[3:]:
        rx, ry = resumed.next()
        assert torch.equal(rx, x) and torch.equal(ry, y)
    with pytest.raises(ValueError, match="seq_len"):
        D.BatchSampler(stream, 2, 16, seed=0).load_state_dict(state)


@pytest.mark.parametrize("kwargs, name", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=2.0), "batch_size"),
    (dict(seq_len=-1), "seq_len"), (dict(seq_len=100), "seq_len"), (dict(seed=-1), "seed"),
])
def test_batch_sampler_bad_arguments(kwargs, name):
    args = dict(stream=np.arange(50, dtype=np.uint8), batch_size=2, seq_len=8, seed=0) | kwargs
    with pytest.raises(ValueError, match=name):
        D.BatchSampler(**args)
