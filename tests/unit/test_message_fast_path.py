"""build_message writes the common message directly; the email package writes the rest.

The direct path (`_plain_message`) must give exactly the bytes the email package
gives (`_policy_message`) whenever it answers at all, and must answer for the
usual cold email, or the worker pays the email package's price on every send.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mail.message import OutgoingMail, _plain_message, _policy_message, build_message

NOW = datetime(2026, 11, 30, 10, 1, 50, tzinfo=UTC)
DATE = "Mon, 30 Nov 2026 10:01:50 +0000"
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"


def typical(**changes: object) -> OutgoingMail:
    fields: dict[str, object] = dict(
        from_address="alice@sender.example", to_address="bob.smith@company.example",
        subject="Quick question about your hiring plans",
        body="Hi Bob,\n\nI noticed Company is hiring. Would a 15 minute call make sense?\n\nAlice\n",
        message_id="<c1.2.123.abcdefabcdefabcdef123456@sender.example>", from_name="Alice Example",
        reply_to="alice@sender.example", in_reply_to="<c1.1.123.0123456789abcdef01234567@sender.example>",
        references=["<c1.1.123.0123456789abcdef01234567@sender.example>"],
        unsubscribe_url="https://u.example/u/abcdefghijklmnopqrstuvwxyz0123456789",
        unsubscribe_mailto="mailto:unsub@sender.example?subject=unsubscribe",
    )
    fields.update(changes)
    return OutgoingMail.model_validate(fields)


def test_the_usual_cold_email_takes_the_direct_path_and_matches() -> None:
    mail = typical()
    direct = _plain_message(mail, DATE)
    assert direct is not None
    assert direct == _policy_message(mail, DATE)


def test_what_needs_encoding_quoting_or_folding_goes_through_the_email_package() -> None:
    for mail in (typical(subject="Grüße aus Köln"), typical(from_name="Alice B. Example"),
                 typical(subject="x" * 80), typical(subject="=?utf-8?q?looks_encoded?=")):
        assert _plain_message(mail, DATE) is None
        assert build_message(mail, NOW) == _policy_message(mail, DATE)


names = st.one_of(st.none(), st.text(ATEXT + " .,\"()<>é", min_size=1, max_size=30))
subjects = st.text(string.printable + "éü€\u00a0", min_size=1, max_size=90).filter(lambda s: s.strip())
bodies = st.text(string.printable + "éü€\u00a0\u2028", max_size=400)
ids = st.from_regex(r"<[a-z0-9.]{1,70}@[a-z-]{1,40}\.example>", fullmatch=True)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(from_name=names, subject=subjects, body=bodies, references=st.lists(ids, max_size=3),
       reply_to=st.sampled_from([None, "alice@sender.example", "x@a-very-long-domain-name.example"]),
       unsubscribe=st.booleans())
@example(from_name=None, subject="a  b", body="", references=[], reply_to=None, unsubscribe=False)
@example(from_name="A", subject=" lead", body="trailing space \nline\r\nend. \t\n.\n",
         references=[], reply_to=None, unsubscribe=True)
@example(from_name="A", subject="s", body="=" * 200 + "\n" + "é" * 100, references=[],
         reply_to=None, unsubscribe=True)
def test_whenever_the_direct_path_answers_it_gives_the_email_packages_bytes(
    from_name: str | None, subject: str, body: str, references: list[str], reply_to: str | None,
    unsubscribe: bool,
) -> None:
    mail = typical(from_name=from_name, subject=subject, body=body, references=references,
                   in_reply_to=references[-1] if references else None, reply_to=reply_to,
                   unsubscribe_url=typical().unsubscribe_url if unsubscribe else None,
                   unsubscribe_mailto=None)
    direct = _plain_message(mail, DATE)
    if direct is not None:
        assert direct == _policy_message(mail, DATE)


def test_long_threading_headers_stay_message_ids_on_both_paths() -> None:
    """The email package used to encode an In-Reply-To or References line over 78
    characters as RFC 2047 words, which mail clients do not read as ids: the thread
    broke for any domain of about 20 characters or more."""
    ids = [f"<cmp-0123456789.{k}.1234567.0123456789abcdef01234567@mail.a-longer-sender.example>"
           for k in (1, 2)]
    for mail in (typical(in_reply_to=ids[-1], references=ids),
                 typical(in_reply_to=ids[-1], references=ids, subject="Grüße")):
        raw = build_message(mail, NOW)
        assert f"In-Reply-To: {ids[1]}\r\n".encode() in raw
        assert f"References: {ids[0]}\r\n {ids[1]}\r\n".encode() in raw
        assert b"=?utf-8?" not in raw.split(b"Subject")[1].split(b"\r\n", 1)[1].split(b"\r\n\r\n")[0]
