"""The book's prose counts, directions and verdict words come from the verdict objects: the
glued values in the committed notebooks equal what the chapter modules compute now on the
committed cpu results (a hand-typed or stale number fails here)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from ssmax import experiments
from ssmax.book import decide, scorecard

REPO = Path(__file__).resolve().parents[1]


def _glued(notebook: str) -> dict[str, str]:
    out = {}
    for cell in json.loads((REPO / "notebooks" / notebook).read_text())["cells"]:
        for o in cell.get("outputs", []):
            name = o.get("metadata", {}).get("scrapbook", {}).get("name")
            if name:
                text = next(v for k, v in o["data"].items() if k.endswith("text/plain"))
                out[name] = ast.literal_eval(text) if text[:1] in "'\"" else text
    return out


@pytest.fixture(scope="module")
def found():
    return scorecard.headline(scorecard.load("cpu"), "cpu")


def test_intro_and_scorecard_print_the_same_computed_counts(found):
    intro, card = _glued("00_intro.ipynb"), _glued("08_scorecard.ipynb")
    assert intro["intro_paper_counts"] == card["sc_paper_counts"] == found["paper_counts"]
    assert intro["intro_beyond_counts"] == card["sc_beyond_counts"] == found["beyond_counts"]
    assert int(intro["intro_n_paper"]) == int(card["sc_n_paper"]) == found["n_paper_empirical"]
    assert int(intro["intro_n_derived"]) == found["n_paper_derived"] == 2  # Figs. 1 and 3


def test_every_chapter_names_the_verdict_its_module_computes(found):
    by_id = found["by_id"]
    expected = {"00_intro.ipynb": {"intro_fig4": "fig4", "intro_fig5": "fig5", "intro_fig6": "fig6"},
                "02_why_log_n.ipynb": {"logn_verdict": "fig2"},
                "04_pretraining.ipynb": {"pt_verdict": "fig4"},
                "05_length_generalization.ipynb": {"lg_fig5_verdict": "fig5", "lg_ts_verdict": "theta-best",
                                                   "lg_nope_verdict": "nope-lengthgen", "lg_base_verdict": "logn-baselines"},
                "06_needle_in_a_haystack.ipynb": {"nd_fig6_verdict": "fig6",
                                                  **{f"nd_verdict_{p.replace('-', '_')}": f"retrieval-{p}"
                                                     for p in ("paper-theta1", "paper-theta50", "theta50", "nope")}},
                "07_where_attention_goes.ipynb": {"wa_verdict": "fig8"},
                "03_fading_in_isolation.ipynb": {f"verdict_{k.replace('-', '_')}": k for k in by_id if k.startswith("sets-")}}
    for notebook, keys in expected.items():
        glued = _glued(notebook)
        for key, claim in keys.items():
            assert glued[key] == by_id[claim].kind, (notebook, key)


def test_retrieval_counts_and_reasons_come_from_the_verdicts(found):
    intro = _glued("00_intro.ipynb")
    retrieval = [found["by_id"][f"retrieval-{p}"] for p in ("paper-theta1", "paper-theta50", "theta50", "nope")]
    assert intro["intro_retrieval_counts"] == decide.counts_text(retrieval, decide.EMPIRICAL_KINDS)
    assert intro["intro_fig6_reason"] == ", ".join(found["by_id"]["fig6"].reasons)


def test_no_needle_comparison_claims_more_than_its_pretrained_models(found):
    """A needle part is paired over the pretrained models its arms share: every replicated
    needle model where both arms are replicated end to end on several seeds, else one, and then
    it stays undecided."""
    cpu = experiments.PROFILE_SETTINGS["cpu"]
    protocol_of = {"fig6": experiments.PAPER, "fig8": experiments.PAPER,
                   "retrieval-paper-theta1": experiments.PAPER, "retrieval-paper-theta50": experiments.PAPER,
                   "retrieval-theta50": experiments.THETA50, "retrieval-nope": experiments.NOPE,
                   "retrieval-variants": experiments.PAPER}
    for claim, protocol in protocol_of.items():
        for part in found["by_id"][claim].parts:
            arms = set(re.findall(r"\(([a-f])\)", part.label))
            assert len(arms) == 2, part.label
            if all(cpu.replicated(protocol, v) for v in arms) and arms <= set(experiments.FT_SEED_VARIANTS[protocol]):
                assert part.effect.n == len(cpu.needle_seeds) >= decide.PILOT_MODELS, (claim, part.label)
            else:
                assert part.effect.n == 1 and part.outcome.kind == decide.INCONCLUSIVE, (claim, part.label)
