"""The decision procedure (`ssmax.book.decide`) on synthetic per-seed numbers: every verdict kind and
reason, pairing by seed, differences in differences, uncounted parts, derived claims; and the unit
of replication read from the registry."""

from __future__ import annotations

import math

import pytest

from ssmax import experiments, results as store
from ssmax.book import decide as d
from ssmax.book import runs, theory


def _e(*values: float) -> d.Effect:
    return d.Effect(tuple(f"seed {i}" for i in range(len(values))), tuple(values))


@pytest.mark.parametrize("dof, expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423)])
def test_t_quantile_matches_the_tables(dof, expected):
    assert d.t_quantile(0.975, dof) == pytest.approx(expected, abs=1e-4)


def test_interval_is_student_t_over_units():
    e = _e(0.1, 0.2, 0.3)
    assert e.mean == pytest.approx(0.2) and e.sd == pytest.approx(0.1)
    assert e.half_width == pytest.approx(4.3027 * 0.1 / math.sqrt(3), abs=1e-4)


def test_each_outcome_and_its_reason():
    assert d.decide(_e(0.10, 0.11, 0.12), 0.02).kind == d.REPRODUCED
    other = d.decide(_e(-0.10, -0.11, -0.12), 0.02)
    assert (other.kind, other.reason) == (d.NOT_REPRODUCED, d.OTHER_WAY)
    small = d.decide(_e(0.001, -0.001, 0.0005, -0.0005), 0.02)
    assert (small.kind, small.reason) == (d.NOT_REPRODUCED, d.TOO_SMALL)
    wide = d.decide(_e(0.3, -0.3, 0.05), 0.02)
    assert (wide.kind, wide.reason) == (d.INCONCLUSIVE, d.UNDERPOWERED)
    # underpowered says the smallest effect the design could detect: the interval's half-width
    assert f"could detect is {_e(0.3, -0.3, 0.05).half_width:.3f}" in wide.why


def test_one_model_per_arm_is_underpowered_whatever_its_size():
    out = d.decide(_e(5.0), 0.02)
    assert (out.kind, out.reason) == (d.INCONCLUSIVE, d.UNDERPOWERED) and "one independently trained model" in out.why


def test_precondition_comes_before_floor_and_floor_before_the_numbers():
    e = _e(0.10, 0.11, 0.12)
    assert d.decide(e, 0.02, floor="at 0", precondition="no retrieval at 1T").reason == d.PRECONDITION
    assert d.decide(e, 0.02, floor="at 0").reason == d.FLOOR


def test_paired_and_unpaired_give_different_answers_where_they_should():
    # seeds differ a lot from each other, but within every seed (b) is 0.05 below (a): paired, it holds;
    # against the spread across seeds (unpaired) the same numbers say nothing
    a = {"seed 0": 1.0, "seed 1": 1.3, "seed 2": 0.7}
    b = {k: v - 0.05 for k, v in a.items()}
    assert d.decide(d.paired(b, a, higher_is_better=False), 0.01).kind == d.REPRODUCED
    lo, hi = d.welch_interval(list(a.values()), list(b.values()))
    assert lo < 0 < hi
    # a one-seed model against a three-seed mean: pairing keeps the one shared seed, so one unit
    c = {"seed 0": 0.5}
    paired = d.paired(c, a, higher_is_better=False)
    assert paired.n == 1 and d.decide(paired, 0.01).reason == d.UNDERPOWERED


def test_a_gain_as_large_within_T_is_not_length_generalization():
    within = _e(0.05, 0.06, 0.055)
    same = d.generalizes("x", _e(0.05, 0.06, 0.056), within, 0.02)
    assert same.outcome.kind == d.NOT_REPRODUCED and same.outcome.reason == d.NOT_LENGTH_SPECIFIC
    assert "as large within T" in same.note
    larger = d.generalizes("x", _e(0.15, 0.16, 0.155), within, 0.02)
    assert larger.outcome.kind == d.REPRODUCED
    # no gain beyond T at all: decided on the gain beyond T, whatever the difference in differences
    worse_within = d.generalizes("x", _e(0.0, 0.001, -0.001), _e(-0.2, -0.21, -0.19), 0.02)
    assert worse_within.outcome.kind == d.NOT_REPRODUCED and worse_within.outcome.reason == d.TOO_SMALL


def _verdict(*parts: d.Part) -> d.Verdict:
    return d.Verdict("x", "Fig. x", "a claim", "a rule", list(parts))


def test_parts_that_do_not_contrast_ssmax_with_softmax_are_shown_not_counted():
    holds, fails = _e(0.1, 0.11, 0.12), _e(-0.1, -0.11, -0.12)
    v = _verdict(d.part("(b) below (a)", fails, 0.02), d.part("(c) close to (b)", holds, 0.02, counted=False))
    assert v.kind == d.NOT_REPRODUCED and "1 shown, not counted" in v.tally()
    assert _verdict(d.part("(b) below (a)", holds, 0.02), d.part("(c) vs (a)", _e(0.3, -0.3, 0.0), 0.02)).kind == d.PARTLY
    assert _verdict(d.part("(b) below (a)", holds, 0.02)).kind == d.REPRODUCED
    only_uncounted = _verdict(d.part("(c) close to (b)", holds, 0.02, counted=False))
    assert only_uncounted.kind == d.INCONCLUSIVE


def test_undecided_parts_make_a_claim_partly_not_reproduced_in_full():
    v = _verdict(d.part("first digit", _e(0.1, 0.11, 0.12), 0.02), d.part("exact", _e(0.0), 0.02),
                 d.part("bits", _e(0.2, 0.1, 0.3), 0.02, precondition="no retrieval at 1T"))
    assert v.kind == d.PARTLY and v.reasons == [d.PRECONDITION, d.UNDERPOWERED]
    stuck = _verdict(d.part("exact", _e(0.0), 0.02, precondition="no retrieval at 1T"))
    assert stuck.kind == d.INCONCLUSIVE and stuck.reason == d.PRECONDITION


def test_a_verdict_says_why_with_the_decided_parts_first():
    """A verdict that fails names the failing part and its reason before the undecided parts'
    reasons, so "not reproduced" never reads as if only undecided parts were behind it."""
    fails = d.part("(b) below (a) far out", _e(-0.1, -0.11, -0.12), 0.02)
    v = _verdict(fails, d.part("exact", _e(0.2, 0.1, 0.3), 0.02, precondition="no retrieval at 1T"))
    assert v.kind == d.NOT_REPRODUCED
    assert v.why() == (f"fails: (b) below (a) far out ({fails.outcome.reason}); "
                       f"the other parts undecided: {d.PRECONDITION}")
    holds = _verdict(d.part("p", _e(0.1, 0.11, 0.12), 0.02))
    assert holds.why() == "holds: p"
    stuck = _verdict(d.part("exact", _e(0.0), 0.02, precondition="no retrieval at 1T"))
    assert stuck.why() == d.PRECONDITION


def test_derived_claims_are_counted_apart():
    vs = [theory.attention_fading(), theory.fixed_margin_suffices(), _verdict(d.part("p", _e(0.1, 0.11, 0.12), 0.02))]
    assert [v.kind for v in vs] == [d.DERIVED, d.DERIVED, d.REPRODUCED]
    assert all(all(v.checks.values()) for v in vs[:2])
    assert d.counts(vs, d.EMPIRICAL_KINDS) == {"reproduced": 1, "partly": 0, "not reproduced": 0, "inconclusive": 0}
    assert d.counts_text(vs) == "1 reproduced and 2 derived"


def test_every_verdict_prints_its_rule_and_per_model_numbers():
    text = str(_verdict(d.part("(b) below (a)", _e(0.1, 0.11, 0.12), 0.02)))
    assert "rule: a rule" in text and "per model: seed 0 +0.100, seed 1 +0.110, seed 2 +0.120" in text


@pytest.mark.parametrize("accuracies, trials, chance, expected", [
    ({"(a)": 0.0, "(b)": 0.01}, 300, 0.0, "within 2 standard errors of 0"),
    ({"(a)": 0.10, "(b)": 0.12}, 300, 1 / 9, "chance"),
    ({"(a)": 1.0, "(b)": 0.995}, 300, 0.0, "of 1"),
    ({"(a)": 0.0, "(b)": 0.5}, 300, 0.0, None),
])
def test_accuracy_floor_or_ceiling(accuracies, trials, chance, expected):
    out = d.accuracy_floor_or_ceiling(accuracies, trials, chance)
    assert out is None if expected is None else expected in out


def test_loss_floor():
    assert d.loss_floor({"(a)": 3.3, "(b)": 3.2}, 3.18) is not None
    assert d.loss_floor({"(a)": 3.3, "(b)": 3.1}, 3.18) is None


@pytest.mark.parametrize("name, seed, root", [("needle-eval-b", 2, 2), ("needle-score-b", 2, 2),
                                              ("needle-eval-c-theta50", 2, 0), ("needle-eval-b-theta50", 2, 2),
                                              ("needle-score-e", 3, 3), ("lengthgen-e", 1, 1),
                                              ("pretrain-b", 2, 2), ("needle-score-a-nope", 0, 0), ("needle-eval-b-nope", 2, 0),
                                              ("theta-study-c", 0, 0),
                                              ("keyret-ssmax-bounded", 1, 1)])
def test_the_unit_is_the_pretraining_seed_at_the_root_of_the_weights(name, seed, root):
    config = store.to_jsonable(experiments.experiment_config(name, "cpu", seed))
    assert runs.root_seed({"profile": "cpu", "seed": seed, "config": config}) == root


def _stored(name: str, seed: int) -> dict:
    return {"profile": "cpu", "seed": seed, "config": store.to_jsonable(experiments.experiment_config(name, "cpu", seed))}


def test_grouped_replicates_names_what_each_set_of_runs_rests_on():
    """Variants replicated end to end count one model per seed; fine-tuning seeds of one
    pretrained model count as one model; labels that rest on the same are listed together."""
    found = runs.grouped_replicates({"(a)": [_stored("needle-eval-a", s) for s in range(5)],
                                     "(e)": [_stored("needle-eval-e", s) for s in range(5)],
                                     "(c)": [_stored("needle-eval-c-theta50", s) for s in range(3)],
                                     "(d)": [_stored("needle-eval-d", 0)]})
    assert found == ("(a) and (e): 5 independently trained models; (c): 3 fine-tuning seeds of 1 pretrained model; "
                     "(d): 1 independently trained model")


def test_run_key():
    assert store.run_key("needle-eval-b", 2) == "needle-eval-b--seed2"


# --- the seed-count rule ---------------------------------------------------------------------------
def test_detectable_effect_is_the_paired_t_power_formula():
    # (t_{0.975,4} + t_{0.8,4}) sd / sqrt(5), with t_{0.8,4} = 0.9410 from the tables
    assert d.detectable_effect(0.03, 5) == pytest.approx((2.7764 + 0.9410) * 0.03 / math.sqrt(5), rel=1e-3)
    assert d.detectable_effect(0.03, 20) < d.detectable_effect(0.03, 10) < d.detectable_effect(0.03, 5)
    assert d.detectable_effect(0.0, 5) == 0.0


@pytest.mark.parametrize("kwargs, match", [(dict(sd=0.1, n=1), "n must be"), (dict(sd=0.1, n=True), "n must be"),
                                           (dict(sd=-1.0, n=5), "sd must be"), (dict(sd=0.1, n=5, power=1.0), "power")])
def test_detectable_effect_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        d.detectable_effect(**kwargs)


def test_models_needed_is_the_smallest_n_at_or_above_the_floor_that_detects_the_effect():
    assert d.models_needed(0.001, 0.1) == d.MIN_MODELS  # a tiny spread still gets the floor
    n = d.models_needed(0.1, 0.1)
    assert n > d.MIN_MODELS
    assert d.detectable_effect(0.1, n) <= 0.1 < d.detectable_effect(0.1, n - 1)
    with pytest.raises(ValueError, match="effect must be positive"):
        d.models_needed(0.1, 0.0)


def test_seed_count_takes_its_spread_from_the_first_models_and_its_power_from_all():
    effect = _e(0.05, 0.06, 0.04, 0.30, -0.20)  # the last two, added later, are far more spread
    c = d.seed_count("(b) vs (a)", effect, 0.1)
    assert c.pilot_n == 3 and c.pilot_sd == pytest.approx(0.01)
    assert c.needed == d.MIN_MODELS and c.enough
    assert c.run == 5 and c.run_sd == pytest.approx(effect.sd)
    assert c.detectable == pytest.approx(d.detectable_effect(effect.sd, 5))
    with pytest.raises(ValueError, match="at least 2 models"):
        d.seed_count("x", _e(0.1), 0.1)


def test_the_compared_language_model_variants_are_independently_pretrained_seed_by_seed():
    """Pretraining and per-position loss of the compared variants run at least MIN_MODELS seeds
    in the cpu profile, and seed k of each reads pretraining seed k of its own variant."""
    for protocol, variants in experiments.SEEDED_VARIANTS.items():
        floor = d.MIN_MODELS
        for v in variants:
            for stage in ("pretrain", "lengthgen"):
                if stage == "pretrain" and v == "baselines":
                    continue
                name = str(experiments.ExperimentName(stage, v, protocol))
                seeds = experiments.seeds_for(name, "cpu")
                assert len(seeds) >= floor, name
                for seed in seeds:
                    config = store.to_jsonable(experiments.experiment_config(name, "cpu", seed))
                    assert runs.root_seed({"profile": "cpu", "seed": seed, "config": config}) == seed


def test_replicated_needle_models_fine_tune_model_k_under_one_learning_rate_ladder():
    """A needle variant replicated end to end fine-tunes, evaluates and scores pretrained model k
    as its seed k, on at least the seed-count rule's pilot of models (one where the variant
    has one fine-tuning seed), and every replicated variant starts the same ladder (same rate, halvings, target);
    the others still fine-tune the seed-0 model."""
    prof = experiments.PROFILE_SETTINGS["cpu"]
    assert {"a", "b"} <= set(prof.replicated_needle[experiments.PAPER])
    registered = set(experiments.list_experiments())
    ladders = set()
    for protocol in experiments.PROTOCOLS:
        for v in experiments.PROTOCOL_VARIANTS[protocol]:
            replicated = prof.replicated(protocol, v)
            for stage in ("needle-sft", "needle-eval", "needle-score"):
                name = str(experiments.ExperimentName(stage, v, protocol))
                if name not in registered:
                    continue
                seeds = experiments.seeds_for(name, "cpu")
                if replicated and v in experiments.FT_SEED_VARIANTS[protocol]:
                    assert seeds == prof.needle_seeds and len(seeds) >= d.PILOT_MODELS, name
                for seed in seeds:
                    config = store.to_jsonable(experiments.experiment_config(name, "cpu", seed))
                    root = runs.root_seed({"profile": "cpu", "seed": seed, "config": config})
                    assert root == (seed if replicated else 0), (name, seed)
            if replicated:
                sft = experiments.experiment_config(str(experiments.ExperimentName("needle-sft", v, protocol)), "cpu", 0)
                ladders.add((sft.train.lr, sft.evaluation["lr_halvings"], sft.evaluation["target_val_exact"]))
    assert len(ladders) == 1, ladders


def _part(label: str, *values: float) -> d.Part:
    return d.part(label, _e(*values), 0.05)


def test_contrast_text_reads_every_window_of_one_contrast_measure_by_measure():
    from ssmax.book import needle

    parts = [_part("(e) above (a) in exact match over (T,2T]", 0.2, 0.21, 0.19),
             _part("(e) above (a) in exact match over (T,4T]", 0.1, -0.3, 0.2),
             _part("(b) above (e) in exact match over (T,2T]", 0.1, 0.1, 0.1),
             _part("(e) below (a) in bits per digit over (T,2T]", -0.2, -0.21, -0.19)]
    text = needle.contrast_text(parts, "e", "a")
    assert text == ("exact match: (T,2T] holds; (T,4T] undecided (underpowered); "
                    "bits per digit: (T,2T] fails (reliably the other way)")
    assert "(b)" not in text and "first-digit" not in text


def test_against_a_text_names_each_variants_counted_contrast_with_a():
    from ssmax.book import attention

    label = "({}) concentrates more on the needle than ({}) (median top score)"
    parts = [_part(label.format(v, "a"), *vals) for v, vals in (("c", (0.3, 0.31, 0.29)), ("d", (0.05,)))]
    parts.append(d.Part(label.format("b", "c"), _e(0.1, 0.1), parts[0].outcome, counted=False))
    v = d.Verdict("fig8", "Figs. 7-8", "x", "rule", parts)
    text = attention.against_a_text(v, "cd")
    assert text.startswith("(c) holds, +0.30 mean over 3 models; (d) undecided")
    assert text.endswith("+0.05 on one model")


def test_one_model_text_names_what_rests_on_one_pretrained_model():
    from ssmax.book import scorecard

    assert scorecard.one_model_text("gpu") == "(d) and (f) everywhere"
    cpu = scorecard.one_model_text("cpu")
    for protocol, variants in experiments.unreplicated_needle("cpu").items():
        if protocol != experiments.PAPER:
            assert all(f"({v})" in cpu for v in variants), (protocol, cpu)
