"""Cells of the CSV files the project writes and reads back (docs/decisions/0047).

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula,
and some also after a leading tab or CR (OWASP, "CSV Injection"). What we export holds
text from outside: a recipient server's reply becomes a do-not-contact entry's
reason, and ``=cmd|'/ccalc'!a0@x.example`` is a valid address. So every cell we write
that would start a formula gets a leading ``'``, which spreadsheets read as "this is
text", and every reader of our CSV files takes that ``'`` off again.

Exactly one ``'`` is added, and one is taken off, only before such a start; a value
that itself begins with quotes before one (``'=x``) gets one more, so a file read back
always gives the values written.
"""

from __future__ import annotations

from collections.abc import Iterable

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _needs_quote(text: str) -> bool:
    return text.lstrip("'").startswith(_FORMULA_STARTS)


def neutral_cell(value: str) -> str:
    """``value`` as a cell no spreadsheet runs."""
    return "'" + value if _needs_quote(value) else value


def neutral_row(values: Iterable[str]) -> list[str]:
    return [neutral_cell(v) for v in values]


def original_cell(cell: str) -> str:
    """The value ``neutral_cell`` wrote (a cell a spreadsheet quoted the same way
    reads the same)."""
    return cell[1:] if cell.startswith("'") and _needs_quote(cell[1:]) else cell
