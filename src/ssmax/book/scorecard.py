"""Chapter 8 and the introduction: every verdict, their counts and their reasons, computed from the
same `decide.Verdict` objects the chapters show (nothing here is typed by hand)."""

from __future__ import annotations

from collections import Counter

from .. import experiments as ex
from . import attention, crosscheck, length, logn, needle, pretraining, sets, theory
from . import decide as d
from .labels import listing
from .runs import Results


def load(profile: str, retrain: bool = False, device: str = "auto") -> Results:
    return ex.results_for(ex.list_experiments(), profile, retrain=retrain, device=device)


def paper_verdicts(results: Results) -> list[d.Verdict]:
    """The paper's claims, in the order of its figures (Figs. 1 and 3 are derived)."""
    return [theory.attention_fading(), logn.learned_pn_is_logarithmic(results), theory.fixed_margin_suffices(),
            pretraining.pretraining_loss(results), length.length_generalization(results, 50),
            needle.retrieval(results), attention.attention_on_needle(results), length.switching_gains(results)]


def beyond_paper_verdicts(results: Results) -> list[d.Verdict]:
    """Our own questions: the inference-time scalings (RoPE and NoPE), NoPE, retrieval under every
    needle protocol, the validation-chosen theta, and the set tasks."""
    return [length.ssmax_vs_inference_scalings(results, 50), length.nope_length_generalization(results),
            length.ssmax_vs_inference_scalings(results, 1, ex.NOPE),
            *(needle.retrieval_by_protocol(results, p) for p in needle.PROTOCOLS), needle.variants_retrieval(results),
            length.ssmax_at_validation_theta(results), *sets.set_task_verdicts(results)]


def one_model_text(profile: str) -> str:
    """"(d) and (f) everywhere, and the needle models fine-tuned at θ×50 ((a), (b) and (c))":
    what still rests on one pretrained model per variant in a profile."""
    once = [v for v in ex.VARIANTS if v not in ex.SEEDED_VARIANTS[ex.PAPER]]
    needle_words = {ex.THETA50: "fine-tuned at θ×50", ex.NOPE: "without position encoding", ex.PAPER: "fine-tuned at θ×1"}
    needle_models = [f"{needle_words[p]} ({listing(f'({v})' for v in vs)})"
                     for p, vs in ex.unreplicated_needle(profile).items() if set(vs) - set(once)]
    out = f"{listing(f'({v})' for v in once)} everywhere" if once else ""
    if needle_models:
        out += (", and " if out else "") + f"the needle models {' or '.join(needle_models)}"
    return out or "nothing"


def empirical(verdicts: list[d.Verdict]) -> list[d.Verdict]:
    return [v for v in verdicts if v.kind != d.DERIVED]


def derived(verdicts: list[d.Verdict]) -> list[d.Verdict]:
    return [v for v in verdicts if v.kind == d.DERIVED]


def why(v: d.Verdict) -> str:
    """One sentence, from the verdict itself, on why it is not reproduced: what held, what failed
    (with its reason) and why the rest is undecided (with how many parts each reason stops)."""
    if v.kind in (d.REPRODUCED, d.DERIVED):
        return ""
    c = v.counted_parts
    held = [p for p in c if p.outcome.kind == d.REPRODUCED]
    failed = [p for p in c if p.outcome.kind == d.NOT_REPRODUCED]
    stopped = Counter(p.outcome.reason for p in c if p.outcome.kind == d.INCONCLUSIVE)
    out = []
    if held:
        out.append("holds: " + "; ".join(p.label for p in held))
    if failed:
        out.append("fails: " + "; ".join(f"{p.label} ({p.outcome.reason})" for p in failed))
    if stopped:
        out.append("undecided: " + ", ".join(f"{n} part{'s' if n > 1 else ''} {r}" for r, n in stopped.items()))
    return "; ".join(out) + "."


def where_we_part(verdicts: list[d.Verdict]) -> list[list[str]]:
    """Rows (source, verdict, the paper says, why) of every empirical claim not reproduced."""
    return [[v.source, v.kind, v.statement, why(v)] for v in verdicts if v.kind not in (d.REPRODUCED, d.DERIVED)]


def by_kind(verdicts: list[d.Verdict]) -> dict[str, list[str]]:
    """The sources of the verdicts of each kind (kinds with none left out)."""
    out: dict[str, list[str]] = {}
    for v in verdicts:
        out.setdefault(v.kind, []).append(v.source)
    return {k: out[k] for k in d.KINDS if k in out}


def headline(results: Results, profile: str = "") -> dict:
    """What the introduction and the scorecard say in words, computed from the verdicts; with
    ``profile``, the cross-check on transformers' Llama counts among the questions beyond the paper."""
    paper = paper_verdicts(results)
    beyond = beyond_paper_verdicts(results) + (crosscheck.llama_verdicts(profile) if profile else [])
    return {"paper": paper, "beyond": beyond,
            "n_paper_empirical": len(empirical(paper)), "n_paper_derived": len(derived(paper)),
            "paper_counts": d.counts_text(empirical(paper), d.EMPIRICAL_KINDS),
            "n_beyond": len(beyond), "beyond_counts": d.counts_text(beyond, d.EMPIRICAL_KINDS),
            "by_id": {v.claim_id: v for v in paper + beyond}}


