"""The claim checks themselves: on made-up results where a claim plainly holds they must say
so, and where it plainly fails they must say that. A check that cannot fail checks nothing."""

import numpy as np
import pytest

from ssmax import claims


def _seeds(name: str, values: list[float]) -> dict:
    return {name: [{"metrics": {"heldout_loss": {"model": v}}} for v in values]}


def _needle_scores(tops: dict[str, np.ndarray]) -> dict:
    return {f"needle-score-{v}": [{"metrics": {"random_trials": {"top_score": x.tolist()}}}] for v, x in tops.items()}


def _needle_grid(acc_by_length: list[float], T: int = 10, trials: int = 20) -> list[dict]:
    depths = [0.0, 0.5, 1.0]
    grid = {"context_lengths": [m * T for m in (1, 2, 4, 8)], "depths": depths, "trials": trials,
            "exact": [[a] * len(depths) for a in acc_by_length]}
    return [{"metrics": {"theta_x50": grid}}]


def test_verdict_counts_parts():
    assert claims.Verdict("x", "s", "t", "m", "sp", {"a": True, "b": True}).verdict == claims.REPRODUCED
    assert claims.Verdict("x", "s", "t", "m", "sp", {"a": True, "b": False}).verdict == claims.PARTLY
    assert claims.Verdict("x", "s", "t", "m", "sp", {"a": False, "b": False}).verdict == claims.NOT_REPRODUCED
    assert "fails: b" in str(claims.Verdict("x", "s", "t", "m", "sp", {"a": True, "b": False}))


def test_inconclusive_overrides_the_parts_and_says_why():
    v = claims.Verdict("x", "s", "t", "m", "sp", {"a": False}, inconclusive="floor: all zero")
    assert v.verdict == claims.INCONCLUSIVE
    assert "why inconclusive: floor: all zero" in str(v) and "fails: a" in str(v)


@pytest.mark.parametrize("accuracies, trials, chance, expected", [
    ({"(a)": 0.0, "(b)": 0.0}, 300, 0.0, "floor"),            # all exactly 0
    ({"(a)": 0.0, "(b)": 0.01}, 300, 0.0, "floor"),           # 0.01 is within 2 SE (0.011) of 0
    ({"(a)": 0.0, "(b)": 0.05}, 300, 0.0, None),              # (b) clearly off the floor
    ({"(a)": 0.12, "(b)": 0.09}, 100, 0.11, "floor"),         # both within 2 SE (0.063) of chance 0.11
    ({"(a)": 0.12, "(b)": 0.30}, 100, 0.11, None),
    ({"(a)": 1.0, "(b)": 0.99}, 300, 0.0, "ceiling"),
    ({"(a)": 1.0, "(b)": 0.90}, 300, 0.0, None),
])
def test_accuracy_floor_or_ceiling(accuracies, trials, chance, expected):
    reason = claims.accuracy_floor_or_ceiling(accuracies, trials, chance)
    assert (reason is None) if expected is None else reason.startswith(expected)


def test_accuracy_floor_or_ceiling_rejects_bad_input():
    with pytest.raises(ValueError, match="trials must be a positive integer"):
        claims.accuracy_floor_or_ceiling({"(a)": 0.0}, 0)
    with pytest.raises(ValueError, match="chance must be in"):
        claims.accuracy_floor_or_ceiling({"(a)": 0.0}, 10, chance=1.0)


def test_loss_floor():
    assert claims.loss_floor({"(a)": 3.5, "(b)": 3.4}, 3.3).startswith("floor")
    assert claims.loss_floor({"(a)": 3.5, "(b)": 3.2}, 3.3) is None


def test_clearly_below_needs_more_than_the_seed_spread():
    reference = [2.0, 2.1, 1.9]  # spread 0.2
    assert claims.clearly_below([1.7, 1.75], reference)
    assert not claims.clearly_below([1.85], reference)  # lower, but within seed noise


