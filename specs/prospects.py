"""Prospects: the people a campaign writes to, from a CSV file or inline in YAML.

Every address is validated and normalized. Any field value may end up in a
subject line, so none may hold a line break, nor any character no header or body
line can hold (U+2028, U+0085, the other controls but tab). A cell quoted as text
for a spreadsheet (``'=...``, specs/csv_cells.py) reads as its value. A second row
with the same address (in any case) is dropped with a warning: a typo'd list is
common and not worth refusing the whole campaign for.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from specs import Problem
from specs.bounds import InputBounds, file_too_big, over
from specs.csv_cells import original_cell
from specs.scalars import forbid_controls, normalize_address
from specs.yamlfile import line_of
from worktime.places import SOURCES, Place, PlaceError, place_of


@dataclass(frozen=True, slots=True)
class Prospect:
    email: str  # normalized by email_validator
    fields: dict[str, Any]  # template fields; "email" is not among them
    where: str  # its row in the input, for messages
    # Its zone and, for holidays, country (worktime/places.py: from timezone, phone,
    # country). None for a Prospect built in Python: found from its fields when stored.
    place: Place | None = None

    def located(self) -> Place:
        """Its place, found from its fields if it was not yet (PlaceError if they are bad)."""
        return self.place if self.place is not None else place_of(self.fields)

    def template_fields(self) -> dict[str, Any]:
        return {**self.fields, "email": self.email}


@dataclass(frozen=True, slots=True)
class ProspectRow:
    """One input row before validation, and how to point at it in a message."""

    values: dict[Any, Any]
    label: str  # the CSV path as written, or "prospects"
    number: int  # CSV line (the header is line 1), or 1-based position in the list
    inline: bool = False
    line: int | None = None  # YAML line of an inline prospect
    fault: str | None = None  # a row that cannot be read into fields at all

    def where(self) -> str:
        if not self.inline:
            return f"{self.label} line {self.number}"
        return f"{self.label}[{self.number}]" + (f" (line {self.line})" if self.line else "")

    def at(self, key: str) -> str:
        if not self.inline:
            return f"{self.where()}, column {key}"
        return f"{self.label}[{self.number}].{key}" + (f" (line {self.line})" if self.line else "")


@dataclass
class CsvProspects:
    columns: list[str] | None  # None when the header is unusable
    rows: list[ProspectRow]
    problems: list[Problem]


def read_csv(path: Path, label: str, source: str, bounds: InputBounds) -> CsvProspects:
    """Rows of a CSV file whose header names the fields and includes ``email``."""
    too_big = file_too_big(path, bounds)
    if too_big is not None:
        return CsvProspects(None, [], [Problem(source, label, f"the file {too_big}")])
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            try:
                return _parse_csv(reader, label, source, bounds.prospects)
            except (csv.Error, UnicodeDecodeError) as exc:
                where = f"{label} near line {reader.line_num}"
                return CsvProspects(None, [], [Problem(source, where, f"cannot read it ({exc})")])
    except OSError as exc:
        return CsvProspects(None, [], [Problem(source, label, f"cannot read the file ({exc})")])


def _parse_csv(
    reader: Iterator[list[str]], label: str, source: str, max_rows: int
) -> CsvProspects:
    header = [name.strip() for name in next(reader, [])]
    problems = [Problem(source, f"{label} line 1 (header)", m) for m in _header_faults(header)]
    if problems:
        return CsvProspects(None, [], problems)
    header = ["email" if name.lower() == "email" else name for name in header]
    rows: list[ProspectRow] = []
    for number, cells in enumerate(reader, start=2):
        if not any(cells):  # blank lines, and the empty rows spreadsheets append
            continue
        if len(rows) == max_rows:  # stop reading: the rest would only use memory
            message = f"more than {max_rows} prospects (OUTREACH_MAX_PROSPECTS)"
            return CsvProspects(header, rows, [Problem(source, f"{label} line {number}", message)])
        if len(cells) != len(header):
            fault = f"has {len(cells)} cells, the header has {len(header)}"
            rows.append(ProspectRow({}, label, number, fault=fault))
        else:
            # A cell a spreadsheet (or our own export) quoted as text reads as its value.
            values = dict(zip(header, map(original_cell, cells), strict=True))
            rows.append(ProspectRow(values, label, number))
    return CsvProspects(header, rows, problems)


def _header_faults(header: list[str]) -> list[str]:
    if not header:
        return ["the file is empty: it needs a header row with an email column"]
    faults = [f"column {i} has no name" for i, name in enumerate(header, 1) if not name]
    faults += [f"column {name!r} appears twice" for name in _repeated(header) if name]
    faults += [f"column name {name!r} holds a line break" for name in header if _breaks(name)]
    if "email" not in (name.lower() for name in header):
        faults.append(f"no email column (columns: {', '.join(header)})")
    return faults


def _repeated(names: Sequence[str]) -> list[str]:
    return [name for name, count in Counter(names).items() if count > 1]


def _breaks(text: str) -> bool:
    return "\r" in text or "\n" in text or "\x00" in text


def inline_rows(items: Sequence[dict[str, Any]], node: yaml.Node | None) -> list[ProspectRow]:
    lines = [line_of(node, [i]) if node else None for i in range(len(items))]
    return [
        ProspectRow(item, "prospects", i + 1, inline=True, line=line)
        for i, (item, line) in enumerate(zip(items, lines, strict=True))
    ]


def to_prospect(
    row: ProspectRow, source: str, problems: list[Problem], bounds: InputBounds
) -> Prospect | None:
    """The validated prospect of ``row``, or None after adding its problems."""
    fault = row.fault or _row_too_big(row, bounds)
    if fault is not None:
        problems.append(Problem(source, row.where(), fault))
        return None
    before = len(problems)
    fields: dict[str, Any] = {}
    email = ""
    if "email" not in row.values:
        problems.append(Problem(source, row.where(), "has no email"))
    for key, value in row.values.items():
        try:
            if not isinstance(key, str) or _breaks(key):
                raise ValueError("a field name must be text on one line")
            if key == "email":
                email = normalize_address(value if isinstance(value, str) else str(value))
            else:
                fields[key] = _field_value(value, bounds.field_chars)
        except ValueError as exc:
            problems.append(Problem(source, row.at(str(key)), str(exc)))
    place = Place(None, "default")
    try:
        place = place_of(fields)
    except PlaceError as exc:
        problems.append(Problem(source, row.at(exc.column), str(exc)))
    return Prospect(email, fields, row.where(), place) if len(problems) == before else None


def _row_too_big(row: ProspectRow, bounds: InputBounds) -> str | None:
    size = sum(len(str(value)) for value in row.values.values())
    too_big = over(size, bounds.row_chars, "characters", "max_row_chars")
    return None if too_big is None else f"the row {too_big}"


def _field_value(value: Any, max_chars: int) -> Any:
    if isinstance(value, str):
        too_big = over(len(value), max_chars, "characters", "max_field_chars")
        if too_big is not None:
            raise ValueError(too_big)
        return forbid_controls(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")  # JSON, hence jsonb, has no NaN
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, date):
        return value.isoformat()  # YAML reads an unquoted 2024-05-01 as a date
    raise ValueError(f"must be text or a number, not {type(value).__name__}")


def deduplicate(prospects: Sequence[Prospect], source: str) -> tuple[list[Prospect], list[Problem]]:
    """The first prospect of every address (compared case-insensitively, like
    the database's unique index) and a warning for each one dropped."""
    first: dict[str, Prospect] = {}
    kept: list[Prospect] = []
    warnings: list[Problem] = []
    for prospect in prospects:
        earlier = first.setdefault(prospect.email.lower(), prospect)
        if earlier is prospect:
            kept.append(prospect)
        else:
            message = f"{prospect.email} repeats {earlier.where}; this one is dropped"
            warnings.append(Problem(source, prospect.where, message))
    return kept, warnings


def zone_summary(prospects: Sequence[Prospect]) -> str:
    """How many prospects got a time zone from which column, and how many fell back."""
    found = Counter(p.located().source for p in prospects)
    named = ", ".join(f"{found[s]} from {s}" for s in SOURCES[:-1] if found[s])
    return f"time zones: {named or 'none found'}; {found['default']} fell back to the default"
