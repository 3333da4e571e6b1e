"""Bounces (RFC 3464 and providers' own forms) and complaints (RFC 5965): who failed,
why, and which of our messages came back.

Each recipient block is judged on its own (``judge_failure``): only a gone address
(5.1.x, 5.2.1, or wording that says so) is ``hard``; no status code and no recognised
wording is ``unknown``. The returned message's Message-ID is looked for where
providers put it: an attached message/rfc822, a text/rfc822-headers part, or a
``Message-ID:`` line quoted in the text. It is what proves a report is about one of
our sends (inbox/evidence.py); the addresses a report names prove nothing.
"""

from __future__ import annotations

import email
import email.message
import re
from dataclasses import dataclass
from enum import StrEnum

from inbox.headers import first_id, raw_value, text, walk
from mail.replies import ReplyClass, classify_reply, enhanced_status, says_content, says_gone


class Verdict(StrEnum):
    """What one failed recipient of a bounce means."""

    HARD = "hard"  # the address is gone (5.1.x, 5.2.1): stop and suppress
    BLOCKED = "blocked"  # the recipient's server refused us (5.7.x, spam, policy): counted only
    SOFT = "soft"  # full mailbox, too big, content, system: recorded, no effect
    DELAYED = "delayed"  # 4.x.x / Action: delayed: still trying
    UNKNOWN = "unknown"  # no status code and no wording we know: recorded, no effect


@dataclass(frozen=True)
class Failure:
    recipient: str
    status: str | None
    diagnostic: str
    verdict: Verdict


ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)
_SMTP_LINE = re.compile(r"\b([245]\d\d)[ -]((?:[245]\.\d{1,3}\.\d{1,3})?[^\n]{0,300})")
# Where a text bounce starts quoting the returned message's header.
_QUOTED_HEADER = re.compile(r"^[>\s]*(From|To|Cc|Message-ID|Subject|Date|Received|Return-Path):", re.I | re.M)
_QUOTED_ID = re.compile(r"^[>\s]*Message-ID:\s*(<[^<>\s]{1,250}>)", re.I | re.M)
_SENDER_WORDING = re.compile(r"spam|blocked|block ?list|blacklist|reputation|policy|unsolicited", re.I)
MAX_FAILURES = 20
TEXT_LIMIT = 200_000


def body_text(msg: email.message.Message, limit: int = 20_000) -> str:
    """The first text/plain part, decoded as well as its charset allows."""
    for part in walk(msg):
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    return payload[:limit].decode(charset, "replace")
                except LookupError:
                    return payload[:limit].decode("utf-8", "replace")
    return ""


