"""Reader's words for the package's internal keys, in one place.

The pipeline names things for the machine: experiments (``lengthgen-a``), set-task settings
(``keyret-bounded``), inference-time baselines (``qwen_logn``), needle protocols
(``paper-theta50``) and verdicts (``sets-maxret-b-vs-a``). A reader sees none of these: chapter
modules, tables and verdict boxes print `label(key)`, and the book's browser check
(``tests/book_browser.py``) fails on any page whose text shows a key of `internal_keys`.
"""

from __future__ import annotations

from .. import baselines, experiments, sets_run

__all__ = ["SETTING_LABELS", "BASELINE_LABELS", "PROTOCOL_LABELS", "VERDICT_IDS", "label", "internal_keys"]

# set tasks (chapter 3)
SETTING_LABELS: dict[str, str] = {
    "maxret": "max retrieval",
    "keyret-bounded": "key retrieval, bounded margin",
    "keyret-unbounded": "key retrieval, free gain",
}
# inference-time log-n scalings of a softmax model (chapter 5), as the verdicts name them
BASELINE_LABELS: dict[str, str] = {
    "qwen_logn": "Qwen LogN",
    "llama4_temp": "Llama 4 temperature",
    "log_train_len": "log_T n at every position",
}
# needle protocols (chapter 6)
PROTOCOL_LABELS: dict[str, str] = {
    "paper-theta1": "θ × 1",
    "paper-theta50": "the paper's protocol (θ × 50 at test)",
    "theta50": "fine-tuned and tested at θ × 50",
    "nope": "no position encoding",
}
# every verdict's id (`decide.Verdict.claim_id`); a test checks this list against the scorecard's
VERDICT_IDS: tuple[str, ...] = (
    "fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "switch",
    "logn-baselines", "nope-lengthgen", "logn-baselines-nope", "theta-best",
    *(f"retrieval-{p}" for p in PROTOCOL_LABELS), "retrieval-variants",
    *(f"sets-{s}-{c}" for s in SETTING_LABELS for c in ("b-vs-a", "b-vs-logn")),
    "sets-keyret-bounded-weights",
    *(f"crosscheck-llama-theta{t}" for t in (1, 50)),  # the page "Use SSMax in your model"
)


def label(key: str) -> str:
    """The reader's words for a setting, baseline or protocol key (the key itself if it has none)."""
    for table in (SETTING_LABELS, BASELINE_LABELS, PROTOCOL_LABELS):
        if key in table:
            return table[key]
    return key


def internal_keys() -> set[str]:
    """Every key a reader must not see: experiment names, set-task settings, baselines, needle
    protocols, verdict ids and the model's scaling names that are not words (``ssmax_fixed``)."""
    from ..attention import SCALINGS

    keys = {*experiments.list_experiments(), *sets_run.SET_TASKS, *baselines.BASELINES, *PROTOCOL_LABELS,
            *VERDICT_IDS}
    keys |= {s for s in SCALINGS if "_" in s}
    return keys


def listing(items, none: str = "") -> str:
    """"a, b and c": items joined for prose (``none`` when there are none)."""
    items = list(items)
    if not items:
        return none
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
