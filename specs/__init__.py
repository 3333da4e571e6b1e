"""The operator's input files (mailboxes, campaigns, prospects), validated before
anything reaches the database or a template reaches SMTP.

Errors::

    ValueError
     ├── SpecError      one or more Problems in an input file or spec; all are
     │                  collected, each naming its file, place and rule
     └── BadTemplate    a template that does not parse or does not render
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# A 100k-row file can hold 100k problems; the message shows the first ones,
# ``SpecError.problems`` keeps them all.
_SHOWN = 50


@dataclass(frozen=True)
class Problem:
    """One broken rule. ``location`` is e.g. ``steps[2].delay (line 12)`` (list
    positions count from 1, like step numbers) or ``prospects.csv line 14, column
    email`` (CSV lines count the header as line 1)."""

    file: str
    location: str
    message: str

    def __str__(self) -> str:
        parts = [self.file, self.location, self.message]
        return ": ".join(p for p in parts if p)


class SpecError(ValueError):
    """The input breaks rules; ``problems`` lists every one found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        lines = [str(p) for p in self.problems[:_SHOWN]]
        if len(self.problems) > _SHOWN:
            lines.append(f"... and {len(self.problems) - _SHOWN} more problems")
        super().__init__("\n".join(lines) or "invalid input")


class BadTemplate(ValueError):
    """A subject or body template that does not parse, or fails to render."""
