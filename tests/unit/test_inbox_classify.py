"""Every inbound message gets exactly one class, from its bytes alone (issue 14):
provider fixtures for bounces and complaints, RFC 3834 auto-replies, unsubscribes,
replies, and bytes that are not a readable message at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.classify import InboundClass, Verdict, classify, judge_failure

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"
RCPT = "pat@prospect.example.org"
OURS = "<cmp-1.2.7.abcdef@sender.example.com>"


def fixture(name: str) -> bytes:
    text = (FIXTURES / name).read_text("utf-8")
    return text.replace("{recipient}", RCPT).replace("{message_id}", OURS).replace("\n", "\r\n").encode()


def message(headers: str, body: str = "Hello\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


@pytest.mark.parametrize(("name", "verdict", "status"), [
    ("postfix_dsn_hard.eml", Verdict.HARD, "5.1.1"),
    ("dsn_blocked.eml", Verdict.BLOCKED, "5.7.1"),
    ("dsn_mailbox_full.eml", Verdict.SOFT, "5.2.2"),
    ("dsn_delayed.eml", Verdict.DELAYED, "4.4.1"),
    ("gmail_dsn_failure.eml", Verdict.HARD, "5.1.1"),
    ("microsoft_undeliverable.eml", Verdict.HARD, "5.1.10"),
])
def test_bounces_name_the_send_recipient_and_verdict(name: str, verdict: Verdict, status: str) -> None:
    found = classify(fixture(name))
    assert found.kind is InboundClass.BOUNCE
    assert found.references == (OURS,)
    assert [(f.recipient, f.status, f.verdict) for f in found.failures] == [(RCPT, status, verdict)]
    assert found.verdict is verdict


def test_complaint_names_the_original_recipient_and_message() -> None:
    found = classify(fixture("arf_complaint.eml"))
    assert (found.kind, found.complained_about, found.references) == (InboundClass.COMPLAINT, RCPT, (OURS,))


@pytest.mark.parametrize("headers", [
    "From: pat@prospect.example.org\nSubject: Re: Quick question\nAuto-Submitted: auto-replied",
    "From: pat@prospect.example.org\nSubject: Re: Quick question\nX-Autoreply: yes",
    "From: pat@prospect.example.org\nSubject: Re: Quick question\nX-Autorespond: yes",
    "From: pat@prospect.example.org\nSubject: Re: Quick question\nPrecedence: auto_reply",
    "From: pat@prospect.example.org\nSubject: Out of Office: Quick question",
    "From: pat@prospect.example.org\nSubject: Automatische Antwort: Quick question",
    "From: pat@prospect.example.org\nSubject: =?utf-8?q?R=C3=A9ponse_automatique_=3A_Quick?=",
    "From: pat@prospect.example.org\nSubject: Abwesenheitsnotiz",
])
def test_automatic_replies(headers: str) -> None:
    found = classify(message(headers + f"\nIn-Reply-To: {OURS}"))
    assert found.kind is InboundClass.AUTO_REPLY and found.references == (OURS,)


def test_auto_submitted_no_is_a_person() -> None:
    found = classify(message(f"From: pat@prospect.example.org\nAuto-Submitted: no\nIn-Reply-To: {OURS}"))
    assert found.kind is InboundClass.REPLY


@pytest.mark.parametrize(("headers", "body", "token"), [
    ("Subject: unsubscribe u1.abc-DEF_123", "", "u1.abc-DEF_123"),
    ("Subject: Unsubscribe", "", None),
    ("Subject: Re: Quick question", "\r\n  Unsubscribe.\r\nthanks\r\n", None),
])
def test_unsubscribe(headers: str, body: str, token: str | None) -> None:
    found = classify(message("From: pat@prospect.example.org\n" + headers, body))
    assert (found.kind, found.unsubscribe_token) == (InboundClass.UNSUBSCRIBE, token)


def test_a_person_writing_is_a_reply_candidate_with_its_thread() -> None:
    other = "<someone-else@example.net>"
    found = classify(message(
        f"From: Pat <Pat@Prospect.example.org>\nSubject: Re: Quick question\n"
        f"Message-ID: <r1@prospect.example.org>\nIn-Reply-To: {OURS}\nReferences: {other} {OURS}\n"
        "Date: Mon, 30 Nov 2026 07:00:00 +0000",
        "Not interested, thanks. Please unsubscribe me.\r\n",
    ))
    assert found.kind is InboundClass.REPLY
    assert found.references == (OURS, other)
    assert (found.from_address, found.message_id) == (RCPT, "<r1@prospect.example.org>")
    assert found.received_at is not None and found.received_at.hour == 7


@pytest.mark.parametrize("raw", [
    b"",
    b"\xff\xfe\x00garbage",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\r\n\r\n--x\r\nbroken",
    b"Subject: =?x-unknown-charset?q?hi?=\r\nContent-Type: text/plain; charset=x-nope\r\n\r\n\xe9\xe8\r\n",
    b"From: <<<>>>\r\nIn-Reply-To: <unterminated\r\nDate: yesterday\r\n\r\n",
])
def test_unreadable_bytes_never_raise(raw: bytes) -> None:
    found = classify(raw)
    assert found.kind in set(InboundClass)


def test_headers_only_bounce_is_recorded_without_a_verdict() -> None:
    raw = fixture("postfix_dsn_hard.eml")
    found = classify(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", headers_only=True)
    assert found.kind is InboundClass.BOUNCE and found.failures == () and found.headers_only


@pytest.mark.parametrize(("status", "diagnostic", "verdict"), [
    ("5.1.1", "550 5.1.1 user unknown", Verdict.HARD),
    ("5.2.1", "550 5.2.1 mailbox disabled", Verdict.HARD),
    ("5.7.1", "550 5.7.1 Message rejected as spam", Verdict.BLOCKED),
    ("5.7.606", "550 5.7.606 Access denied, banned sending IP", Verdict.BLOCKED),
    (None, "554 rejected due to spam content", Verdict.BLOCKED),
    ("5.2.2", "552 5.2.2 Mailbox full", Verdict.SOFT),
    (None, "552 Requested mailbox exceeds quota.", Verdict.SOFT),
    (None, "552 recipient storage full, try again later", Verdict.SOFT),
    ("5.3.4", "552 5.3.4 Message size exceeds fixed limit", Verdict.SOFT),
    ("4.2.0", "450 4.2.0 greylisted", Verdict.DELAYED),
    (None, "550 No such user here", Verdict.HARD),
])
def test_judge_failure(status: str | None, diagnostic: str, verdict: Verdict) -> None:
    assert judge_failure(status, diagnostic) is verdict
