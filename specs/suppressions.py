"""Do-not-contact entries as the operator writes them: one address or ``@domain``, on the
command line or in a CSV file (docs/decisions/0026).

An entry is stored in one canonical form, so that ``Joe@Bücher.DE``,
``joe@xn--bcher-kva.de`` and ``JOE@bücher.de`` are one entry: the address as
the project's validation normalizes it (``specs.scalars.normalize_address``:
email-validator, the domain IDNA-mapped to its Unicode form), then lower-cased.
Prospect addresses are stored normalized by the same function, so the database
compares ``lower(prospects.email)`` with an entry directly. Local parts are not
otherwise rewritten (no dot or ``+tag`` folding): only the address's own domain
knows whether ``j.doe`` and ``jdoe`` are one mailbox.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from specs import Problem, SpecError
from specs.bounds import InputBounds, file_too_big, over
from specs.csv_cells import original_cell
from specs.scalars import forbid_line_breaks, normalize_address

# An erasure entry, as exported: ``hmac:<key id>:<64 hex digits>`` (docs/decisions/0032).
_HASHED = re.compile(r"^hmac:[A-Za-z0-9_.-]{1,32}:[0-9a-f]{64}$")

# The CSV columns: ``address`` is required; an export's other columns are read back
# without effect (an import's entries get the scope and source the import gives).
ADDRESS, REASON = "address", "reason"
EXPORT_COLUMNS = (ADDRESS, REASON, "source", "scope", "created_at")


def canonical_entry(text: str) -> str:
    """``local@domain`` or ``@domain`` in canonical form, or ValueError saying why not."""
    text = text.strip()
    if _HASHED.match(text):  # an erased address's keyed hash (store/address_hash.py), kept as is
        return text
    if text.startswith("@"):
        # The domain is validated as the domain of an address, by the same rules.
        try:
            normalized = normalize_address("postmaster" + text)
        except ValueError as exc:
            raise ValueError(f"not a valid domain ({exc.__cause__ or exc})") from exc
        return "@" + normalized.rsplit("@", 1)[1].lower()
    if "@" not in text and "." in text:
        raise ValueError(f"not an address; for a whole domain write @{text}")
    return normalize_address(text).lower()


def is_domain(entry: str) -> bool:
    return entry.startswith("@")


@dataclass(frozen=True)
class SuppressionRow:
    entry: str  # canonical
    reason: str | None


def read_suppressions_csv(path: Path, bounds: InputBounds | None = None) -> list[SuppressionRow]:
    """Every entry of a CSV file with a header row, or SpecError naming each bad row and
    column (row 1 is the header, as a spreadsheet numbers it). An entry given twice is
    kept once, with the first row's reason."""
    source = str(path)
    bounds = bounds or InputBounds.from_settings()
    too_big = file_too_big(path, bounds)
    if too_big is not None:
        raise SpecError([Problem(source, "", f"the file {too_big}")])
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            reader = csv.reader(file)
            try:
                rows, problems = _parse(reader, source, bounds)
            except (csv.Error, UnicodeDecodeError) as exc:
                raise SpecError([Problem(source, f"near line {reader.line_num}",
                                         f"cannot read it ({exc})")]) from exc
    except OSError as exc:
        raise SpecError([Problem(source, "", f"cannot read the file ({exc})")]) from exc
    if problems:
        raise SpecError(problems)
    return rows


def _parse(
    reader: Iterator[list[str]], source: str, bounds: InputBounds
) -> tuple[list[SuppressionRow], list[Problem]]:
    header = [name.strip().lower() for name in next(reader, [])]
    problems = [Problem(source, "row 1 (header)", m) for m in _header_faults(header)]
    if problems:
        return [], problems
    kept: dict[str, SuppressionRow] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):  # blank lines, and a spreadsheet's empty rows
            continue
        if len(cells) != len(header):
            message = f"has {len(cells)} cells, the header has {len(header)}"
            problems.append(Problem(source, f"row {number}", message))
            continue
        # A cell our export (or a spreadsheet) quoted as text, '=..., reads as its value.
        values = dict(zip(header, map(original_cell, cells), strict=True))
        row = _row(values, f"row {number}", source, bounds, problems)
        if row is not None:
            kept.setdefault(row.entry, row)
    return list(kept.values()), problems


def _header_faults(header: list[str]) -> list[str]:
    if not header or header == [""]:
        return ["the file is empty: it needs a header row with an address column"]
    faults = [f"column {i} has no name" for i, name in enumerate(header, 1) if not name]
    faults += [f"column {name!r} appears twice" for name in sorted(set(header))
               if name and header.count(name) > 1]
    faults += [f"unknown column {name!r} (known: {', '.join(EXPORT_COLUMNS)})"
               for name in header if name and name not in EXPORT_COLUMNS]
    if ADDRESS not in header:
        faults.append(f"no {ADDRESS} column (columns: {', '.join(header)})")
    return faults


def _row(
    values: dict[str, str], where: str, source: str, bounds: InputBounds, problems: list[Problem]
) -> SuppressionRow | None:
    before = len(problems)
    entry = reason = None
    try:
        entry = canonical_entry(values[ADDRESS])
    except ValueError as exc:
        problems.append(Problem(source, f"{where}, column {ADDRESS}", str(exc)))
    try:
        reason = checked_reason(values.get(REASON, ""), bounds)
    except ValueError as exc:
        problems.append(Problem(source, f"{where}, column {REASON}", str(exc)))
    if len(problems) > before or entry is None:
        return None
    return SuppressionRow(entry, reason)


def checked_reason(text: str, bounds: InputBounds | None = None) -> str | None:
    """A reason is one line of bounded text (it is shown in listings); empty is none."""
    bounds = bounds or InputBounds.from_settings()
    too_long = over(len(text), bounds.field_chars, "characters", "max_field_chars")
    if too_long is not None:
        raise ValueError(too_long)
    return forbid_line_breaks(text).strip() or None
