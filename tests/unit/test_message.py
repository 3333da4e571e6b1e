from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest

from mail.errors import HeaderInjection, InvalidAddress, InvalidMessage
from mail.message import (
    MAX_BODY_BYTES,
    MAX_SUBJECT_CHARS,
    OutgoingMail,
    build_message,
    message_id_for,
    normalize_address,
)

NOW = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def mail(**changes: Any) -> OutgoingMail:
    fields: dict[str, Any] = {
        "from_address": "jane@sender.example",
        "to_address": "bob@example.org",
        "subject": "Quick question",
        "body": "Hi Bob,\n\nDo you have a minute?\n\nJane",
        "message_id": "<c1.2.7.abc@sender.example>",
        "in_reply_to": "<c1.1.7.def@sender.example>",
        "references": ["<c1.1.7.def@sender.example>"],
    }
    fields.update(changes)
    return OutgoingMail(**fields)


def parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def test_message_carries_threading_and_mime_headers() -> None:
    msg = parsed(build_message(mail(), now=NOW))
    assert msg["Message-ID"] == "<c1.2.7.abc@sender.example>"
    assert msg["In-Reply-To"] == "<c1.1.7.def@sender.example>"
    assert msg["References"] == "<c1.1.7.def@sender.example>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Date"] == "Tue, 04 Mar 2025 09:30:00 +0000"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"


def test_references_of_a_third_step_list_the_whole_thread() -> None:
    refs = ["<c1.1.7.a@sender.example>", "<c1.2.7.b@sender.example>"]
    msg = parsed(build_message(mail(references=refs, in_reply_to=refs[-1])))
    assert msg["References"].split() == refs


def test_first_step_has_no_threading_headers() -> None:
    msg = parsed(build_message(mail(in_reply_to=None, references=[])))
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None


def test_message_uses_crlf_and_seven_bit_safe_utf8_body() -> None:
    raw = build_message(mail(body="Grüße aus Köln\n.\nline", subject="Grüße"))
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(byte < 128 for byte in raw)
    msg = parsed(raw)
    assert msg["Subject"] == "Grüße"
    body = msg.get_body()
    assert body is not None and "Grüße aus Köln" in body.get_content()


def test_from_name_is_encoded_into_the_from_header() -> None:
    sender = parsed(build_message(mail(from_name='Jane "JD" Dœ')))["From"]
    assert sender.addresses[0].display_name == 'Jane "JD" Dœ'
    assert sender.addresses[0].addr_spec == "jane@sender.example"


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Hello\r\nBcc: everyone@example.org"},
        {"subject": "Hello\nBcc: everyone@example.org"},
        {"subject": "Hello\rthere"},
        {"subject": "nul\x00byte"},
        {"to_address": "bob@example.org\r\nBcc: x@example.org"},
        {"from_address": "jane@sender.example\nX-Evil: 1"},
        {"from_name": "Jane\r\nBcc: x@example.org"},
        {"message_id": "<a@b>\r\nBcc: x@example.org"},
        {"in_reply_to": "<a@b>\nX-Evil: 1"},
        {"references": ["<a@b>", "<c@d>\r\nX-Evil: 1"]},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_header_injection_is_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(HeaderInjection):
        build_message(mail(**changes))


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "bob@",
        "@example.org",
        "bob@@example.org",
        "bob example@example.org",
        "Bob <bob@example.org>",
        "bob@example..org",
        "bob@-example.org",
        "bob@localhost",
        "bób@example.org",  # needs SMTPUTF8, refused on purpose
        "",
    ],
)
def test_malformed_addresses_are_rejected(address: str) -> None:
    with pytest.raises(InvalidAddress):
        build_message(mail(to_address=address))
    with pytest.raises(InvalidAddress):
        build_message(mail(from_address=address))


def test_header_errors_are_value_errors() -> None:
    assert issubclass(HeaderInjection, ValueError)
    assert issubclass(InvalidAddress, ValueError)


@pytest.mark.parametrize(
    "changes",
    [
        {"message_id": "no-brackets@sender.example"},
        {"message_id": "<no-at-sign>"},
        {"in_reply_to": "<a b@c>"},
        {"references": ["<a@b> <c@d>"]},
    ],
)
def test_malformed_message_ids_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        build_message(mail(**changes))