def test_paired_majority_is_a_sign_test():
    rng = np.random.default_rng(0)
    y = rng.random(100)
    assert claims.paired_majority(y + 1, y) == (1.0, True)
    assert claims.paired_majority(y, y) == (0.0, False)  # ties count against
    x = y.copy()
    x[:55] += 1  # 55% wins: below one half plus 2 standard errors (60% at n = 100)
    assert claims.paired_majority(x, y) == (0.55, False)
    with pytest.raises(ValueError, match="paired trials"):
        claims.paired_majority(y[:10], y)


def test_attention_on_needle_holds_and_fails():
    rng = np.random.default_rng(1)
    a = rng.random(100) * 0.1
    b = 0.8 + rng.random(100) * 0.2
    mid = 0.4 + rng.random(100) * 0.1
    holds = claims.attention_on_needle(_needle_scores({"a": a, "b": b, "c": mid, "d": mid, "e": mid, "f": mid}))
    assert holds.verdict == claims.REPRODUCED
    # (d) no better than (a): that part fails; (b) no better than (a): nothing about (b) holds
    partly = claims.attention_on_needle(_needle_scores({"a": a, "b": b, "c": mid, "d": a.copy(), "e": mid, "f": mid}))
    assert partly.verdict == claims.PARTLY
    assert [ok for part, ok in partly.parts.items() if part.startswith("(d)")] == [False]
    fails = claims.attention_on_needle(_needle_scores({v: a.copy() for v in "abcdef"}))
    assert fails.verdict == claims.NOT_REPRODUCED


def test_retrieval_at_the_floor_is_inconclusive():
    T = 10
    results = {f"needle-eval-{v}": _needle_grid([1.0, 0.9, 0.0, 0.0], T) for v in "abcdef"}
    verdict = claims.retrieval(results, T)
    assert verdict.verdict == claims.INCONCLUSIVE and verdict.inconclusive.startswith("floor")


def test_retrieval_uses_the_binomial_error():
    T = 10
    results = {f"needle-eval-{v}": _needle_grid([1.0, 0.9, acc, acc], T)
               for v, acc in dict(a=0.0, b=0.9, c=0.3, d=0.3, e=0.5, f=0.5).items()}
    assert claims.retrieval(results, T).verdict == claims.REPRODUCED
    # (b) above (a) by 0.05 on 120 trials each: inside 2 standard errors of the difference
    results["needle-eval-a"] = _needle_grid([1.0, 0.9, 0.85, 0.85], T)
    verdict = claims.retrieval(results, T)
    assert not verdict.parts["(b) above (a) by more than the seed spread and 2 standard errors"]
    with pytest.raises(ValueError, match="min_multiple"):
        claims.retrieval(results, T, min_multiple=16)


def test_pretraining_loss_holds_and_fails():
    results = {**_seeds("lengthgen-a", [2.0, 2.02, 1.98]), **_seeds("lengthgen-b", [1.80, 1.82, 1.78]),
               **_seeds("lengthgen-c", [1.81]), **_seeds("lengthgen-d", [1.70])}
    assert claims.pretraining_loss(results).verdict == claims.REPRODUCED
    same = {**_seeds("lengthgen-a", [2.0, 2.02, 1.98]), **_seeds("lengthgen-b", [2.0, 2.02, 1.98]),
            **_seeds("lengthgen-c", [2.5]), **_seeds("lengthgen-d", [2.2])}
    assert claims.pretraining_loss(same).verdict == claims.NOT_REPRODUCED


@pytest.mark.parametrize("shape, expected", [("log", claims.REPRODUCED), ("linear", claims.PARTLY)])
def test_learned_pn_shape_is_told_apart(shape, expected):
    n = np.arange(1, 257)
    p = 0.3 * np.log(n) + 1.0 if shape == "log" else 1.0 + 0.01 * n
    verdict = claims.learned_pn_is_logarithmic({"learned-pn": [{"metrics": {"learned_p_n": p.tolist()}}]})
    assert verdict.verdict == expected
    assert verdict.parts["log fit has a higher R^2 than the linear fit"] == (shape == "log")


