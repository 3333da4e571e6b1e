"""What an inbound message proves, and so what it may change (docs/decisions/0050).

- A bounce or complaint acts only on proof: it carries one of our keyed Message-IDs
  (found in ``sent_messages`` for this mailbox) and, for a bounce, the failed
  recipient of the block applied is that send's recipient; each block is judged on its
  own. The addresses a report names prove nothing: anyone can write them.
- A verified unsubscribe token acts on the send it names; one that does not verify
  acts on nobody.
- A reply or unsubscribe that names one of our Message-IDs from the recipient's domain
  acts in full. One matched by its From address alone acts in full only when the
  mailbox provider vouches for that From (inbox/authentication.py); without that it
  may stop the one sequence it names (the safe direction for the recipient), and
  nothing more: no list, nothing workspace-wide, no rate.

Anything short of proof is still recorded, with the reason, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog

from config.secrets import KeyRing
from inbox.classify import Classified, InboundClass
from inbox.dsn import Verdict
from mail.unsubscribe import BadToken, verify
from store import inbound
from store.inbound import Match

log = structlog.get_logger(__name__)


class Short(StrEnum):
    """Why a message is not proof enough to act in full (a metric label)."""

    NO_MESSAGE_ID = "no_message_id"  # a report naming no Message-ID of ours
    OTHER_RECIPIENT = "other_recipient"  # our Message-ID, but the failure is someone else's
    UNAUTHENTICATED = "unauthenticated"  # matched by From, which the provider did not vouch for
    BAD_TOKEN = "bad_token"  # an unsubscribe token that does not verify
    NO_FROM = "no_from"  # no From that names exactly one address


@dataclass(frozen=True)
class Evidence:
    match: Match | None
    proven: bool  # acts in full
    verdict: Verdict | None = None  # a bounce: the verdict of the block the proof names
    short: Short | None = None

    def reason(self) -> str:
        return "" if self.short is None else f"not proof: {self.short.value.replace('_', ' ')}"


async def weigh(
    conn: inbound.Conn, mailbox_id: str, c: Classified, since: datetime, ring: KeyRing
) -> Evidence:
    if c.kind is InboundClass.BOUNCE:
        return await _bounce(conn, mailbox_id, c, since)
    if c.kind is InboundClass.COMPLAINT:
        return await _complaint(conn, mailbox_id, c, since)
    if c.kind is InboundClass.OTHER:
        return Evidence(None, proven=False)
    if c.kind is InboundClass.UNSUBSCRIBE and c.unsubscribe_token:
        return await _token(conn, mailbox_id, c.unsubscribe_token, ring)
    if c.from_address is None:
        return Evidence(None, proven=False, short=Short.NO_FROM)
    found = await inbound.match_thread(conn, mailbox_id, list(c.references), c.from_address)
    if found is not None:
        return Evidence(found, proven=True)
    found = await inbound.match_sender(conn, mailbox_id, c.from_address, since)
    if found is None or c.authenticated:
        return Evidence(found, proven=found is not None)
    return Evidence(found, proven=False, short=Short.UNAUTHENTICATED)


async def _bounce(conn: inbound.Conn, mailbox_id: str, c: Classified, since: datetime) -> Evidence:
    # The bounce's sender is a mail server, not the recipient: no domain check.
    sent = await inbound.match_thread(conn, mailbox_id, list(c.references), None)
    if sent is not None:
        block = next((f for f in c.failures if f.recipient == sent.recipient.lower()), None)
        if block is None:
            return Evidence(sent, proven=False, short=Short.OTHER_RECIPIENT)
        return Evidence(sent, proven=True, verdict=block.verdict)
    for failure in c.failures:  # recorded against the send it names, for `trace`; no effect
        named = await inbound.match_recipient(conn, mailbox_id, failure.recipient, since)
        if named is not None:
            return Evidence(named, proven=False, verdict=failure.verdict, short=Short.NO_MESSAGE_ID)
    return Evidence(None, proven=False, verdict=c.verdict, short=Short.NO_MESSAGE_ID)


async def _complaint(conn: inbound.Conn, mailbox_id: str, c: Classified, since: datetime) -> Evidence:
    sent = await inbound.match_thread(conn, mailbox_id, list(c.references), None)
    if sent is not None:
        if c.complained_about is not None and c.complained_about != sent.recipient.lower():
            return Evidence(sent, proven=False, short=Short.OTHER_RECIPIENT)
        return Evidence(sent, proven=True)
    named = None
    if c.complained_about is not None:
        named = await inbound.match_recipient(conn, mailbox_id, c.complained_about, since)
    return Evidence(named, proven=False, short=Short.NO_MESSAGE_ID)


async def _token(conn: inbound.Conn, mailbox_id: str, token: str, ring: KeyRing) -> Evidence:
    try:  # a signed token names the send itself (mail/unsubscribe.py)
        send = verify(ring, token)
    except BadToken as exc:
        # The README's promise: a token that does not verify acts on nobody, not even
        # on the From address (which anyone can write).
        log.warning("inbox_unsubscribe_token_refused", mailbox_id=mailbox_id, why=str(exc))
        return Evidence(None, proven=False, short=Short.BAD_TOKEN)
    found = await inbound.match_token(conn, send)
    return Evidence(found, proven=found is not None)