def test_idn_domain_is_sent_in_ascii() -> None:
    assert normalize_address("bob@bücher.example") == "bob@xn--bcher-kva.example"


def test_message_id_is_deterministic_and_distinct_per_send() -> None:
    first = message_id_for("c1", 2, 7, "sender.example")
    assert first == message_id_for("c1", 2, 7, "sender.example")
    assert first.startswith("<c1.2.7.") and first.endswith("@sender.example>")
    assert first != message_id_for("c1", 3, 7, "sender.example")
    assert first != message_id_for("c1", 2, 8, "sender.example")
    assert first != message_id_for("c2", 2, 7, "sender.example")


def test_keyed_message_id_cannot_be_written_without_the_key() -> None:
    keyed = message_id_for("c1", 2, 7, "sender.example", b"k" * 32)
    assert keyed == message_id_for("c1", 2, 7, "sender.example", b"k" * 32)
    assert keyed.startswith("<c1.2.7.") and keyed.endswith("@sender.example>")
    # Another key, or none (the public digest anyone can compute), gives another id.
    assert keyed != message_id_for("c1", 2, 7, "sender.example", b"j" * 32)
    assert keyed != message_id_for("c1", 2, 7, "sender.example")
    assert parsed(build_message(mail(message_id=keyed)))["Message-ID"] == keyed


def test_message_id_domain_is_lowercase_ascii() -> None:
    assert message_id_for("c1", 1, 7, "Bücher.Example").endswith("@xn--bcher-kva.example>")


def test_message_id_refuses_unsafe_parts() -> None:
    with pytest.raises(InvalidMessage):
        message_id_for("c1>\r\nBcc: x", 1, 1, "sender.example")
    with pytest.raises(InvalidMessage):
        message_id_for("c1", 1, 1, "sender.example>")


def test_a_generated_message_id_builds() -> None:
    message_id = message_id_for("c1", 1, 7, "sender.example")
    assert parsed(build_message(mail(message_id=message_id)))["Message-ID"] == message_id


# -- what an import also checks, checked again at build (values changed after import) ----


@pytest.mark.parametrize(
    "address",
    [
        "a@example.com>x@evil.example",  # aiosmtplib alone would send to a@example.com
        "<a@example.com> b",  # ... and this one too
        '"a b"@example.com',  # a quoted local part: not ours to send to
        "a@b@example.com",
        "a b@example.com",
    ],
)
def test_addresses_the_smtp_library_would_truncate_are_refused_naming_the_field(
    address: str,
) -> None:
    with pytest.raises(InvalidAddress, match=r"^to_address: invalid address"):
        build_message(mail(to_address=address))
    with pytest.raises(InvalidAddress, match=r"^from_address: invalid address"):
        build_message(mail(from_address=address))


@pytest.mark.parametrize("address", ['"a\r\nb"@example.com', "a\r@example.com", "a@example.com\x00"])
def test_line_breaks_and_nul_in_an_address_are_header_injection(address: str) -> None:
    with pytest.raises(HeaderInjection, match="to_address contains CR, LF or NUL"):
        build_message(mail(to_address=address))


def test_lf_in_the_from_name_is_refused() -> None:
    with pytest.raises(HeaderInjection, match="from_name contains CR, LF or NUL"):
        build_message(mail(from_name="Jane\nBcc: x@example.org"))


def test_a_subject_over_the_rfc_line_length_is_refused() -> None:
    build_message(mail(subject="s" * MAX_SUBJECT_CHARS))
    with pytest.raises(InvalidMessage, match=f"subject is {MAX_SUBJECT_CHARS + 1} characters"):
        build_message(mail(subject="s" * (MAX_SUBJECT_CHARS + 1)))


def test_a_body_over_the_ceiling_is_refused() -> None:
    build_message(mail(body="b" * MAX_BODY_BYTES))
    with pytest.raises(InvalidMessage, match="body is 1000001 bytes"):
        build_message(mail(body="b" * (MAX_BODY_BYTES - 1) + "é"))


def test_nul_in_the_body_is_refused() -> None:
    with pytest.raises(InvalidMessage, match="body contains NUL"):
        build_message(mail(body="Hi\x00there"))
