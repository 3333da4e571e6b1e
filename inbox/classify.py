"""One class for every inbound message, from its bytes alone (no database).

The rules, first match wins:
1. ``multipart/report; report-type=feedback-report`` (RFC 5965): complaint.
2. ``multipart/report; report-type=delivery-status`` (RFC 3464), or a provider's
   non-standard bounce (from a mailer daemon, with a bounce subject): bounce, each
   failed recipient judged by its Status and Diagnostic-Code (``judge_failure``).
3. Automatic replies (RFC 3834 Auto-Submitted, X-Autoreply, X-Autorespond,
   Precedence: auto_reply, out-of-office subjects): auto_reply.
4. Subject ``unsubscribe [TOKEN]`` or a first body line "unsubscribe": unsubscribe.
5. Anything else written by a person: a reply *candidate*; it is a reply only if the
   matching (store/inbound.py) finds the send it answers, else ``other``.

Whatever the bytes are (malformed MIME, unknown charsets), this never raises: a
message it cannot read is ``other`` with the reason in ``detail``.
"""

from __future__ import annotations

import email
import email.message
import re
from dataclasses import dataclass, replace
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from enum import StrEnum
from typing import Any

from mail.replies import ReplyClass, classify_reply, enhanced_status
from mail.unsubscribe import token_in_subject


class InboundClass(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    OTHER = "other"


class Verdict(StrEnum):
    """What one failed recipient of a bounce means."""

    HARD = "hard"  # the address is gone (5.1.x, 5.2.1): stop and suppress
    BLOCKED = "blocked"  # the recipient's server refused us (5.7.x, spam, policy): counted only
    SOFT = "soft"  # full mailbox, too big, temporary: recorded, no effect
    DELAYED = "delayed"  # 4.x.x / Action: delayed: still trying


@dataclass(frozen=True)
class Failure:
    recipient: str
    status: str | None
    diagnostic: str
    verdict: Verdict


@dataclass(frozen=True)
class Classified:
    kind: InboundClass
    message_id: str | None = None
    from_address: str | None = None
    subject: str = ""
    received_at: datetime | None = None
    # Message-IDs this message points at: In-Reply-To and References for a reply, the
    # returned message's Message-ID for a bounce or complaint.
    references: tuple[str, ...] = ()
    failures: tuple[Failure, ...] = ()  # bounce: each recipient's verdict
    complained_about: str | None = None  # complaint: the original recipient
    unsubscribe_token: str | None = None
    detail: str = ""
    headers_only: bool = False

    @property
    def verdict(self) -> Verdict | None:
        """A bounce's worst verdict (hard over blocked over soft over delayed)."""
        order = (Verdict.HARD, Verdict.BLOCKED, Verdict.SOFT, Verdict.DELAYED)
        found = {f.verdict for f in self.failures}
        return next((v for v in order if v in found), None)


_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")
_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe(?:\s+([A-Za-z0-9._~:=+/-]{1,200}))?\s*$", re.I)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster|mail delivery (sub)?system", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"delivery status notification \((failure|delay)\)|undeliverable|undelivered mail"
    r"|mail delivery failed|delivery (has )?failed|returned mail|failure notice"
    r"|message not delivered|delivery failure", re.I,
)
# Out-of-office subjects, in the languages cold email usually meets.
_OUT_OF_OFFICE = re.compile(
    r"out of (the )?office|automatic reply|auto(matic)?[- ]?reply|autoreply|away from (the )?office"
    r"|on (annual )?leave|abwesenheit|automatische antwort|au(ss|ß)er haus|absence|réponse automatique"
    r"|respuesta automática|fuera de la oficina|fuori ufficio|risposta automatica|afwezig"
    r"|automatisch antwoord|resposta automática|ausente|frånvaro|poza biurem|automatyczna odpowied",
    re.I,
)
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SMTP_LINE = re.compile(r"\b([245]\d\d)[ -]((?:[245]\.\d{1,3}\.\d{1,3})?[^\n]{0,300})")


def classify(raw: bytes, *, headers_only: bool = False) -> Classified:
    """The class of one message; ``headers_only`` when only its header was fetched."""
    try:
        msg = email.message_from_bytes(raw)
        return _classify(msg, headers_only)
    except Exception as exc:  # noqa: BLE001 - any byte string: never crash the reader
        return Classified(InboundClass.OTHER, detail=f"unreadable: {type(exc).__name__}")


