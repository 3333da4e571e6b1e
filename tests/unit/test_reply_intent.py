"""What a reply means (issue 25, part 1): the rules against the labelled set of
tests/fixtures/replies, and the behaviours the set does not show on its own."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from bench import replies
from inbox.classify import InboundClass, classify
from inbox.intent import IntentClass, judge, latest_text

RECEIVED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def figures() -> replies.Figures:
    return replies.measure(replies.load())


def test_the_labelled_set_holds_300_replies_in_four_languages_and_every_class() -> None:
    samples = replies.load()
    assert len(samples) >= 300
    assert {s.language for s in samples} >= {"en", "de", "fr", "es"}
    assert {s.expected for s in samples} == set(IntentClass)
    assert {s.wrapper for s in samples} == {"plain", "quoted", "signature", "outlook"}


def test_opt_out_intent_meets_the_issue_bar(figures: replies.Figures) -> None:
    assert figures.opt_out_precision >= 0.97, replies.report(figures)
    assert figures.opt_out_recall >= 0.9, replies.report(figures)


def test_stated_return_dates_are_read_right_nine_times_in_ten(figures: replies.Figures) -> None:
    assert figures.dates_stated >= 40
    assert figures.dates_right / figures.dates_stated >= 0.9, replies.report(figures)


def test_on_replies_never_tuned_on_opt_out_precision_and_return_dates_hold() -> None:
    """The held-out set (tests/fixtures/replies/holdout) was written after the rules were
    tuned and is not tuned on: its recall is short of the labelled set's (see
    docs/benchmarks.md), but what is called an opt-out is one, and dates are read right."""
    held = replies.measure(replies.load(replies.CORPUS / "holdout"))
    assert held.samples >= 100
    assert held.opt_out_precision >= 0.97, replies.report(held)
    assert held.dates_right / held.dates_stated >= 0.9, replies.report(held)


def test_every_class_is_found_and_named_mostly_right(figures: replies.Figures) -> None:
    for kind in IntentClass:
        assert figures.recall[kind] >= 0.85, replies.report(figures)
        assert figures.precision[kind] >= 0.85, replies.report(figures)
    assert figures.referrals_right == figures.referrals_with_address


def test_a_reply_in_an_unknown_language_is_other_with_low_confidence() -> None:
    found = judge("Köszönöm szépen, megkaptam a levelet.", received_at=RECEIVED)
    assert found.kind is IntentClass.OTHER and found.confidence <= 0.2


def test_the_quoted_cold_email_does_not_decide() -> None:
    text = ("Thanks!\n\nOn Mon, 2 Mar 2026 at 09:12, Alex <alex@sender.example.com> wrote:\n"
            "> Are you interested in a call on Tuesday at 10am?\n> Reply unsubscribe to be removed.\n")
    assert latest_text(text) == "Thanks!"
    assert judge(text, received_at=RECEIVED).kind is IntentClass.OTHER


def test_the_reason_names_the_rule_never_the_words() -> None:
    found = judge("Please remove me from your list, Bob here.", received_at=RECEIVED)
    assert found.kind is IntentClass.UNSUBSCRIBE
    assert found.reason == "unsubscribe phrase (en)"


@pytest.mark.parametrize(("text", "back"), [
    ("I'm out of the office through 13 March.", date(2026, 3, 14)),  # the 13th is still away
    ("Out of office until 03/16/2026.", date(2026, 3, 16)),  # US order with slashes
    ("Ich bin bis 16.03. nicht im Büro.", date(2026, 3, 16)),
    ("Je suis absent jusqu'au 5 janvier.", date(2027, 1, 5)),  # January, said in March: next year
    ("Out of office, back soon.", None),
])
def test_return_dates(text: str, back: date | None) -> None:
    found = judge(text, received_at=RECEIVED)
    assert found.kind is IntentClass.OUT_OF_OFFICE and found.return_date == back


def test_an_automatic_reply_without_an_absence_phrase_is_other() -> None:
    found = judge("Your message has been received.", automatic=True, received_at=RECEIVED)
    assert found.kind is IntentClass.OTHER and found.reason == "automatic reply, no absence phrase"


def _message(headers: str, body: str, content_type: str = "text/plain") -> bytes:
    return (f"{headers}\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n{body}").encode()


def test_classify_gives_a_reply_its_intent_and_an_html_only_reply_too() -> None:
    plain = classify(_message("From: <p@x.example.org>\r\nSubject: Re: Hello", "No thanks, we are all set."))
    assert plain.kind is InboundClass.REPLY and plain.intent is not None
    assert plain.intent.kind is IntentClass.NOT_INTERESTED
    html = classify(_message("From: <p@x.example.org>\r\nSubject: Re: Hello",
                             "<div>Please remove me from your list.</div><blockquote>Interested in a call?"
                             "</blockquote>", "text/html"))
    assert html.intent is not None and html.intent.kind is IntentClass.UNSUBSCRIBE


def test_an_out_of_office_auto_reply_carries_its_return_date() -> None:
    found = classify(_message(
        "From: <p@x.example.org>\r\nSubject: Automatic reply: Hello\r\nAuto-Submitted: auto-replied\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000", "I am out of the office until 16 March."))
    assert found.kind is InboundClass.AUTO_REPLY and found.intent is not None
    assert (found.intent.kind, found.intent.return_date) == (IntentClass.OUT_OF_OFFICE, date(2026, 3, 16))


def test_a_bounce_has_no_intent() -> None:
    dsn = _message("From: MAILER-DAEMON@mx.example.org\r\nSubject: Undelivered Mail Returned to Sender",
                   "I'm out of the office until 16 March.")
    found = classify(dsn)
    assert found.kind is InboundClass.BOUNCE and found.intent is None


@pytest.mark.parametrize("shape", [" \n" * 25_000, "x\n" * 25_000, "_\n" * 25_000, "> " * 25_000,
                                   "From: a\nSent: b\n" * 3_000, "a " * 25_000])
def test_a_strangers_text_costs_a_bounded_amount(shape: str) -> None:
    """mail-parser-reply is quadratic on thousands of blank lines (" \\n" * 25,000 took
    75 s): the text it gets is folded and cut first (inbox/intent.py PARSE_LIMIT). Under a
    tenth of a second here; the bound asserted is loose, for a shared machine."""
    started = time.process_time()
    found = judge(shape)
    spent = time.process_time() - started
    print(f"{shape[:12]!r}: {spent:.3f} s CPU")
    assert found.kind in IntentClass and spent < 5.0
