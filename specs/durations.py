"""Step delays written the way operators say them: ``3d``, ``2h``, ``1d12h``."""

from __future__ import annotations

import re

# Units in falling order, each at most once, so "1d12h" reads one way only.
_DELAY = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_SECONDS = (86400, 3600, 60, 1)
# Longer than any follow-up cadence; also catches typos like "300d" for "30d"
# and keeps the value far inside PostgreSQL's bigint.
MAX_DELAY_SECONDS = 365 * 86400


def parse_delay(text: str) -> int:
    """Seconds in ``text``: ``0``, or numbers with units d, h, m, s (``1d12h``)."""
    value = text.strip()
    if value == "0":
        return 0
    match = _DELAY.fullmatch(value)
    if not value or match is None:
        raise ValueError(f"not a delay: {text!r} (write e.g. 3d, 2h, 15m, 30s, 1d12h or 0)")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)
    if seconds > MAX_DELAY_SECONDS:
        raise ValueError(f"delay {text!r} is longer than 365 days")
    return seconds
