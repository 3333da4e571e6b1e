"""Text that reaches an operator's terminal, made inert (docs/decisions/0047).

Much of what the CLI prints was written by someone else: a recipient server's
reply, a DSN, an IMAP error, a DNS record, a reason stored with an entry. A
terminal obeys control characters wherever they come from: ESC starts a
sequence that can retitle the window, rewrite the screen or, on some
terminals, answer back as if typed; BEL rings; CR overwrites the line. Bidi
overrides and the Unicode line separators make a line read other than it is.
``printable`` shows each such character as an escape (``\\x1b``, ``\\u2028``)
so the operator sees that it was there, and nothing acts on it.
"""

from __future__ import annotations

import re

# C0 but tab and newline (those two are kept or escaped by the caller's choice),
# DEL, C1, the Unicode line and paragraph separators, and the bidi controls
# (ALM, LRM, RLM, the embeddings and overrides, the isolates).
_ALWAYS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_ALWAYS}\t\n]")
_UNSAFE_KEEPING_LINES = re.compile(f"[{_ALWAYS}]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    # Inside a JSON string \uXXXX is the same character, so the document still parses
    # to the same value.
    return f"\\u{ord(match.group()):04x}"


def printable(text: str, *, keep_lines: bool = False, json: bool = False) -> str:
    """``text`` with every control character escaped. ``keep_lines`` keeps tab and
    newline, for output whose format is several lines (a multi-line error, a table);
    a single field (a reply) escapes them too, so it cannot forge a line of its own.
    ``json``: ``text`` is a JSON document (``json.dumps`` escapes C0 itself, not C1,
    DEL or U+2028), escaped the way JSON escapes."""
    pattern = _UNSAFE_KEEPING_LINES if keep_lines or json else _UNSAFE
    return pattern.sub(_json_escaped if json else _escaped, text)
