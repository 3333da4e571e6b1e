"""The string rules every spec shares.

Anything that may become an SMTP header (addresses, subjects, names, ids) must
not hold CR or LF: one line break lets a value inject its own headers. Nothing
may hold NUL, which PostgreSQL text cannot store. Prospect fields, which go into
headers and body lines alike, hold no other control character either
(``forbid_controls``).
"""

from __future__ import annotations

import re
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")


def forbid_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def forbid_line_breaks(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain a line break (CR or LF)")
    return forbid_nul(value)


# Besides CR, LF and NUL: the other C0 controls but tab, DEL, C1 (U+0085 NEXT LINE among
# them) and the Unicode line and paragraph separators. No header or body line can hold
# one: Python's email package and many readers break a line at U+2028 and U+0085, and a
# control character in a header is refused at send time, every time.
_CONTROLS = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_NAMES = {"\x85": "NEXT LINE", "\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR"}


def forbid_controls(value: str) -> str:
    """One line of text that can go into a header or a body line, or ValueError naming
    the first character that cannot."""
    forbid_line_breaks(value)
    found = _CONTROLS.search(value)
    if found is not None:
        char = found.group()
        name = _CONTROL_NAMES.get(char, "a control character")
        raise ValueError(f"must not contain U+{ord(char):04X} ({name}) at character"
                         f" {found.start() + 1}: no header or body line can hold it")
    return value


def check_slug(value: str) -> str:
    if not _SLUG.fullmatch(value):
        raise ValueError(f"{value!r} is not an id: use 1-64 letters, digits, '-' or '_'")
    return value


def normalize_address(value: str) -> str:
    """The normalized form of an email address, or ValueError saying why not.

    Non-ASCII local parts (SMTPUTF8) are refused here as they are at send time
    (mail/message.py): better at import than as a failed send."""
    forbid_line_breaks(value)
    try:
        valid = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
        return valid.normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid address ({exc})") from exc


OneLine = Annotated[str, AfterValidator(forbid_line_breaks)]
Text = Annotated[str, Field(min_length=1), AfterValidator(forbid_nul)]
Slug = Annotated[str, AfterValidator(check_slug)]
Address = Annotated[str, AfterValidator(normalize_address)]
# A From header's display name: one line, short enough to show whole in a list of mail.
DisplayName = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(forbid_line_breaks)]


class SpecModel(BaseModel):
    # A misspelt key ("dialy_limit") must fail loudly, not fall back to a default.
    model_config = ConfigDict(extra="forbid")