def test_theory_claims_hold():
    assert claims.attention_fading().verdict == claims.REPRODUCED
    assert claims.fixed_margin_suffices().verdict == claims.REPRODUCED


# --- floor-aware needle and length claims (synthetic results) ---------------------------------

def _grid(exact, first, bits, T=10, trials=20, multiples=(1, 2, 4), bits_sd=0.5):
    """A needle grid with one depth: values per context length (multiples of T)."""
    col = lambda xs: [[x] for x in xs]
    return {"context_lengths": [m * T for m in multiples], "depths": [0.5], "trials": trials,
            "exact": col(exact), "first_digit": col(first), "digit_accuracy": col(first),
            "bits_per_digit": col(bits), "bits_per_digit_sd": col([bits_sd] * len(multiples))}


def _protocol_results(per_variant: dict[str, list[dict]], suffix: str = "", theta: int = 1):
    """{variant: [seed grids]} -> results dict of needle-eval-{v}{suffix}."""
    return {f"needle-eval-{v}{suffix}": [{"metrics": {f"theta_x{theta}": g}} for g in grids]
            for v, grids in per_variant.items()}


def test_retrieval_by_protocol_holds_fails_and_cannot_tell():
    a = [_grid([1, 0.1, 0.0], [1, 0.3, 0.12], [0.1, 2.5, 3.3]) for _ in range(3)]
    b = [_grid([1, 0.6, 0.3], [1, 0.9, 0.6], [0.1, 0.8, 1.6]) for _ in range(3)]
    res = _protocol_results({"a": a, "b": b, "c": b})
    v = claims.retrieval_by_protocol(res, 10, "paper-theta1")
    assert v.verdict == claims.REPRODUCED and len(v.parts) == 6 and not v.undecided
    # (b) no better than (a): every decided part fails; the 4T exact match is at the floor for both
    flat = [_grid([1, 0.1, 0.0], [1, 0.3, 0.12], [0.1, 2.5, 3.3]) for _ in range(3)]
    v = claims.retrieval_by_protocol(_protocol_results({"a": a, "b": flat, "c": flat}), 10, "paper-theta1")
    assert v.verdict == claims.NOT_REPRODUCED
    assert "(b) above (a) in exact match at 4T" in v.undecided
    assert v.undecided["(b) above (a) in exact match at 4T"].startswith("floor")
    # everything at the floor: inconclusive, not "not reproduced"
    zero = [_grid([0, 0, 0], [0.1, 0.1, 0.1], [3.4, 3.4, 3.4]) for _ in range(3)]
    v = claims.retrieval_by_protocol(_protocol_results({"a": zero, "b": zero}, "-nope"), 10, "nope")
    assert v.verdict == claims.INCONCLUSIVE and not v.parts


def test_needle_protocol_stats_lists_every_protocol_variant_and_length():
    seeds = lambda e: [_grid([1, e, 0.0], [1, 0.5, 0.2], [0.1, 2.0, 4.0]) for _ in range(3)]
    res = _protocol_results({"a": seeds(0.1), "b": seeds(0.3), "c": seeds(0.2)})
    for name, runs in _protocol_results({"a": seeds(0.1), "b": seeds(0.3), "c": seeds(0.2)}, theta=50).items():
        for run, other in zip(res[name], runs):  # the paper's models are tested at theta x1 and x50
            run["metrics"].update(other["metrics"])
    res.update(_protocol_results({"a": seeds(0.1), "b": seeds(0.3), "c": seeds(0.2)}, "-theta50", theta=50))
    res.update(_protocol_results({"a": seeds(0.1), "b": seeds(0.4)}, "-nope"))
    rows = claims.needle_protocol_stats(res, 10)
    assert [(p, v, m) for p, v, m, _ in rows][:2] == [("paper-theta1", "a", 2), ("paper-theta1", "a", 4)]
    assert len(rows) == 3 * 3 * 2 + 2 * 2  # NoPE has no (c)
    nope_b_2T = next(st for p, v, m, st in rows if (p, v, m) == ("nope", "b", 2))
    assert nope_b_2T["exact"].per_seed == [0.4] * 3 and set(nope_b_2T) == set(claims.METRIC_WORDS)
    # a length no run evaluated is left out, not an error
    assert len(claims.needle_protocol_stats(res, 10, multiples=(2, 16))) == 3 * 3 + 2


