"""One class for every inbound message, from its bytes alone (no database).

The rules, first match wins:
1. ``multipart/report; report-type=feedback-report`` (RFC 5965): complaint.
2. ``multipart/report; report-type=delivery-status`` (RFC 3464), or a provider's
   non-standard bounce (from a mailer daemon, with a bounce subject): bounce, each
   failed recipient judged by its Status and Diagnostic-Code (inbox/dsn.py).
3. Automatic replies (RFC 3834 Auto-Submitted, X-Autoreply, X-Autorespond,
   Precedence: auto_reply, out-of-office subjects): auto_reply.
4. Subject ``unsubscribe [TOKEN]`` or a first body line "unsubscribe": unsubscribe.
5. Anything else written by a person: a reply *candidate*; it is a reply only if the
   matching (inbox/evidence.py) finds the send it answers, else ``other``.

A person's message (3-5) also gets its intent (inbox/intent.py): interested, meeting,
not_interested, out_of_office, ..., from its latest text with quotes and signature cut.

A class is not a proof: what a message may change is decided from what it carries
(inbox/evidence.py, docs/decisions/0050). This module only reads, at a bounded cost
(inbox/headers.py), and never raises: a message it cannot read is ``other`` with the
reason in ``detail``.
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from inbox import dsn
from inbox.authentication import vouched
from inbox.dsn import Failure, Verdict, judge_failure
from inbox.headers import first_id, from_address, message_ids, parse, raw_value, text, walk
from inbox.intent import Intent, IntentClass, html_text, judge
from mail.unsubscribe import token_in_subject

__all__ = ["Classified", "Failure", "InboundClass", "Verdict", "classify", "judge_failure"]


class InboundClass(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    OTHER = "other"


@dataclass(frozen=True)
class Classified:
    kind: InboundClass
    message_id: str | None = None
    from_address: str | None = None  # None unless From names exactly one address, plainly
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
    # The mailbox provider's Authentication-Results vouch for From ('dmarc', 'dkim',
    # 'spf'), or None (inbox/authentication.py).
    authenticated: str | None = None
    intent: Intent | None = None  # a person's message: what it means (inbox/intent.py)

    @property
    def verdict(self) -> Verdict | None:
        """A bounce's worst verdict (hard over blocked over soft over delayed); what is
        applied is the verdict of the one block the proof names (inbox/evidence.py)."""
        order = (Verdict.HARD, Verdict.BLOCKED, Verdict.SOFT, Verdict.DELAYED, Verdict.UNKNOWN)
        found = {f.verdict for f in self.failures}
        return next((v for v in order if v in found), None)


_UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe(?:\s+([A-Za-z0-9._~:=+/-]{1,200}))?\s*$", re.I)
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


def classify(raw: bytes, *, headers_only: bool = False, authserv_id: str | None = None) -> Classified:
    """The class of one message; ``headers_only`` when only its header was fetched;
    ``authserv_id``: whose Authentication-Results to believe (the mailbox's provider)."""
    try:
        parsed = parse(raw, headers_only=headers_only)
        found = _classify(parsed.msg, parsed.headers_only, authserv_id)
    except Exception as exc:  # noqa: BLE001 - any byte string: never crash the reader
        return Classified(InboundClass.OTHER, detail=f"unreadable: {type(exc).__name__}")
    if parsed.cut:
        found = replace(found, detail="; ".join(filter(None, [found.detail, parsed.cut]))[:500])
    return found


def _classify(msg: email.message.Message, headers_only: bool, authserv_id: str | None) -> Classified:
    sender = from_address(msg)
    base = Classified(
        InboundClass.OTHER, message_id=first_id(msg.get("Message-ID")), from_address=sender,
        subject=text(msg.get("Subject")), received_at=_date(msg), headers_only=headers_only,
        authenticated=vouched(msg, authserv_id, sender.rsplit("@", 1)[1] if sender else None),
    )
    content_type = msg.get_content_type()
    report = (msg.get_param("report-type") or "") if content_type == "multipart/report" else ""
    report = report.lower() if isinstance(report, str) else ""
    if report == "feedback-report":
        return _complaint(msg, base)
    if report == "delivery-status" or _looks_like_bounce(msg, base):
        return _bounce(msg, base)
    if _automatic(msg, base.subject):
        return _with(base, InboundClass.AUTO_REPLY, references=_references(msg),
                     intent=_intent(msg, base, automatic=True))
    token = _unsubscribe(msg, base.subject, headers_only)
    if token is not None:
        return _with(base, InboundClass.UNSUBSCRIBE, references=_references(msg),
                     unsubscribe_token=token or None,
                     intent=Intent(IntentClass.UNSUBSCRIBE, 1.0, "unsubscribe subject or first line"))
    return _with(base, InboundClass.REPLY, references=_references(msg), intent=_intent(msg, base))


def _intent(msg: email.message.Message, base: Classified, automatic: bool = False) -> Intent:
    body = "" if base.headers_only else (dsn.body_text(msg) or _html_body(msg))
    return judge(body, subject=base.subject, automatic=automatic, received_at=base.received_at)


def _html_body(msg: email.message.Message, limit: int = 100_000) -> str:
    """The visible text of the first text/html part, for replies sent as HTML only."""
    for part in walk(msg):
        if part.get_content_type() == "text/html" and not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                try:
                    decoded = payload[:limit].decode(part.get_content_charset() or "utf-8", "replace")
                except LookupError:  # a charset Python does not know
                    decoded = payload[:limit].decode("utf-8", "replace")
                return html_text(decoded)
    return ""


def _with(base: Classified, kind: InboundClass, **changes: Any) -> Classified:
    return replace(base, kind=kind, **changes)


def _date(msg: email.message.Message) -> datetime | None:
    try:
        value = raw_value(msg.get("Date"), 200)
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None


def _references(msg: email.message.Message) -> tuple[str, ...]:
    ids: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in (msg.get_all(name) or [])[:10]:
            ids.extend(i for i in message_ids(value) if i not in ids)
    return tuple(ids[:50])


def _automatic(msg: email.message.Message, subject: str) -> bool:
    auto = raw_value(msg.get("Auto-Submitted"), 200).strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return True
    if raw_value(msg.get("Precedence"), 200).strip().lower() == "auto_reply":
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
        first = next((line.strip() for line in dsn.body_text(msg).splitlines() if line.strip()), "")
        if first.lower().rstrip(".!") == "unsubscribe":
            return ""
    return None


# -- bounces (RFC 3464) and complaints (RFC 5965): inbox/dsn.py --------------------


def _looks_like_bounce(msg: email.message.Message, base: Classified) -> bool:
    sender = raw_value(msg.get("From"), 1000) + " " + raw_value(msg.get("Return-Path"), 1000)
    return dsn.BOUNCE_SENDER.search(sender) is not None and _BOUNCE_SUBJECT.search(base.subject) is not None


def _bounce(msg: email.message.Message, base: Classified) -> Classified:
    if base.headers_only:
        return _with(base, InboundClass.BOUNCE, detail="too large: classified from headers only")
    found = dsn.dsn_failures(msg) or dsn.text_failures(msg, base.from_address)
    # Verdicts and codes only: the stored detail never holds an address (erasure, decision 0032).
    detail = "; ".join(f"{f.verdict} {f.status or ''}".strip() for f in found)[:500]
    return _with(base, InboundClass.BOUNCE, references=dsn.returned_message_ids(msg),
                 failures=tuple(found), detail=detail)


def _complaint(msg: email.message.Message, base: Classified) -> Classified:
    recipient = None if base.headers_only else dsn.complained_about(msg)
    references = () if base.headers_only else dsn.returned_message_ids(msg)
    return _with(base, InboundClass.COMPLAINT, complained_about=recipient, references=references,
                 detail="feedback report" if recipient else "feedback report, recipient unknown")

