"""Size bounds on the operator's input: files, prospects, fields, subjects, bodies.

An unbounded input is a way to exhaust a worker's memory or a provider's
patience; each bound is a setting (``OUTREACH_MAX_*``), named in its error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings, get_settings


@dataclass(frozen=True)
class InputBounds:
    file_bytes: int
    prospects: int
    field_chars: int
    row_chars: int
    subject_chars: int
    body_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> InputBounds:
        s = settings or get_settings()
        return cls(s.max_input_file_bytes, s.max_prospects, s.max_field_chars, s.max_row_chars,
                   s.max_subject_chars, s.max_body_bytes)


def over(size: int, limit: int, unit: str, setting: str) -> str | None:
    """The complaint about ``size`` if it exceeds ``limit``, naming the setting."""
    if size <= limit:
        return None
    return f"is {size} {unit}, over the limit of {limit} (OUTREACH_{setting.upper()})"


def file_too_big(path: Path, bounds: InputBounds) -> str | None:
    """Checked before reading, so a huge file is never loaded; None if it fits
    (or cannot be read: the reader reports that itself)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return over(size, bounds.file_bytes, "bytes", "max_input_file_bytes")
