"""Chapter 1, attention fading: the paper's Figs. 1 and 3 recomputed from `ssmax.functional`.

Both are closed-form statements about functions, not experiments: their verdicts are *derived*
(they can only fail through a bug, which the checks would catch) and are counted apart from the
empirical claims.
"""

from __future__ import annotations

import math

import torch

from ..functional import required_logit, ssmax
from . import decide as d

DERIVED_RULE = "A closed-form statement, recomputed by calling the functions on explicit vectors in float64; it is shown, not counted among the empirical results."


def fig1_input(n: int) -> torch.Tensor:
    """The paper's Fig. 1 input: -2 everywhere but +3 last."""
    x = torch.full((int(n),), -2.0, dtype=torch.float64)
    x[-1] = 3.0
    return x


def attention_fading() -> d.Verdict:
    """Fig. 1: softmax's max fades with n; SSMax's (s = 0.43) stays near 1."""
    soft = {n: float(torch.softmax(fig1_input(n), -1).max()) for n in (100, 10**6)}
    ss = {n: float(ssmax(fig1_input(n), 0.43).max()) for n in (100, 10**6)}
    checks = {"softmax's max at n = 100 is 0.600 (3 decimals)": f"{soft[100]:.3f}" == "0.600",
              "SSMax's max at n = 100 exceeds 0.99": ss[100] > 0.99,
              "softmax's max at n = 10^6 is below 0.001": soft[10**6] < 1e-3,
              "SSMax's max at n = 10^6 exceeds 0.999": ss[10**6] > 0.999}
    measured = (f"softmax {soft[100]:.3f} (n=100), {soft[10**6]:.2e} (n=10^6); "
                f"SSMax {ss[100]:.4f} (n=100), {ss[10**6]:.6f} (n=10^6)")
    return d.Verdict("fig1", "Fig. 1", "softmax's maximum fades as n grows; SSMax's stays close to 1", DERIVED_RULE,
                     measured=measured, derived=True, checks=checks)


def fixed_margin_suffices() -> d.Verdict:
    """Fig. 3: the z_max needed for output 0.9 grows like log n under softmax but tends to 1 + 1/s
    under SSMax (other logits evenly spaced in [0, 1])."""
    soft = [required_logit(n, 0.9) for n in (10**4, 10**5, 10**6)]
    ss = {s: [required_logit(n, 0.9, s) for n in (10**2, 10**6)] for s in (0.5, 1.0)}
    checks = {"softmax's z_max grows by log 10 per decade of n": abs((soft[2] - soft[1]) - math.log(10)) < 0.01,
              **{f"SSMax s = {s}: z_max within 0.1 of 1 + 1/s at n = 10^6, closer than at n = 100":
                 abs(v[1] - (1 + 1 / s)) < min(0.1, abs(v[0] - (1 + 1 / s))) for s, v in ss.items()}}
    measured = (f"softmax {soft[1]:.2f} -> {soft[2]:.2f} (n = 10^5 -> 10^6); "
                + "; ".join(f"SSMax s = {s}: {v[0]:.2f} -> {v[1]:.2f} (n = 10^2 -> 10^6)" for s, v in ss.items()))
    return d.Verdict("fig3", "Fig. 3", "softmax needs a top logit growing like log n; SSMax a fixed margin of ~1/s",
                     DERIVED_RULE, measured=measured, derived=True, checks=checks)
