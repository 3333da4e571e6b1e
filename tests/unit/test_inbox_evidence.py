"""What a message's bytes can prove (issue 22, items 1, 2 and 4): From read strictly,
only the mailbox provider's Authentication-Results believed, verdicts only from
evidence, and the returned Message-ID found in every form providers send it."""

from __future__ import annotations

import pytest

from inbox.classify import InboundClass, Verdict, classify, judge_failure

OURS = "<cmp-1.1.7.k1abc@sender.example.com>"
GMAIL = "mx.google.com"


def message(headers: str, body: str = "Hello\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


@pytest.mark.parametrize("sender", [
    "alice@victim.example <eve@attacker.example>",
    '"alice@victim.example" <eve@attacker.example>',
    "eve@attacker.example (alice@victim.example)",
    "=?utf-8?q?alice=40victim.example?= <eve@attacker.example>",
    "alice@victim.example, eve@attacker.example",
    '"alice@victim.example"@attacker.example',
    "alice@victim.example@attacker.example",
    "<<<>>>",
])
def test_a_from_that_is_ambiguous_or_unparseable_names_nobody(sender: str) -> None:
    found = classify(message(f"From: {sender}\nIn-Reply-To: {OURS}\nSubject: Re: hi"))
    assert found.from_address is None


def test_two_from_headers_or_none_name_nobody() -> None:
    assert classify(message(f"In-Reply-To: {OURS}")).from_address is None
    two = message("From: eve@attacker.example\nFrom: alice@victim.example\nSubject: hi")
    assert classify(two).from_address is None


def test_a_plain_from_names_its_address() -> None:
    found = classify(message("From: Alice <Alice@Victim.example>\nSubject: hi"))
    assert found.from_address == "alice@victim.example"


@pytest.mark.parametrize(("headers", "trusted", "vouched"), [
    # Gmail's own header: DMARC pass for the From domain.
    (f"Authentication-Results: {GMAIL};\n dkim=pass header.i=@victim.example;\n spf=pass"
     " smtp.mailfrom=bounce@victim.example;\n dmarc=pass (p=NONE) header.from=victim.example",
     GMAIL, "dmarc"),
    # An aligned DKIM pass (a subdomain signs) without DMARC.
    (f"Authentication-Results: {GMAIL}; dkim=pass header.d=mail.victim.example", GMAIL, "dkim"),
    (f"Authentication-Results: {GMAIL}; spf=pass smtp.mailfrom=alice@victim.example", GMAIL, "spf"),
    # Microsoft 365: no authserv-id, the topmost header.
    ("Authentication-Results: spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=victim.example;"
     " dkim=pass (signature was verified) header.d=victim.example;dmarc=pass action=none"
     " header.from=victim.example;compauth=pass reason=100", "topmost", "dmarc"),
    # DMARC fails at the provider.
    (f"Authentication-Results: {GMAIL}; dmarc=fail (p=NONE) header.from=victim.example", GMAIL, None),
    # A pass, but from a server the mailbox does not trust (the sender wrote it).
    ("Authentication-Results: mx.attacker.example; dmarc=pass header.from=victim.example", GMAIL, None),
    # A pass for another domain: not aligned with From.
    (f"Authentication-Results: {GMAIL}; dkim=pass header.d=attacker.example;"
     " spf=pass smtp.mailfrom=eve@attacker.example; dmarc=pass header.from=attacker.example", GMAIL, None),
    # Under "topmost", a forged pass below the provider's own header does not count.
    ("Authentication-Results: spf=fail smtp.mailfrom=victim.example; dmarc=fail header.from=victim.example\n"
     "Authentication-Results: dmarc=pass header.from=victim.example", "topmost", None),
    # No trusted provider configured: no header is believed.
    (f"Authentication-Results: {GMAIL}; dmarc=pass header.from=victim.example", None, None),
])
def test_only_the_providers_header_vouches_for_from(
    headers: str, trusted: str | None, vouched: str | None
) -> None:
    found = classify(message(f"{headers}\nFrom: alice@victim.example\nSubject: unsubscribe"),
                     authserv_id=trusted)
    assert found.kind is InboundClass.UNSUBSCRIBE and found.authenticated == vouched


@pytest.mark.parametrize(("status", "diagnostic", "verdict"), [
    (None, "", Verdict.UNKNOWN),  # nothing at all
    (None, "Your message could not be delivered.", Verdict.UNKNOWN),
    (None, "550 Message rejected: contains a virus", Verdict.SOFT),
    (None, "554 message content rejected", Verdict.SOFT),
    (None, "Message rejected: contains a virus", Verdict.SOFT),
    ("5.3.5", "553 5.3.5 system config error", Verdict.SOFT),
    (None, "551 User not local; the destination mailbox of the user is full", Verdict.SOFT),
    ("5.1.1", "551 5.1.1 the destination mailbox of the user is full", Verdict.SOFT),
    (None, "The email account that you tried to reach does not exist", Verdict.HARD),
    ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound", Verdict.HARD),
])
def test_only_a_gone_address_is_hard(status: str | None, diagnostic: str, verdict: Verdict) -> None:
    assert judge_failure(status, diagnostic) is verdict


def plain_bounce(body: str) -> bytes:
    return message("From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail Returned to Sender", body)


def test_a_plain_bounce_without_a_code_or_wording_is_unknown() -> None:
    found = classify(plain_bounce("Sorry, we could not deliver to pat@prospect.example.org.\r\n"))
    assert found.kind is InboundClass.BOUNCE
    judged = [(f.recipient, f.verdict) for f in found.failures]
    assert judged == [("pat@prospect.example.org", Verdict.UNKNOWN)]


@pytest.mark.parametrize("body", [
    # Only the body came back, the original headers quoted in it (some providers strip
    # the attachment), with or without a quote marker.
    f"550 5.1.1 pat@prospect.example.org: user unknown\r\n\r\n--- original headers ---\r\n"
    f"Message-ID: {OURS}\r\n",
    f"550 5.1.1 pat@prospect.example.org: user unknown\r\n\r\n> From: ann@sender.example.com\r\n"
    f"> Message-ID: {OURS}\r\n",
])
def test_the_returned_message_id_is_found_when_only_the_body_came_back(body: str) -> None:
    found = classify(plain_bounce(body))
    assert found.references == (OURS,)
    assert [f.verdict for f in found.failures] == [Verdict.HARD]


def test_each_block_of_a_dsn_keeps_its_own_verdict() -> None:
    raw = message(
        'From: MAILER-DAEMON@mx.example.net\nSubject: Delivery Status Notification\n'
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; alice@victim.example\r\nAction: delayed\r\nStatus: 4.4.7\r\n\r\n"
        "Final-Recipient: rfc822; alias-target@victim.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {OURS}\r\n\r\n--b--\r\n",
    )
    found = classify(raw)
    assert [(f.recipient, f.verdict) for f in found.failures] == [
        ("alice@victim.example", Verdict.DELAYED), ("alias-target@victim.example", Verdict.HARD)]
