"""Needle scoring from one teacher-forced pass agrees with greedy decoding; bits per digit and the
context-free loss floor are what they claim to be."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from ssmax.evaluate import answer_scores, score_needle_examples, unigram_loss
from ssmax.model import GPT, GPTConfig


def _tiny(scaling: str = "ssmax") -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(scaling=scaling, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()


def test_teacher_forced_scores_match_greedy_decoding():
    """Take the model's own greedy continuation as the 'answer': teacher forcing must call it exact;
    change its last digit and it is only first-digit right; change its first and it is wrong."""
    model = _tiny()
    gen = torch.Generator().manual_seed(1)
    prompts = torch.randint(0, 256, (6, 20), generator=gen)
    greedy = model.generate(prompts, 4)[:, 20:]
    examples = [SimpleNamespace(tokens=p.numpy(), answer=g.numpy()) for p, g in zip(prompts, greedy)]
    sc = score_needle_examples(model, examples, torch.device("cpu"), batch_size=4)
    assert sc.exact.all() and sc.first_digit.all() and sc.digit_correct.all()
    assert sc.outcomes() == ["correct"] * 6
    last_wrong = [SimpleNamespace(tokens=e.tokens, answer=np.r_[e.answer[:-1], (e.answer[-1] + 1) % 256])
                  for e in examples]
    sc = score_needle_examples(model, last_wrong, torch.device("cpu"))
    assert not sc.exact.any() and sc.first_digit.all() and sc.outcomes() == ["first_digit"] * 6
    first_wrong = [SimpleNamespace(tokens=e.tokens, answer=np.r_[(e.answer[0] + 1) % 256, e.answer[1:]])
                   for e in examples]
    assert score_needle_examples(model, first_wrong, torch.device("cpu")).outcomes() == ["wrong"] * 6


def test_bits_per_digit_of_a_uniform_guess_is_log2_10():
    logits = torch.full((3, 7, 256), -1e9)
    logits[..., 48:58] = 0.0  # uniform over the ten digit bytes
    answers = torch.full((3, 7), ord("5"))
    sc = answer_scores(logits, answers)
    assert np.allclose(sc.bits, math.log2(10))
    certain = torch.full((3, 7, 256), -1e9)
    certain[..., ord("5")] = 0.0
    assert np.allclose(answer_scores(certain, answers).bits, 0.0)


def test_unigram_loss_is_the_cross_entropy_of_the_byte_frequencies():
    train = np.array([1, 1, 1, 2], dtype=np.uint8)
    test = np.array([1, 2], dtype=np.uint8)
    counts = np.ones(256)
    counts[1] += 3
    counts[2] += 1
    p = counts / counts.sum()
    expected = -(math.log(p[1]) + math.log(p[2])) / 2
    assert abs(unigram_loss(train, test) - expected) < 1e-12
