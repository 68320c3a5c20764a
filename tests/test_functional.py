"""ssmax.functional: the SSMax function, the query scale, and chapter 1's closed forms."""

import math

import pytest
import torch

from ssmax.functional import (causal_key_counts, query_scale, required_logit, softmax_max,
                              softmax_max_bound, ssmax, ssmax_max_bound)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def fig1_input(n, dtype=torch.float64):
    x = torch.full((n,), -2.0, dtype=dtype)
    x[-1] = 3.0
    return x


# --- ssmax is softmax((s log n + b) x) ---------------------------------------------------------

@pytest.mark.parametrize("n", [2, 17, 1000])
def test_s1_is_softmax_of_log_n_times_x(n):
    x = randn(3, n)
    torch.testing.assert_close(ssmax(x, 1.0), torch.softmax(math.log(n) * x, dim=-1), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("n", [2, 17, 1000])
def test_s_times_log_n_equal_one_is_plain_softmax(n):
    x = randn(3, n, seed=1)
    torch.testing.assert_close(ssmax(x, 1.0 / math.log(n)), torch.softmax(x, dim=-1), rtol=1e-13, atol=1e-15)


def test_float64_keeps_full_precision_with_integer_n():
    # log n must be taken in float64 for float64 input (a float32 log n is off by ~1e-8)
    x = randn(4, 300, seed=2) * 5
    for s in (0.3, 0.43, 1.7):
        ref = torch.softmax(s * math.log(300) * x, dim=-1)
        torch.testing.assert_close(ssmax(x, s), ref, rtol=1e-13, atol=1e-16)
        torch.testing.assert_close(ssmax(x, s, n=300), ref, rtol=1e-13, atol=1e-16)


def test_n_defaults_to_size_of_dim_and_explicit_n_overrides():
    x = randn(2, 10, seed=3)
    torch.testing.assert_close(ssmax(x, 0.5), ssmax(x, 0.5, n=10))
    torch.testing.assert_close(ssmax(x, 0.5, n=1000), torch.softmax(0.5 * math.log(1000) * x, dim=-1))
    assert not torch.allclose(ssmax(x, 0.5, n=1000), ssmax(x, 0.5))


def test_dim_other_than_last():
    x = randn(5, 7, seed=4)
    out = ssmax(x, 0.6, dim=0)
    torch.testing.assert_close(out, torch.softmax(0.6 * math.log(5) * x, dim=0))  # n = size of dim 0
    torch.testing.assert_close(out, ssmax(x.T.contiguous(), 0.6).T)
    torch.testing.assert_close(out.sum(0), torch.ones(7, dtype=x.dtype))


def test_tensor_s_and_b_broadcast_per_row():
    x = randn(4, 9, seed=5)
    s = torch.tensor([0.2, 0.5, 1.0, 2.0], dtype=torch.float64).unsqueeze(-1)
    b = torch.tensor([0.0, -0.3, 0.1, 1.0], dtype=torch.float64).unsqueeze(-1)
    out = ssmax(x, s, b=b)
    for r in range(4):
        factor = s[r].item() * math.log(9) + b[r].item()
        torch.testing.assert_close(out[r], torch.softmax(factor * x[r], dim=-1))
        torch.testing.assert_close(out[r:r + 1], ssmax(x[r:r + 1], s[r].item(), b=b[r].item()))


def test_tensor_n_per_row():
    # attention: each query row has its own key count n_i
    x = randn(3, 6, seed=6)
    n = torch.tensor([[2.0], [4.0], [6.0]])
    out = ssmax(x, 0.8, n=n)
    for r, nr in enumerate((2, 4, 6)):
        torch.testing.assert_close(out[r], torch.softmax(0.8 * math.log(nr) * x[r], dim=-1))


def test_non_tensor_input_raises():
    with pytest.raises(TypeError):
        ssmax([1.0, 2.0], 0.5)


# --- masking ---------------------------------------------------------------------------------

def test_masked_entries_get_exactly_zero():
    x = randn(2, 8, seed=7)
    x[0, 5:] = -math.inf
    x[1, ::2] = -math.inf
    out = ssmax(x, 0.5, n=8)
    assert (out[x == -math.inf] == 0).all()
    keep = x[0, :5]
    torch.testing.assert_close(out[0, :5], torch.softmax(0.5 * math.log(8) * keep, dim=-1))
    torch.testing.assert_close(out.sum(-1), torch.ones(2, dtype=x.dtype))


def test_n_equal_one_factor_zero_gives_no_nan():
    # first causal query: n = 1, factor 0; 0 * -inf must not become NaN
    x = torch.tensor([[0.7, -math.inf, -math.inf]])
    out = ssmax(x, 0.5, n=1)
    assert torch.equal(out, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.equal(ssmax(torch.tensor([[2.5]]), 0.5), torch.tensor([[1.0]]))


def test_fully_masked_row_is_zeros():
    x = torch.full((2, 4), -math.inf)
    x[1, 0] = 0.3
    out = ssmax(x, 0.5)
    assert not out.isnan().any()
    assert torch.equal(out[0], torch.zeros(4))
    assert torch.equal(out[1], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_gradient_is_finite_with_masked_entries():
    x = randn(2, 5, seed=8).float()
    x[:, 3:] = -math.inf
    x.requires_grad_(True)
    out = ssmax(x, torch.tensor([[0.5], [1.0]]), n=torch.tensor([[1.0], [5.0]]))
    (out * torch.arange(5.0)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[:, 3:] == 0).all()


# --- the paper's Fig. 1 ----------------------------------------------------------------------

def test_fig1_numbers():
    x = fig1_input(100)
    assert ssmax(x, 0.43).max().item() > 0.99
    assert round(torch.softmax(x, -1).max().item(), 3) == 0.600
    assert softmax_max(fig1_input(10**6)).item() < 1e-3
    assert min(ssmax(fig1_input(n), 0.43).max().item() for n in (2, 3, 5, 10, 30)) > 0.8


# --- no NaN / inf at huge n and in low precision ---------------------------------------------

def test_length_1e7_float32_is_finite_and_normalised():
    n = 10**7
    x = randn(n, seed=9, dtype=torch.float32)
    x[123] = 8.0
    out = ssmax(x, 0.43)
    assert out.dtype == torch.float32 and out.shape == (n,)
    assert torch.isfinite(out).all() and (out >= 0).all()
    # float32 accumulation over 1e7 terms: a relative error of ~1e-4 in the normaliser is normal
    assert abs(out.sum(dtype=torch.float64).item() - 1.0) < 1e-2
    assert out.argmax().item() == 123


@pytest.mark.parametrize("dtype, big, tol", [(torch.float16, 6e4, 2e-3), (torch.bfloat16, 1e30, 2e-2)])
def test_low_precision_large_logits(dtype, big, tol):
    x = torch.tensor([[big, -big, 0.0, 1.0],
                      [-big, -big, -big, -big],
                      [0.5, 0.25, -0.25, 0.0]], dtype=dtype)
    for s in (0.43, 1.0, 5.0):
        for n in (None, 10**6):
            out = ssmax(x, s, n=n)
            assert out.dtype == dtype
            assert torch.isfinite(out).all()
            torch.testing.assert_close(out.float().sum(-1), torch.ones(3), rtol=0, atol=tol)
            assert out[0, 0].item() == 1.0


# --- query_scale and key counts --------------------------------------------------------------

def test_causal_key_counts():
    assert causal_key_counts(5).tolist() == [1, 2, 3, 4, 5]
    assert causal_key_counts(3, past_len=10).tolist() == [11, 12, 13]
    assert causal_key_counts(0).numel() == 0
    with pytest.raises(ValueError):
        causal_key_counts(-1)
    with pytest.raises(ValueError):
        causal_key_counts(2, past_len=-3)


def test_query_scale_values():
    scale = query_scale(causal_key_counts(4), s=0.43)
    torch.testing.assert_close(scale, 0.43 * torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0])))
    assert scale[0].item() == 0.0
    # with a KV cache of P tokens the new query i sees P + i + 1 keys
    torch.testing.assert_close(query_scale(causal_key_counts(2, past_len=1022), 1.0),
                               torch.log(torch.tensor([1023.0, 1024.0])))
    # integer n up to 1e7 gives log n to float32 precision
    assert query_scale(10**7, 1.0).item() == pytest.approx(math.log(10**7), rel=1e-7)


