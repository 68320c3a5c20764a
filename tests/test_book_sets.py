"""The set-task chapter's book tables (`report.Table`) say what the printed tables say, on the
committed cpu results."""

from __future__ import annotations

import pytest

from ssmax import experiments
from ssmax.book import labels
from ssmax.book import sets as sets_report


@pytest.fixture(scope="module")
def results():
    return experiments.results_for(sets_report.set_task_names(), "cpu")


def test_book_tables_match_the_printed_tables(results):
    for setting in sets_report.SET_SETTINGS:
        printed = sets_report.accuracy_table(results, setting)
        table = sets_report.accuracy_report_table(results, setting, caption=setting)
        assert table.caption == setting and len(table.rows) == len(sets_report.LINES)
        for row in table.rows:
            for cell in row[1:]:
                assert cell in printed
    largest = sets_report.largest_n_table(results)
    assert largest.header == ["variant", *(labels.label(s) for s in sets_report.SET_SETTINGS)]
    for row, line in zip(largest.rows, sets_report.LINES):
        for setting, cell in zip(sets_report.SET_SETTINGS, row[1:]):
            c = sets_report.curve(results, setting, *line)
            assert cell == f"{c.mean[-1]:.3f} [{c.low[-1]:.3f}, {c.high[-1]:.3f}]"
    validation = sets_report.validation_table(results)
    assert len(validation.rows) == 4 * len(sets_report.SET_SETTINGS)
    assert all(f"{row[2]} (seeds {row[3].replace(' – ', '-')})" in sets_report.validation_summary(results)
               for row in validation.rows)
    assert len(sets_report.theory_gap_table(results).rows) == len(sets_report.SET_SETTINGS) * len(sets_report.THEORY_LINES)
    assert sets_report.learned_table(results).rows
    assert sets_report.devices(results, sets_report.set_task_names())
