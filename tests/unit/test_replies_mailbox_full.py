"""A full mailbox is not a bad address: a corpus of real full-mailbox replies and
diagnostic codes, each a soft bounce (retry, never suppress), next to real bad-address
ones that stay hard (issue 14)."""

from __future__ import annotations

import pytest

from mail.replies import ReplyClass, classify_reply

FULL = [
    (552, "Requested mailbox exceeds quota."),
    (552, "recipient storage full, try again later"),
    (552, "5.2.2 The email account that you tried to reach is over quota. Please direct the"
          " recipient to https://support.google.com/mail/?p=OverQuotaPerm - gsmtp"),
    (452, "4.2.2 The email account that you tried to reach is over quota. - gsmtp"),
    (554, "5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
          "MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception"),
    (552, "Mailbox size limit exceeded"),
    (550, "5.2.2 <user@example.org>: user is over quota"),
    (552, "5.2.2 user@example.org: Recipient address rejected: Mailbox full"),
    (552, "5.2.2 quota exceeded"),
    (552, "Quota exceeded (mailbox for user is full)"),
    (550, "Mailbox quota exceeded"),
    (552, "5.2.2 Mailbox exceeds its quota"),
    (552, ""),
]

GONE = [
    (550, "5.1.1 The email account that you tried to reach does not exist. - gsmtp"),
    (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"),
    (550, "No such user here"),
    (553, "5.1.3 Bad recipient address syntax"),
    (550, "5.2.1 The email account that you tried to reach is disabled. - gsmtp"),
]


@pytest.mark.parametrize(("code", "text"), FULL)
def test_full_mailbox_is_soft(code: int, text: str) -> None:
    assert classify_reply(code, text) is ReplyClass.SOFT_BOUNCE


@pytest.mark.parametrize(("code", "text"), GONE)
def test_bad_address_stays_hard(code: int, text: str) -> None:
    assert classify_reply(code, text) is ReplyClass.HARD_BOUNCE