def test_needle_better_needs_the_seed_spread_and_two_standard_errors():
    y = claims.NeedleStat([0.40, 0.50, 0.45], 100, 0.029)
    assert claims.needle_better(claims.NeedleStat([0.70, 0.72, 0.68], 100, 0.026), y)
    assert not claims.needle_better(claims.NeedleStat([0.52, 0.54, 0.50], 100, 0.029), y)  # inside the spread
    assert claims.needle_better(claims.NeedleStat([1.0], 100, 0.05), claims.NeedleStat([2.0], 100, 0.05),
                                higher_is_better=False)


def _lengthgen(doc_losses: dict[str, np.ndarray], T: int, floor: float, theta: int = 1) -> dict:
    """One seed of lengthgen results whose curves are flat per document at the given losses
    (documents x windows [1,T], (T,4T])."""
    curve = np.concatenate([np.full(T, doc_losses["[1,T]"].mean()), np.full(3 * T, doc_losses["(T,4T]"].mean())])
    entry = {"curve": curve.tolist(), "document_windows": {w: x.tolist() for w, x in doc_losses.items()}}
    return {"metrics": {"curves": {f"model@theta_x{theta}": entry}, "context_free_loss": floor}}


def test_nope_length_generalization_pairs_documents_and_respects_the_floor():
    rng = np.random.default_rng(0)
    T = 10
    base = 2.0 + rng.random(32)
    a = {"[1,T]": base - 1, "(T,4T]": base}
    b = {"[1,T]": base - 1, "(T,4T]": base - 0.05 + 0.01 * rng.standard_normal(32)}
    res = {"lengthgen-a-nope": [_lengthgen(a, T, 3.2)], "lengthgen-b-nope": [_lengthgen(b, T, 3.2)]}
    assert claims.nope_length_generalization(res, T).verdict == claims.REPRODUCED
    res["lengthgen-b-nope"] = [_lengthgen(a, T, 3.2)]
    assert claims.nope_length_generalization(res, T).verdict == claims.NOT_REPRODUCED
    res = {k: [_lengthgen(a, T, 1.5)] for k in ("lengthgen-a-nope", "lengthgen-b-nope")}  # floor below the losses
    assert claims.nope_length_generalization(res, T).verdict == claims.INCONCLUSIVE


def _theta_study(val: list[float], test: list[float], exact: list[list[float]], factors=(1, 8, 50), n_docs=16):
    """theta-study metrics with flat per-document losses (validation/test means per factor)."""
    rng = np.random.default_rng(1)
    def split(means):
        return {w: {"mean": means, "documents": [(m + 0.01 * rng.standard_normal(n_docs)).tolist() for m in means]}
                for w in ("(T,2T]", "(2T,4T]")}
    return [{"metrics": {"factors": list(factors), "loss": {"validation": split(val), "test": split(test)},
                         "needle": {"context_lengths": [10, 20, 40], "trials_per_length": 100,
                                    "exact": exact}}}]


def test_the_theta_factor_is_chosen_on_validation_data_only():
    # validation prefers x8; the test data would prefer x50: the rule must pick x8
    ex = [[1.0, 0.0, 0.0]] * 3
    res = {f"theta-study-{v}": _theta_study([3.0, 2.0, 2.5], [3.0, 2.5, 2.0], ex) for v in "abc"}
    factor, val = claims.validation_best_theta(res)
    assert factor == 8 and val[8] == min(val.values())
    better = _theta_study([3.0, 1.5, 2.5], [3.0, 1.5, 2.0], [[1.0, 0.0, 0.0], [1.0, 0.5, 0.3], [1.0, 0.0, 0.0]])
    res["theta-study-b"] = better
    v = claims.ssmax_at_validation_theta(res)
    assert "(x8)" in v.statement
    assert v.parts["(b) below (a) in test loss over (T,4T] by more than 2 standard errors (paired by document)"]
    assert v.parts["(b) above (a) in needle exact match at 2T by more than 2 standard errors"]