def _classify(msg: email.message.Message, headers_only: bool) -> Classified:
    base = Classified(
        InboundClass.OTHER, message_id=_first_id(msg.get("Message-ID")),
        from_address=_from(msg), subject=_text(msg.get("Subject")), received_at=_date(msg),
        headers_only=headers_only,
    )
    content_type = msg.get_content_type()
    report = (msg.get_param("report-type") or "") if content_type == "multipart/report" else ""
    report = report.lower() if isinstance(report, str) else ""
    if report == "feedback-report":
        return _complaint(msg, base)
    if report == "delivery-status" or _looks_like_bounce(msg, base):
        return _bounce(msg, base)
    if _automatic(msg, base.subject):
        return _with(base, InboundClass.AUTO_REPLY, references=_references(msg))
    token = _unsubscribe(msg, base.subject, headers_only)
    if token is not None:
        return _with(base, InboundClass.UNSUBSCRIBE, references=_references(msg),
                     unsubscribe_token=token or None)
    return _with(base, InboundClass.REPLY, references=_references(msg))


def _with(base: Classified, kind: InboundClass, **changes: Any) -> Classified:
    return replace(base, kind=kind, **changes)


# -- headers -------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value)))).strip()
    except (LookupError, UnicodeError, ValueError):
        return str(value).strip()  # an unknown charset: the raw form still says something


def _from(msg: email.message.Message) -> str | None:
    _, address = parseaddr(str(msg.get("From", "")))
    return address.lower() if "@" in address else None


def _date(msg: email.message.Message) -> datetime | None:
    try:
        value = msg.get("Date")
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _first_id(value: object) -> str | None:
    found = _MSG_ID.findall(str(value or ""))
    return found[0] if found else None


def _references(msg: email.message.Message) -> tuple[str, ...]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in msg.get_all(name) or []:
            ids.extend(i for i in _MSG_ID.findall(str(value)) if i not in ids)
    return tuple(ids[:50])


def _automatic(msg: email.message.Message, subject: str) -> bool:
    auto = str(msg.get("Auto-Submitted", "")).strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    return _OUT_OF_OFFICE.search(subject) is not None


def _unsubscribe(msg: email.message.Message, subject: str, headers_only: bool) -> str | None:
    """The token ('' without one) if the message asks to unsubscribe, else None."""
    token = token_in_subject(subject)  # the mailto form of List-Unsubscribe, "Re: " or not
    if token is not None:
        return token
    match = _UNSUBSCRIBE_SUBJECT.match(subject)
    if match:
        return match.group(1) or ""
    if not headers_only:
        first = next((line.strip() for line in _body_text(msg).splitlines() if line.strip()), "")
        if first.lower().rstrip(".!") == "unsubscribe":
            return ""
    return None


def _body_text(msg: email.message.Message, limit: int = 20_000) -> str:
    """The first text/plain part, decoded as well as its charset allows."""
    for part in msg.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    return payload[:limit].decode(charset, "replace")
                except LookupError:
                    return payload[:limit].decode("utf-8", "replace")
    return ""


# -- bounces (RFC 3464) and complaints (RFC 5965) --------------------------------


def _looks_like_bounce(msg: email.message.Message, base: Classified) -> bool:
    sender = str(msg.get("From", "")) + " " + str(msg.get("Return-Path", ""))
    return _BOUNCE_SENDER.search(sender) is not None and _BOUNCE_SUBJECT.search(base.subject) is not None


