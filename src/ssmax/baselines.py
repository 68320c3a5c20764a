"""Inference-time log-n scalings that production models ship, applied to a trained softmax
model without any training (chapter 5 compares them with training-time SSMax).

Each returns a `QueryScaleFn`: n (float32 key counts) -> factor multiplying every query.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .attention import QueryScaleFn

BASELINES = ("qwen_logn", "llama4_temp", "log_train_len")


def qwen_logn(train_len: int) -> QueryScaleFn:
    """Qwen's LogN attention: factor log_{T}(n) beyond the training length T, 1 within it."""
    def fn(n: Tensor) -> Tensor:
        return torch.where(n > train_len, torch.log(n) / math.log(train_len), torch.ones_like(n))
    return fn


def llama4_temperature(floor_scale: int, beta: float = 0.1) -> QueryScaleFn:
    """Llama 4's attention temperature tuning: 1 + beta log(floor(n / L) + 1); exactly 1 for
    n < L. Llama 4 uses L = 8192 with a 256k training context; here L is the training length."""
    def fn(n: Tensor) -> Tensor:
        return 1.0 + beta * torch.log(torch.floor(n / floor_scale) + 1.0)
    return fn


def log_base(base: int) -> QueryScaleFn:
    """The "entropy-invariant" scale log_base(n) at every position (Su, 2021, with base 512 =
    his training length; here base = our training length, so the factor is 1 at n = T)."""
    def fn(n: Tensor) -> Tensor:
        return torch.log(n) / math.log(base)
    return fn


def baseline(name: str, train_len: int) -> QueryScaleFn:
    if name == "qwen_logn":
        return qwen_logn(train_len)
    if name == "llama4_temp":
        return llama4_temperature(train_len)
    if name == "log_train_len":
        return log_base(train_len)
    raise ValueError(f"baseline must be one of {BASELINES}; got {name!r}")
