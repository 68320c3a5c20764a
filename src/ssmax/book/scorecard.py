"""Chapter 8 and the introduction: every verdict, their counts and their reasons, computed from the
same `decide.Verdict` objects the chapters show (nothing here is typed by hand)."""

from __future__ import annotations

from collections import Counter

from .. import experiments as ex
from . import attention, length, logn, needle, pretraining, sets, theory
from . import decide as d
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
            *(needle.retrieval_by_protocol(results, p) for p in needle.PROTOCOLS),
            length.ssmax_at_validation_theta(results), *sets.set_task_verdicts(results)]


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


def headline(results: Results) -> dict:
    """What the introduction and the scorecard say in words, computed from the verdicts."""
    paper, beyond = paper_verdicts(results), beyond_paper_verdicts(results)
    return {"paper": paper, "beyond": beyond,
            "n_paper_empirical": len(empirical(paper)), "n_paper_derived": len(derived(paper)),
            "paper_counts": d.counts_text(empirical(paper), d.EMPIRICAL_KINDS),
            "n_beyond": len(beyond), "beyond_counts": d.counts_text(beyond, d.EMPIRICAL_KINDS),
            "by_id": {v.claim_id: v for v in paper + beyond}}
