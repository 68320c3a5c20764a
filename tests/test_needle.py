"""The needle-in-a-haystack generator: invariants, depth, determinism, bad input, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssmax import data as D
from ssmax import needle as N


@pytest.fixture(scope="module")
def corpus() -> D.Corpus:
    return D.load_corpus()



def test_needle_example_invariants(corpus):
    hay = corpus.stream("test")
    rng = np.random.default_rng(0)
    for context_len, n_digits in [(256, 7), (1024, 7), (4096, 3), (200, 12)]:
        e = N.make_needle_example(rng, hay, context_len, depth=float(rng.uniform()), n_digits=n_digits)
        assert len(e.tokens) + n_digits == context_len == e.context_len
        assert e.tokens.dtype == e.answer.dtype == np.uint8
        assert len(e.number) == n_digits and e.number[0] != "0" and D.decode(e.answer) == e.number
        assert D.decode(e.tokens[slice(*e.number_span)]) == e.number
        assert D.decode(e.tokens[slice(*e.needle_span)]) == f"The special magic {e.city} number is: {e.number}."
        assert e.tokens[e.needle_span[0] - 1] == e.tokens[e.needle_span[1]] == ord("\n")
        assert D.decode(e.tokens).endswith(
            f"\nWhat is the special magic {e.city} number? The special magic {e.city} number is: ")
        assert D.SEPARATOR not in e.tokens  # the haystack lies inside one document
        assert e.city in N.CITIES


def test_needle_depth_places_the_needle(corpus):
    hay = corpus.stream("test")
    n = 2048
    start = N.make_needle_example(np.random.default_rng(1), hay, n, 0.0)
    end = N.make_needle_example(np.random.default_rng(1), hay, n, 1.0)
    assert start.needle_span[0] == 1
    question = len(N._question_text(end.city))
    assert len(end.tokens) - question - end.needle_span[1] <= 201  # snapped back at most 200 bytes
    mid = N.make_needle_example(np.random.default_rng(1), hay, n, 0.5)
    n_hay = len(mid.tokens) - len(N._question_text(mid.city)) - (mid.needle_span[1] - mid.needle_span[0]) - 2
    assert 0 <= round(0.5 * n_hay) - (mid.needle_span[0] - 1) <= 200


def test_needle_determinism_and_given_fields(corpus):
    hay = corpus.stream("test")
    a = N.make_needle_example(np.random.default_rng(7), hay, 512, 0.3)
    b = N.make_needle_example(np.random.default_rng(7), hay, 512, 0.3)
    assert np.array_equal(a.tokens, b.tokens) and a.number == b.number and a.city == b.city
    c = N.make_needle_example(np.random.default_rng(7), hay, 512, 0.3, city="Oslo", number="0123456")
    assert c.city == "Oslo" and D.decode(c.tokens[slice(*c.number_span)]) == "0123456"


@pytest.mark.parametrize("kwargs, name", [
    (dict(depth=1.5), "depth"), (dict(depth=-0.1), "depth"), (dict(n_digits=0), "n_digits"),
    (dict(n_digits=13), "n_digits"), (dict(context_len=100), "context_len"),
    (dict(number="12"), "number"), (dict(context_len=0), "context_len"),
])
def test_needle_bad_arguments(corpus, kwargs, name):
    args = dict(rng=np.random.default_rng(0), haystack=corpus.stream("test"), context_len=512, depth=0.5) | kwargs
    with pytest.raises(ValueError, match=name):
        N.make_needle_example(**args)


def test_needle_context_len_minimum_is_exact(corpus):
    hay = corpus.stream("test")
    need = N.needle_min_context_len("Oslo", 7)
    e = N.make_needle_example(np.random.default_rng(0), hay, need, 0.5, city="Oslo")
    assert len(e.tokens) + 7 == need
    with pytest.raises(ValueError, match=f"context_len must be >= {need}"):
        N.make_needle_example(np.random.default_rng(0), hay, need - 1, 0.5, city="Oslo")


def test_needle_haystack_without_long_enough_document():
    hay = np.frombuffer(b"short doc\x00another\x00", dtype=np.uint8)
    with pytest.raises(ValueError, match="haystack"):
        N.make_needle_example(np.random.default_rng(0), hay, 300, 0.5)


def test_needle_batch_mask_covers_answer_digits(corpus):
    rng = np.random.default_rng(0)
    x, y, mask = N.needle_batch(rng, corpus.stream("validation"), 4, 300, n_digits=5)
    assert x.shape == y.shape == mask.shape == (4, 299) and mask.dtype == torch.bool
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert mask.sum().item() == 4 * 5 and mask[:, -5:].all()
    for row in range(4):
        prompt = D.decode(x[row, : 300 - 5])
        digits = D.decode(y[row][mask[row]])
        assert digits.isdigit() and prompt.endswith(" number is: ")
        assert f"number is: {digits}." in prompt  # the needle holds the answer
    again = N.needle_batch(np.random.default_rng(0), corpus.stream("validation"), 4, 300, n_digits=5)
    assert all(torch.equal(a, b) for a, b in zip((x, y, mask), again))
    # a prebuilt index (what the training loop passes) draws exactly the same batch
    indexed = N.needle_batch(np.random.default_rng(0), N.Haystack(corpus.stream("validation")), 4, 300, n_digits=5)
    assert all(torch.equal(a, b) for a, b in zip((x, y, mask), indexed))