def returned_message_ids(msg: email.message.Message) -> tuple[str, ...]:
    """The Message-IDs of the message a report returns, in every form providers use."""
    found: list[str] = []
    for part in walk(msg):
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                found.append(first_id(inner[0].get("Message-ID")) or "")
        elif kind in ("text/rfc822-headers", "message/rfc822-headers", "text/rfc822-header"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                headers = email.message_from_bytes(payload[:64 * 1024])
                found.append(first_id(headers.get("Message-ID")) or "")
    # Providers that quote the original headers in the text (and those that strip the
    # attachment, leaving only the body).
    found.extend(_QUOTED_ID.findall(body_text(msg, TEXT_LIMIT))[:5])
    return tuple(dict.fromkeys(i for i in found if i))[:10]


def status_blocks(msg: email.message.Message) -> list[email.message.Message]:
    for part in walk(msg):
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            if isinstance(blocks, list):
                return [b for b in blocks[:MAX_FAILURES + 1] if isinstance(b, email.message.Message)]
            if isinstance(blocks, str):  # left unparsed: blank-line separated header blocks
                chunks = re.split(r"\r?\n\r?\n", blocks[:TEXT_LIMIT])[:MAX_FAILURES + 1]
                return [email.message_from_string(b) for b in chunks if b.strip()]
    return []


def dsn_failures(msg: email.message.Message) -> list[Failure]:
    found = [f for f in map(_failure, status_blocks(msg)) if f is not None]
    return found[:MAX_FAILURES]


def _failure(block: email.message.Message) -> Failure | None:
    recipient = address_field(block.get("Final-Recipient") or block.get("Original-Recipient"))
    if recipient is None:
        return None  # the per-message block
    action = raw_value(block.get("Action"), 100).strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return None
    status = enhanced_status(raw_value(block.get("Status"), 100)) or None
    diagnostic = text(block.get("Diagnostic-Code"))
    diagnostic = diagnostic.split(";", 1)[1].strip() if diagnostic.lower().startswith("smtp;") else diagnostic
    return Failure(recipient, status, diagnostic[:500], judge_failure(status, diagnostic, action))


def address_field(value: object) -> str | None:
    if value is None:
        return None
    found = raw_value(value, 1000).split(";", 1)[-1].strip()
    match = ADDRESS.search(found)
    return match.group(0).lower() if match else None


def judge_failure(status: str | None, diagnostic: str, action: str = "failed") -> Verdict:
    """One recipient of a DSN, judged through the SMTP reply table (mail/replies.py)
    but from the recipient's server: a 5.7.x or a spam/policy wording is ``blocked``
    (the address is fine), only a gone address is ``hard``, and without a status code
    or a wording we know, ``unknown``."""
    enhanced = status or enhanced_status(diagnostic)
    code_match = re.match(r"\s*([245]\d\d)\b", diagnostic)
    code = int(code_match.group(1)) if code_match else None
    if action == "delayed" or (enhanced or "").startswith("4.") or (code and code < 500 and not enhanced):
        return Verdict.DELAYED
    if enhanced is not None and enhanced.startswith("5.7."):
        return Verdict.BLOCKED
    if code is None and enhanced is None:
        return _by_wording(diagnostic)
    text_ = diagnostic if enhanced is None or enhanced in diagnostic else f"{enhanced} {diagnostic}"
    judged = classify_reply(code or 550, text_)
    if judged is ReplyClass.HARD_BOUNCE:
        gone = enhanced is None or enhanced.startswith("5.1.") or enhanced == "5.2.1" or says_gone(diagnostic)
        return Verdict.HARD if gone else Verdict.SOFT
    if judged in (ReplyClass.SENDER_PROBLEM, ReplyClass.QUOTA):
        return Verdict.BLOCKED
    return Verdict.DELAYED if code is not None and code < 500 else Verdict.SOFT


def _by_wording(diagnostic: str) -> Verdict:
    """No code at all: only words we know count."""
    if says_content(diagnostic):
        return Verdict.SOFT
    if says_gone(diagnostic):
        return Verdict.HARD
    if _SENDER_WORDING.search(diagnostic):
        return Verdict.BLOCKED
    return Verdict.UNKNOWN


def text_failures(msg: email.message.Message, own: str | None) -> list[Failure]:
    """A bounce without a delivery-status part (older Exchange "Undeliverable", Gmail's
    plain "Delivery Status Notification (Failure)"): the first SMTP reply in the text,
    for each address the text names that is not the bounce's own sender."""
    body = body_text(msg, TEXT_LIMIT)
    smtp = _SMTP_LINE.search(body)
    diagnostic = f"{smtp.group(1)} {smtp.group(2).strip()}" if smtp else ""
    status = enhanced_status(diagnostic) if diagnostic else enhanced_status(body[:20_000])
    recipients: list[str] = []
    quoted = _QUOTED_HEADER.search(body, 0, 20_000)
    for found in ADDRESS.findall(body[:quoted.start() if quoted else 20_000]):
        address = found.lower().rstrip(".")
        if address != own and address not in recipients and not BOUNCE_SENDER.search(address):
            recipients.append(address)
    verdict = judge_failure(status, diagnostic or body[:2000])
    return [Failure(r, status, diagnostic[:500], verdict) for r in recipients[:5]]


def complained_about(msg: email.message.Message) -> str | None:
    """The original recipient an RFC 5965 report names, if any."""
    for part in walk(msg):
        if part.get_content_type() == "message/feedback-report":
            blocks = part.get_payload()
            fields = blocks[0] if isinstance(blocks, list) and blocks else None
            if isinstance(fields, email.message.Message):
                found = address_field(fields.get("Original-Rcpt-To"))
                if found:
                    return found
    for part in walk(msg):
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                match = ADDRESS.search(raw_value(inner[0].get("To"), 1000))
                if match:
                    return match.group(0).lower()
    return None