def _returned_message_id(msg: email.message.Message) -> str | None:
    """The Message-ID of the message a report returns (message/rfc822 or its headers)."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                found = _first_id(inner[0].get("Message-ID"))
                if found:
                    return found
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                headers = email.message_from_bytes(payload)
                found = _first_id(headers.get("Message-ID"))
                if found:
                    return found
    # Providers that quote the original headers in the text.
    match = re.search(r"^Message-ID:\s*(<[^<>\s]+>)", _body_text(msg, 200_000), re.I | re.M)
    return match.group(1) if match else None


def _status_blocks(msg: email.message.Message) -> list[email.message.Message]:
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            if isinstance(blocks, list):
                return [b for b in blocks if isinstance(b, email.message.Message)]
            if isinstance(blocks, str):  # left unparsed: blank-line separated header blocks
                return [email.message_from_string(b) for b in re.split(r"\r?\n\r?\n", blocks) if b.strip()]
    return []


def _bounce(msg: email.message.Message, base: Classified) -> Classified:
    if base.headers_only:
        return _with(base, InboundClass.BOUNCE, detail="too large: classified from headers only")
    failures = [_failure(block) for block in _status_blocks(msg)]
    found = [f for f in failures if f is not None]
    if not found:
        found = _text_failures(msg, base)
    # Verdicts and codes only: the stored detail never holds an address (erasure, decision 0032).
    detail = "; ".join(f"{f.verdict} {f.status or ''}".strip() for f in found)[:500]
    return _with(base, InboundClass.BOUNCE, references=tuple(filter(None, [_returned_message_id(msg)])),
                 failures=tuple(found), detail=detail)


def _failure(block: email.message.Message) -> Failure | None:
    recipient = _address_field(block.get("Final-Recipient") or block.get("Original-Recipient"))
    if recipient is None:
        return None  # the per-message block
    action = str(block.get("Action", "")).strip().lower()
    status = (enhanced_status(str(block.get("Status", ""))) or None)
    diagnostic = _text(block.get("Diagnostic-Code"))
    diagnostic = diagnostic.split(";", 1)[1].strip() if diagnostic.lower().startswith("smtp;") else diagnostic
    if action in ("delivered", "relayed", "expanded"):
        return None
    return Failure(recipient, status, diagnostic[:500], judge_failure(status, diagnostic, action))


def _address_field(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).split(";", 1)[-1].strip()
    match = _ADDRESS.search(text)
    return match.group(0).lower() if match else None


def judge_failure(status: str | None, diagnostic: str, action: str = "failed") -> Verdict:
    """One recipient of a DSN, judged through the SMTP reply table (mail/replies.py)
    but from the recipient's server: a 5.7.x or a spam/policy wording is ``blocked``
    (the address is fine), only a bad mailbox or domain is ``hard``."""
    enhanced = status or enhanced_status(diagnostic)
    if action == "delayed" or (enhanced or "").startswith("4."):
        return Verdict.DELAYED
    if enhanced is not None and enhanced.startswith("5.7."):
        return Verdict.BLOCKED
    code_match = re.match(r"\s*([245]\d\d)\b", diagnostic)
    code = int(code_match.group(1)) if code_match else 550
    text = diagnostic if enhanced is None or enhanced in diagnostic else f"{enhanced} {diagnostic}"
    judged = classify_reply(code, text)
    if judged is ReplyClass.HARD_BOUNCE:
        gone = enhanced is None or enhanced.startswith("5.1.") or enhanced == "5.2.1"
        return Verdict.HARD if gone else Verdict.SOFT
    if judged is ReplyClass.SENDER_PROBLEM:
        return Verdict.BLOCKED
    if judged is ReplyClass.ACCEPTED:
        return Verdict.SOFT
    return Verdict.DELAYED if code < 500 else Verdict.SOFT


def _text_failures(msg: email.message.Message, base: Classified) -> list[Failure]:
    """A bounce without a delivery-status part (older Exchange "Undeliverable", Gmail's
    plain "Delivery Status Notification (Failure)"): the first SMTP reply in the text,
    for each address the text names that is not the bounce's own sender."""
    text = _body_text(msg, 200_000)
    smtp = _SMTP_LINE.search(text)
    diagnostic = f"{smtp.group(1)} {smtp.group(2).strip()}" if smtp else ""
    status = enhanced_status(diagnostic) if diagnostic else enhanced_status(text)
    own = {base.from_address}
    recipients: list[str] = []
    for found in _ADDRESS.findall(text.split("Message-ID:", 1)[0][:20_000]):
        address = found.lower().rstrip(".")
        if address not in own and address not in recipients and not _BOUNCE_SENDER.search(address):
            recipients.append(address)
    verdict = judge_failure(status, diagnostic or text[:300])
    return [Failure(r, status, diagnostic[:500], verdict) for r in recipients[:5]]


def _complaint(msg: email.message.Message, base: Classified) -> Classified:
    recipient = None
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            blocks = part.get_payload()
            fields = blocks[0] if isinstance(blocks, list) and blocks else None
            if isinstance(fields, email.message.Message):
                recipient = _address_field(fields.get("Original-Rcpt-To"))
    if recipient is None:
        for part in msg.walk():
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()
                if isinstance(inner, list) and inner and isinstance(inner[0], email.message.Message):
                    addresses = getaddresses([str(inner[0].get("To", ""))])
                    recipient = next((a.lower() for _, a in addresses if "@" in a), None)
    return _with(base, InboundClass.COMPLAINT, complained_about=recipient,
                 references=tuple(filter(None, [_returned_message_id(msg)])),
                 detail="feedback report" if recipient else "feedback report, recipient unknown")