# --- set tasks (beyond the paper) -------------------------------------------------------------

SET_SIZES = [16, 64, 256, 1024, 4096]


def _set_run(acc, weight=None, theory=None, logn=None, trials=2000, chance=0.1):
    weight = acc if weight is None else weight
    metrics = {"set_sizes": SET_SIZES, "accuracy": acc, "trials": [trials] * len(acc), "target_weight": weight,
               "chance": chance, "theory": None if theory is None else {"at_set_sizes": theory}, "eval_variants": {}}
    if logn is not None:
        metrics["eval_variants"]["logn"] = {"set_sizes": SET_SIZES, "accuracy": logn, "trials": [trials] * len(acc)}
    return {"metrics": metrics}


def _set_results(setting, by_variant, jitter=(0.0, 0.01, -0.01)):
    """``by_variant``: variant -> dict(acc=..., weight=..., theory=..., logn=...); seeds differ by ``jitter``."""
    out = {}
    for variant, spec in by_variant.items():
        runs = []
        for j in jitter:
            shift = lambda xs: None if xs is None else [float(np.clip(x + j, 0, 1)) for x in xs]
            runs.append(_set_run(shift(spec["acc"]), shift(spec.get("weight")), spec.get("theory"), shift(spec.get("logn"))))
        out[claims.set_experiment(setting, variant)] = runs
    return out


def test_set_ssmax_beats_softmax_holds_fails_and_is_inconclusive():
    soft = [0.99, 0.8, 0.4, 0.2, 0.12]
    holds = _set_results("maxret", {"softmax": {"acc": soft}, "ssmax": {"acc": [0.99, 0.95, 0.8, 0.6, 0.4]}})
    v = claims.set_ssmax_beats_softmax(holds, "maxret")
    assert v.verdict == claims.REPRODUCED and len(v.parts) == 3  # n = 256, 1024, 4096
    # ahead only at 256, and there by less than the seed spread (0.02) elsewhere
    partly = _set_results("maxret", {"softmax": {"acc": soft}, "ssmax": {"acc": [0.99, 0.8, 0.5, 0.21, 0.125]}})
    assert claims.set_ssmax_beats_softmax(partly, "maxret").verdict == claims.PARTLY
    same = _set_results("maxret", {"softmax": {"acc": soft}, "ssmax": {"acc": soft}})
    assert claims.set_ssmax_beats_softmax(same, "maxret").verdict == claims.NOT_REPRODUCED
    floor = _set_results("maxret", {"softmax": {"acc": [0.9, 0.5, 0.1, 0.1, 0.1]},
                                    "ssmax": {"acc": [0.9, 0.6, 0.1, 0.1, 0.1]}}, jitter=(0.0, 0.0, 0.0))
    v = claims.set_ssmax_beats_softmax(floor, "maxret")
    assert v.verdict == claims.INCONCLUSIVE and "chance" in v.inconclusive
    with pytest.raises(ValueError, match="min_multiple"):
        claims.set_ssmax_beats_softmax(holds, "maxret", min_multiple=1024)


def test_set_ssmax_beats_the_inference_time_log_n_factor():
    soft = {"acc": [0.99, 0.8, 0.4, 0.2, 0.12], "logn": [0.99, 0.85, 0.55, 0.3, 0.15]}
    res = _set_results("keyret-bounded", {"softmax": soft, "ssmax": {"acc": [0.99, 0.95, 0.8, 0.6, 0.4]}})
    assert claims.set_ssmax_beats_inference_logn(res, "keyret-bounded").verdict == claims.REPRODUCED
    soft["logn"] = [0.99, 0.99, 0.9, 0.8, 0.6]
    res = _set_results("keyret-bounded", {"softmax": soft, "ssmax": {"acc": [0.99, 0.95, 0.8, 0.6, 0.4]}})
    assert claims.set_ssmax_beats_inference_logn(res, "keyret-bounded").verdict == claims.NOT_REPRODUCED