# --------------------------------------------------------------------------- navigation
# Where each claim is decided: (chapter page, section label). The labels are MyST targets,
# ``(label)=`` above the section's heading, so a link survives a retitled section.
_SECTIONS: dict[str, tuple[str, str]] = {
    "fig1": ("01_attention_fading", "ch1-fig1"), "fig3": ("01_attention_fading", "ch1-fig3"),
    "fig2": ("02_why_log_n", "ch2-verdict"), "fig4": ("04_pretraining", "ch4-verdict"),
    "fig5": ("05_length_generalization", "ch5-paper-protocol"),
    "switch": ("05_length_generalization", "ch5-paper-protocol"),
    "theta-best": ("05_length_generalization", "ch5-theta"),
    "logn-baselines": ("05_length_generalization", "ch5-baselines"),
    "nope-lengthgen": ("05_length_generalization", "ch5-nope"),
    "logn-baselines-nope": ("05_length_generalization", "ch5-nope"),
    "fig6": ("06_needle_in_a_haystack", "ch6-paper-protocol"),
    "retrieval-variants": ("06_needle_in_a_haystack", "ch6-variants"),
    "fig8": ("07_where_attention_goes", "ch7-fig8"),
}


def section(claim_id: str) -> tuple[str, str]:
    """The chapter page (file name without extension) and the section label that decide a claim."""
    if claim_id in _SECTIONS:
        return _SECTIONS[claim_id]
    if claim_id.startswith("retrieval-"):
        return "06_needle_in_a_haystack", "ch6-protocols"
    if claim_id.startswith("crosscheck-"):
        return "11_use_in_your_model", "use-crosscheck"
    if claim_id.startswith("sets-"):
        return "03_fading_in_isolation", "ch3-verdicts"
    raise ValueError(f"no chapter section is known for claim {claim_id!r}; add it to scorecard._SECTIONS")


def links(verdicts: list[d.Verdict]) -> dict[str, str]:
    """Claim id -> link to its chapter section, relative to a page in ``notebooks/``."""
    return {v.claim_id: "{}.html#{}".format(*section(v.claim_id)) for v in verdicts}


# --------------------------------------------------------------------------- for practitioners
def _kinds(verdicts: list[d.Verdict]) -> str:
    """'reproduced' if all agree, else the kinds in order with their counts ('2 reproduced, 1 partly')."""
    found = Counter(v.kind for v in verdicts)
    if len(found) == 1:
        return next(iter(found)) + (" in each" if len(verdicts) > 1 else "")
    return ", ".join(f"{found[k]} {'partly reproduced' if k == d.PARTLY else k}" for k in d.KINDS if found[k])


def practitioner(by_id: dict[str, d.Verdict]) -> list[str]:
    """"What this means if you train models", in 3-4 sentences computed from the verdicts (and
    saying no more than they do): the isolated mechanism, the inference-time alternative, the
    paper's language-model claims, and what SSMax changes in a model."""
    sets_ab = [v for k, v in by_id.items() if k.startswith("sets-keyret") and k.endswith("-b-vs-a")]
    sets_logn = [v for k, v in by_id.items() if k.startswith("sets-") and k.endswith("-b-vs-logn")]
    lm = [by_id[k] for k in ("fig4", "fig5", "fig6") if k in by_id]
    out = []
    if sets_ab:
        kind = _kinds(sets_ab)
        if all(v.kind == d.REPRODUCED for v in sets_ab):
            out.append("Where a model must find one item among many by a margin it learned on small inputs "
                       "(chapter 3's key retrieval), training with SSMax kept it working far beyond the training "
                       f"sizes where softmax faded (verdicts: {kind}).")
        else:
            out.append("Where a model must find one item among many by a margin it learned on small inputs "
                       f"(chapter 3's key retrieval), SSMax against softmax beyond the training sizes came out: {kind}.")
    if sets_logn:
        out.append("Against the cheaper alternative, a softmax model whose logits are multiplied by log n only "
                   f"at inference, training with SSMax came out: {_kinds(sets_logn)} (one verdict per set task).")
    if lm:
        undecided = all(v.kind == d.INCONCLUSIVE for v in lm)
        listed = "; ".join(f"{v.source} {v.kind}" for v in lm)
        out.append(("In small language models this book neither confirms nor rules out the paper's gains in "
                    f"pretraining loss, length generalization and needle retrieval ({listed}): do not count on "
                    "them from this evidence alone." if undecided else
                    f"In small language models the paper's claims came out: {listed}."))
    out.append("Trying SSMax costs one multiplication of each query by s log n, with one learned s per layer "
               "and head; the attention kernel stays as it is.")
    return out