def test_query_scale_bias_is_added():
    n = causal_key_counts(6)
    torch.testing.assert_close(query_scale(n, 0.3, b=0.25) - query_scale(n, 0.3), torch.full((6,), 0.25))
    b = torch.tensor([0.1, -0.2])[:, None]
    s = torch.tensor([0.5, 2.0])[:, None]  # per-head s, b broadcast against the key counts
    out = query_scale(n, s, b)
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[1], 2.0 * torch.log(n) - 0.2)


@pytest.mark.parametrize("bad", [0, 0.5, -3, torch.tensor([2.0, 0.0])])
def test_query_scale_n_below_one_raises(bad):
    with pytest.raises(ValueError, match="n must be >= 1"):
        query_scale(bad, 0.5)
    with pytest.raises(ValueError):
        ssmax(torch.zeros(2), 0.5, n=bad)


# --- theory helpers --------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 10, 1000, 10**5])
@pytest.mark.parametrize("gap", [0.0, 0.7, 5.0, 30.0])
def test_softmax_max_bound_is_attained_by_two_level_vector(n, gap):
    z = torch.zeros(n, dtype=torch.float64)
    z[0] = gap
    assert softmax_max(z).item() == pytest.approx(softmax_max_bound(n, gap).item(), rel=1e-11)