def test_set_bounded_margin_weights():
    fade = [0.9, 0.7, 0.4, 0.15, 0.04]
    high = [0.97, 0.96, 0.95, 0.94, 0.93]
    spec = {"softmax": {"acc": fade, "weight": fade, "theory": fade},
            "ssmax": {"acc": high, "weight": high, "theory": high}}
    assert claims.set_bounded_margin_weights(_set_results("keyret-bounded", spec)).verdict == claims.REPRODUCED
    # SSMax stays high but the fixed-margin formula overshoots it by 0.2 at the largest n
    spec["ssmax"]["theory"] = [0.97, 0.98, 0.99, 1.0, 1.0]
    spec["ssmax"]["weight"] = [0.97, 0.96, 0.9, 0.85, 0.8]
    v = claims.set_bounded_margin_weights(_set_results("keyret-bounded", spec))
    assert v.verdict == claims.PARTLY
    assert [ok for part, ok in v.parts.items() if part.startswith("(b) within")] == [False]
    flat = {"softmax": {"acc": high, "weight": high, "theory": fade}, "ssmax": {"acc": fade, "weight": fade, "theory": high}}
    assert claims.set_bounded_margin_weights(_set_results("keyret-bounded", flat)).verdict == claims.NOT_REPRODUCED


def test_set_task_verdicts_cover_every_setting():
    spec = {"softmax": {"acc": [0.99, 0.8, 0.4, 0.2, 0.12], "weight": [0.9, 0.7, 0.4, 0.15, 0.04],
                        "theory": [0.9, 0.7, 0.4, 0.15, 0.04], "logn": [0.99, 0.85, 0.55, 0.3, 0.15]},
            "ssmax": {"acc": [0.99, 0.95, 0.8, 0.6, 0.4], "weight": [0.97] * 5, "theory": [0.97] * 5}}
    res = {}
    for setting in claims.SET_SETTINGS:
        res.update(_set_results(setting, spec))
    verdicts = claims.set_task_verdicts(res)
    assert len(verdicts) == 7 and all(v.verdict == claims.REPRODUCED for v in verdicts)
    assert len({v.claim_id for v in verdicts}) == 7
    with pytest.raises(ValueError, match="setting must be one of"):
        claims.set_experiment("sort", "ssmax")


def test_attention_and_answer_counts_focused_trials_and_their_answers():
    top = np.array([0.9, 0.8, 0.6, 0.2, 0.1, 0.05])
    res = {"needle-score-b": [{"metrics": {"random_trials": {
        "top_score": top.tolist(), "bits_per_digit": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "outcomes": ["correct", "first_digit", "wrong", "first_digit", "wrong", "wrong"]}}}]}
    s = claims.attention_and_answer(res, "b")
    assert (s["trials"], s["correct"], s["focused"]) == (6, 1, 3)
    assert s["first_if_focused"] == pytest.approx(2 / 3) and s["first_otherwise"] == pytest.approx(1 / 3)
    assert s["rank_corr_bits"] == pytest.approx(-1.0)


def test_first_crossing():
    curve = [1.0, 2.0, 4.0, 1.0, 5.0]
    assert claims.first_crossing(curve, 3.0) == 3.0  # 1-based position of the first value above 3
    assert claims.first_crossing(curve, 3.0, start=3) == 5.0  # only positions after 3 count
    assert np.isnan(claims.first_crossing(curve, 9.0))


def test_validation_drop_by_thirds():
    metrics = {"eval_steps": [0, 100, 200, 300], "val_loss": [4.0, 3.0, 2.5, 2.4]}
    early, late = claims.validation_drop_by_thirds(metrics)
    assert early == pytest.approx(1.0)  # 4.0 at step 0 to 3.0 at step 100
    assert late == pytest.approx(0.1)  # 2.5 at step 200 to 2.4 at step 300
