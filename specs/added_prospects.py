"""Prospects added to an existing campaign: a CSV file read by the rules of
``campaigns create`` (all or nothing; every problem names its row and column) and
checked against the campaign's stored steps, so a send never meets a template field
its prospect lacks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from specs import Problem, SpecError
from specs.bounds import InputBounds
from specs.campaigns import StepSpec, template_problems
from specs.prospects import Prospect, deduplicate, read_csv, to_prospect


@dataclass(frozen=True)
class LoadedProspects:
    prospects: list[Prospect]  # validated, normalized, first of each address only
    warnings: list[Problem]  # repeated addresses within the file, dropped
    source: str


def load_prospects_csv(
    path: str | Path, steps: list[StepSpec], bounds: InputBounds | None = None
) -> LoadedProspects:
    """Reads ``path`` and checks each row against ``steps``; raises SpecError listing
    every problem, or returns the prospects and the warnings for repeated rows."""
    bounds = bounds or InputBounds.from_settings()
    label = str(path)
    csv_file = read_csv(Path(path), label, "", bounds)
    if csv_file.problems:  # the file itself is unusable (too big, too many rows, bad header)
        raise SpecError(csv_file.problems)
    problems: list[Problem] = []
    valid = [p for row in csv_file.rows if (p := to_prospect(row, "", problems, bounds)) is not None]
    prospects, warnings = deduplicate(valid, "")
    problems += template_problems(steps, prospects, csv_file.columns, label, "", bounds)
    if not prospects and not problems:
        problems.append(Problem("", label, "has no prospects"))
    if problems:
        raise SpecError(problems)
    return LoadedProspects(prospects, warnings, label)