def test_softmax_max_bound_bounds_random_vectors():
    for n in (2, 50, 5000):
        z = 2.0 * randn(20, n, seed=n)
        gap = z.amax(-1) - z.amin(-1)
        assert (softmax_max(z) <= softmax_max_bound(n, gap) + 1e-12).all()
    assert softmax_max_bound(10**9, 5.0).item() < 1e-6  # fades for a fixed gap


@pytest.mark.parametrize("s", [0.2, 0.43, 1.0])
def test_ssmax_max_bound_matches_ssmax_and_its_limits(s):
    for n in (2, 10, 1000):
        z = torch.zeros(n, dtype=torch.float64)
        z[-1] = 3.0
        assert ssmax(z, s).max().item() == pytest.approx(ssmax_max_bound(n, 3.0, s).item(), rel=1e-12)
    big = 1e12
    assert ssmax_max_bound(big, 1.5 / s, s).item() > 0.99
    assert ssmax_max_bound(big, 0.5 / s, s).item() < 0.01
    assert ssmax_max_bound(big, 1.0 / s, s).item() == pytest.approx(0.5, abs=1e-6)
    # increasing in n above the threshold, decreasing below it
    ns = torch.tensor([10.0, 1e3, 1e5, 1e7])
    assert (ssmax_max_bound(ns, 1.2 / s, s).diff() > 0).all()
    assert (ssmax_max_bound(ns, 0.8 / s, s).diff() < 0).all()


@pytest.mark.parametrize("s", [None, 0.5, 1.0])
@pytest.mark.parametrize("n", [2, 10, 1000])
@pytest.mark.parametrize("target", [0.5, 0.9, 0.99])
def test_required_logit_reaches_target(s, n, target):
    z_max = required_logit(n, target, s)
    x = torch.cat([torch.linspace(0.0, 1.0, n - 1, dtype=torch.float64), torch.tensor([z_max], dtype=torch.float64)])
    out = torch.softmax(x, -1) if s is None else ssmax(x, s)
    assert out[-1].item() == pytest.approx(target, abs=1e-8)


def test_required_logit_growth():
    # softmax needs log 10 more per decade; SSMax approaches 1 + 1/s (paper-notes §2.4)
    soft = [required_logit(10**k, 0.9) for k in (3, 4)]
    assert soft[1] - soft[0] == pytest.approx(math.log(10), abs=0.01)
    assert required_logit(10**4, 0.9, 0.5) == pytest.approx(3.14, abs=0.005)
    assert required_logit(10**4, 0.9, 1.0) == pytest.approx(2.00, abs=0.005)
    assert abs(required_logit(10**4, 0.9, 1.0) - 2) < abs(required_logit(10, 0.9, 1.0) - 2)


@pytest.mark.parametrize("kwargs", [dict(n=1, target=0.5), dict(n=10, target=1.0), dict(n=10, target=0.0),
                                    dict(n=10, target=0.5, s=0.0), dict(n=10, target=0.5, s=-1.0)])
def test_required_logit_bad_input_raises(kwargs):
    with pytest.raises(ValueError):
        required_logit(**kwargs)
