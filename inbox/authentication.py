"""Whether the mailbox provider vouches for a message's From (RFC 8601
Authentication-Results; docs/decisions/0050).

Anyone can write an Authentication-Results header into the message they send; only
the one the mailbox's own provider adds counts. Providers name themselves in it (the
authserv-id: ``mx.google.com`` at Gmail) and remove headers that claim their name
from incoming mail, so a header with the trusted authserv-id is theirs. Microsoft 365
writes its header without an authserv-id (``Authentication-Results: spf=pass ...``):
for it the setting is ``topmost``, the first Authentication-Results of the message,
which the provider prepends above anything the sender wrote.

A message is vouched for when that header says ``dmarc=pass`` for the From domain, or
``dkim=pass`` (header.d) or ``spf=pass`` (smtp.mailfrom) for a domain aligned with it
(equal, or one a subdomain of the other: DMARC's relaxed alignment, without the public
suffix list, so a parent domain of one label never aligns).
"""

from __future__ import annotations

import email.message
import re

from inbox.headers import raw_value

TOPMOST = "topmost"
MAX_HEADERS = 20

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9-]+)\s*=\s*([a-z]+)\b(.*)$", re.I | re.S)
_PROPERTY = re.compile(r"\b(header\.from|header\.d|header\.i|smtp\.mailfrom)\s*=\s*([^\s;]+)", re.I)


def vouched(msg: email.message.Message, trusted: str | None, from_domain: str | None) -> str | None:
    """The method that vouches for ``from_domain`` ('dmarc', 'dkim' or 'spf') in the
    trusted provider's header, or None."""
    if not trusted or not from_domain:
        return None
    passed = set()
    for results in _trusted_headers(msg, trusted.lower()):
        for method, result, props in results:
            if result != "pass":
                continue
            if method == "dmarc" and _aligned(props.get("header.from"), from_domain, exact=True):
                passed.add("dmarc")
            if method == "dkim" and _aligned(props.get("header.d") or props.get("header.i"), from_domain):
                passed.add("dkim")
            if method == "spf" and _aligned(props.get("smtp.mailfrom"), from_domain):
                passed.add("spf")
    return next((m for m in ("dmarc", "dkim", "spf") if m in passed), None)


Result = tuple[str, str, dict[str, str]]


def _trusted_headers(msg: email.message.Message, trusted: str) -> list[list[Result]]:
    values = [raw_value(v) for v in (msg.get_all("Authentication-Results") or [])[:MAX_HEADERS]]
    found = []
    for n, value in enumerate(values):
        authserv_id, results = _parse(value)
        if (trusted == TOPMOST and n == 0) or (authserv_id is not None and authserv_id == trusted):
            found.append(results)
    return found


def _parse(value: str) -> tuple[str | None, list[Result]]:
    """(authserv-id or None when the header starts with a result, results)."""
    text = _COMMENT.sub(" ", _COMMENT.sub(" ", value))
    pieces = [p.strip() for p in text.split(";")]
    authserv_id: str | None = None
    if pieces and "=" not in pieces[0]:
        first = pieces.pop(0).split()
        authserv_id = first[0].lower() if first else None
    results: list[Result] = []
    for piece in pieces:
        match = _RESULT.match(piece)
        if match is None:
            continue
        props = {k.lower(): v.strip('"').lower() for k, v in _PROPERTY.findall(match.group(3))}
        results.append((match.group(1).lower(), match.group(2).lower(), props))
    return authserv_id, results


def _aligned(domain: str | None, from_domain: str, *, exact: bool = False) -> bool:
    if not domain:
        return False
    domain = domain.rsplit("@", 1)[-1].strip(".<>").lower()
    from_domain = from_domain.lower()
    if domain == from_domain:
        return True
    if exact:
        return False
    shorter, longer = sorted((domain, from_domain), key=len)
    return "." in shorter and longer.endswith("." + shorter)
