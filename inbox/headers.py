"""Reading a stranger's message at a bounded cost: the parse, each header's decoding,
and the parts walked each have a ceiling (issue 22, item 3).

Why each bound: ``decode_header`` is quadratic in the length of a line of encoded
words (a 2 MiB Diagnostic-Code took 26 s of CPU), the stdlib parser recurses once per
nested multipart (a few thousand levels end in RecursionError, after seconds), and
every ``msg.get`` scans all header lines. What is cut is said in ``Parsed.cut`` and
ends up in the message's recorded reason.
"""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.utils import getaddresses

HEADER_DECODE_CHARS = 4096  # one header's text, before decoding encoded words
HEADER_BLOCK_BYTES = 256 * 1024  # a message's header section
MAX_DELIMITERS = 1000  # lines starting "--" (MIME part delimiters) in a message parsed whole
MAX_MULTIPARTS = 50  # nested or sibling multiparts (boundary parameters)
MAX_PARTS_WALKED = 200

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_DELIMITER = re.compile(rb"^--", re.M)
_BOUNDARY = re.compile(rb"boundary\s*=", re.I)


@dataclass(frozen=True)
class Parsed:
    msg: email.message.Message
    headers_only: bool  # the body was not parsed (not fetched, or over a bound)
    cut: str = ""  # which bound cut the message, for its recorded reason


def parse(raw: bytes, *, headers_only: bool) -> Parsed:
    """The message, its header section capped, its body parsed only if its structure
    is within bounds (counted on the bytes before the recursive parser sees them)."""
    end = _HEADER_END.search(raw, 0, HEADER_BLOCK_BYTES + 4)
    cut = ""
    if end is None and len(raw) > HEADER_BLOCK_BYTES:
        # Cut mid-line if need be: a field's first kilobytes still say something.
        raw = raw[:HEADER_BLOCK_BYTES] + b"\r\n\r\n"
        headers_only, cut = True, "header section over 256 KiB: read in part"
    elif not headers_only and _too_many(_DELIMITER, raw, MAX_DELIMITERS):
        headers_only, cut = True, f"over {MAX_DELIMITERS} MIME parts: classified from headers only"
    elif not headers_only and _too_many(_BOUNDARY, raw, MAX_MULTIPARTS):
        headers_only, cut = True, f"over {MAX_MULTIPARTS} multiparts: classified from headers only"
    if headers_only:
        msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
    else:
        msg = email.message_from_bytes(raw)
    return Parsed(msg, headers_only, cut)


def _too_many(pattern: re.Pattern[bytes], raw: bytes, limit: int) -> bool:
    return any(n > limit for n, _ in enumerate(pattern.finditer(raw), start=1))


def walk(msg: email.message.Message) -> Iterator[email.message.Message]:
    """``msg.walk()``, stopping after MAX_PARTS_WALKED parts."""
    for n, part in enumerate(msg.walk()):
        if n >= MAX_PARTS_WALKED:
            return
        yield part


def text(value: object, limit: int = HEADER_DECODE_CHARS) -> str:
    """A header's text with its encoded words decoded; only its first ``limit`` characters."""
    if value is None:
        return ""
    raw = str(value)[:limit]
    try:
        return str(make_header(decode_header(raw))).strip()
    except (LookupError, UnicodeError, ValueError):
        return raw.strip()  # an unknown charset: the raw form still says something


def raw_value(value: object, limit: int = HEADER_DECODE_CHARS) -> str:
    """A header's undecoded text, capped (for fields that hold no encoded words)."""
    return "" if value is None else str(value)[:limit]


_ADDR_SPEC = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")


def from_address(msg: email.message.Message) -> str | None:
    """The one address of the From header, or None: a missing From, more than one From
    header or mailbox, an unparseable one, or a display name that is itself an address
    (``alice@victim.example <eve@attacker.example>``: a reader sees alice, the
    envelope is eve's) never names anyone."""
    values = msg.get_all("From") or []
    if len(values) != 1:
        return None
    value = raw_value(values[0], 1000)
    try:
        pairs = getaddresses([value], strict=True)  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # a Python without the strict parser (before 3.11.10 / 3.12.6)
        pairs = getaddresses([value])
    if len(pairs) != 1 or "@" in text(pairs[0][0]):
        return None
    try:  # the header registry's RFC 5322 parser must agree, without a defect
        header = email.policy.default.header_factory("From", value)
    except (ValueError, IndexError, TypeError, AttributeError):
        return None
    addresses: tuple[object, ...] = getattr(header, "addresses", ())
    if header.defects or len(addresses) != 1 or not isinstance(addresses[0], Address):
        return None
    address = addresses[0].addr_spec
    if address != pairs[0][1] or _ADDR_SPEC.fullmatch(address) is None:
        return None
    return address.lower()


MSG_ID = re.compile(r"<[^<>\s]{1,250}>")


def message_ids(value: object, limit: int = 50) -> list[str]:
    return MSG_ID.findall(raw_value(value, 20_000))[:limit]


def first_id(value: object) -> str | None:
    found = message_ids(value, 1)
    return found[0] if found else None
