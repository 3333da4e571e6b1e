"""The send outcomes table (mail/outcomes.py): every event and every reply class, on a
first, a middle and the last attempt, against expectations written out here."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.models import SendResult
from limits.store import Admission, GateLimit, Verdict
from mail.errors import (
    SmtpConfigError,
    SmtpConnectionFailed,
    SmtpError,
    SmtpHostBusy,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTimeout,
)
from mail.outcomes import (
    AttemptPolicy,
    Breaker,
    Event,
    LedgerState,
    PauseKind,
    PauseReason,
    Refused,
    Retry,
    SendDecision,
    SendOutcome,
    decide,
    transaction_result,
)
from mail.replies import ReplyClass, SmtpReply
from telemetry.metrics import pause_class

POLICY = AttemptPolicy(max_attempts=4)
FIRST, MIDDLE, LAST = 1, 2, 4
ATTEMPTS = (FIRST, MIDDLE, LAST)
L, S = LedgerState, SendOutcome


def returns(
    ledger: LedgerState | None, recorded: str | None, outcome: SendOutcome, *,
    breaker: Breaker | None = None, refund: bool = False, push_back: bool = False,
    suppress: bool = False, pause: PauseKind | None = None, pause_reason: PauseReason | None = None,
    exhausted: bool = False, releases_day: bool = False,
) -> SendDecision:
    return SendDecision(
        ledger=ledger, recorded=recorded, outcome=outcome, retry=None, exhausted=exhausted,
        metric=outcome.value, breaker=breaker, refund=refund, releases_day=releases_day,
        push_back=push_back,
        suppress=suppress, pause=pause, pause_reason=pause_reason,
    )


def raises(ledger: LedgerState, recorded: str, retry: Retry, metric: str,
           breaker: Breaker | None) -> SendDecision:
    return SendDecision(
        ledger=ledger, recorded=recorded, outcome=None, retry=retry, exhausted=False, metric=metric,
        breaker=breaker, refund=False, releases_day=False, push_back=False, suppress=False,
        pause=None, pause_reason=None,
    )


def fails(recorded: str, breaker: Breaker | None) -> SendDecision:
    return returns(L.FAILED, recorded, S.FAILED, breaker=breaker, exhausted=True)


def soft(recorded: str) -> dict[int, SendDecision]:
    """A refusal retried as a soft bounce: raised until the last attempt, which fails."""
    bounced = raises(L.SOFT_BOUNCED, recorded, Retry.SOFT_BOUNCE, "soft_bounced", Breaker.UP)
    return {FIRST: bounced, MIDDLE: bounced, LAST: fails(recorded, Breaker.UP)}


def every(decision: SendDecision, refund: bool = False) -> dict[int, SendDecision]:
    return {a: replace(decision, refund=refund) for a in ATTEMPTS}


def busy(ledger: LedgerState | None, recorded: str | None, refund: bool) -> dict[int, SendDecision]:
    """No slot now: a first attempt goes back to the step's queue (its day's place given
    back); a retry waits for its place with its workflow, keeping attempts and day
    (decision 0042)."""
    first = returns(ledger, recorded, S.BUSY, refund=refund, releases_day=True)
    retry = returns(ledger, recorded, S.PLACE_LATER, refund=refund)
    return {FIRST: first, MIDDLE: retry, LAST: retry}


UP, DOWN = Breaker.UP, Breaker.DOWN
SENDER = S.SENDER_PROBLEM
EVENTS: dict[Event, dict[int, SendDecision]] = {
    Event.PROSPECT_INACTIVE: every(returns(L.SKIPPED, None, S.SKIPPED, releases_day=True)),
    Event.UNBUILDABLE: every(returns(L.FAILED, None, S.FAILED)),
    Event.PAUSED: every(returns(None, None, S.MAILBOX_PAUSED, releases_day=True), refund=True),
    Event.CAMPAIGN_PAUSED: every(returns(None, None, S.CAMPAIGN_PAUSED, releases_day=True), refund=True),
    Event.TOKEN_REFUSED: every(returns(None, None, SENDER, pause=PauseKind.OPERATOR,
                                       pause_reason=PauseReason.AUTH_FAILED, releases_day=True)),
    Event.CREDENTIAL_UNREADABLE: every(returns(None, None, SENDER, pause=PauseKind.HEALTH_CHECK,
                                               pause_reason=PauseReason.CONFIG_ERROR, releases_day=True)),
    Event.WORKSPACE_BUSY: busy(None, None, refund=True),
    Event.LIMITS_DOWN: busy(None, None, refund=False),
    Event.HOST_BUSY: busy(L.QUEUED, "host_busy", refund=True),
    Event.PLACE_PASSED: busy(L.QUEUED, "place_passed", refund=True),
    Event.CAMPAIGN_PAUSED_BEFORE_DATA: every(returns(
        L.QUEUED, "campaign_paused_before_data", S.CAMPAIGN_PAUSED, releases_day=True), refund=True),
    Event.PAUSED_BEFORE_DATA: every(returns(L.QUEUED, "mailbox_paused", S.MAILBOX_PAUSED, releases_day=True),
                                    refund=True),
    Event.STOPPED_BEFORE_DATA: every(returns(L.SKIPPED, "stopped", S.SKIPPED, releases_day=True),
                                     refund=True),
    Event.CONFIG_ERROR: every(returns(L.QUEUED, "config_error", SENDER, pause=PauseKind.HEALTH_CHECK,
                                      pause_reason=PauseReason.CONFIG_ERROR, releases_day=True)),
    Event.NO_CONNECTION: {
        FIRST: raises(L.QUEUED, "connection", Retry.CONNECTION, "connection_failed", DOWN),
        MIDDLE: raises(L.QUEUED, "connection", Retry.CONNECTION, "connection_failed", DOWN),
        LAST: fails("connection", DOWN),
    },
    Event.OUTCOME_UNKNOWN: every(returns(L.UNKNOWN, "unknown", S.UNKNOWN, breaker=DOWN)),
    Event.DELIVERED: every(returns(L.SENT, "sent", S.SENT, breaker=UP)),
}
REFUSALS: dict[ReplyClass, dict[int, SendDecision]] = {
    ReplyClass.HARD_BOUNCE: every(returns(L.HARD_BOUNCED, "hard_bounce", S.HARD_BOUNCED, breaker=UP,
                                          suppress=True)),
    ReplyClass.SOFT_BOUNCE: soft("soft_bounce"),
    ReplyClass.THROTTLED: every(returns(L.QUEUED, "throttled", S.THROTTLED, breaker=UP, push_back=True,
                                                releases_day=True)),
    ReplyClass.SENDER_PROBLEM: every(returns(L.QUEUED, "sender_problem", SENDER, breaker=UP,
                                             pause=PauseKind.OPERATOR,
                                             pause_reason=PauseReason.SENDER_PROBLEM, releases_day=True)),
    ReplyClass.QUOTA: every(returns(L.QUEUED, "quota", SENDER, breaker=UP, pause=PauseKind.OPERATOR,
                                    pause_reason=PauseReason.QUOTA, releases_day=True)),
    ReplyClass.ACCEPTED: soft("accepted"),  # a 2xx where a refusal came
    ReplyClass.CONNECTION: soft("connection"),  # a reply outside 2xx-5xx
}


def test_every_event_and_every_reply_class_is_expected_here() -> None:
    assert set(EVENTS) == set(Event)
    assert set(REFUSALS) == set(ReplyClass)


@pytest.mark.parametrize(("event", "attempt"), [(e, a) for e in Event for a in ATTEMPTS])
def test_an_event_means_the_same_on_every_worker(event: Event, attempt: int) -> None:
    assert decide(event, attempt, POLICY) == EVENTS[event][attempt]


@pytest.mark.parametrize(("reply_class", "attempt"), [(c, a) for c in ReplyClass for a in ATTEMPTS])
def test_a_refusal_is_decided_by_its_reply_class(reply_class: ReplyClass, attempt: int) -> None:
    assert decide(Refused(reply_class), attempt, POLICY) == REFUSALS[reply_class][attempt]


@pytest.mark.parametrize(("reply_class", "attempt"), [(c, a) for c in ReplyClass for a in ATTEMPTS])
def test_a_refusal_at_auth_reads_auth_failed_when_it_pauses(reply_class: ReplyClass, attempt: int) -> None:
    expected = REFUSALS[reply_class][attempt]
    if expected.pause is not None:
        expected = replace(expected, pause_reason=PauseReason.AUTH_FAILED)
    assert decide(Refused(reply_class, at_auth=True), attempt, POLICY) == expected


def test_a_one_attempt_policy_fails_a_soft_bounce_at_once() -> None:
    decision = decide(Refused(ReplyClass.SOFT_BOUNCE), 1, AttemptPolicy(max_attempts=1))
    assert decision == fails("soft_bounce", UP)


def test_only_retried_rows_raise_and_a_raised_attempt_returns_nothing() -> None:
    for result in [*Event, *(Refused(c) for c in ReplyClass)]:
        for attempt in ATTEMPTS:
            d = decide(result, attempt, POLICY)
            assert (d.retry is None) == (d.outcome is not None), (result, attempt)


def test_a_retry_never_goes_back_to_the_queue_for_a_busy_slot_and_keeps_its_day() -> None:
    """Decision 0042: whatever is busy, a retry waits for its own place with its workflow;
    handed back to the queue it would start over with all its attempts."""
    for result in [*Event, *(Refused(c) for c in ReplyClass)]:
        d = decide(result, MIDDLE, POLICY)
        assert d.outcome is not SendOutcome.BUSY, result
        if d.outcome is SendOutcome.PLACE_LATER:
            assert not d.releases_day, result


TRANSACTION_ERRORS: list[tuple[SmtpError, Event | Refused | None]] = [
    (SmtpTimeout("rcpt: timed out"), Event.NO_CONNECTION),
    (SmtpConnectionFailed("mail: connection reset"), Event.NO_CONNECTION),
    (SmtpOutcomeUnknown("connection lost after DATA began"), Event.OUTCOME_UNKNOWN),
    (SmtpConfigError("127.0.0.1 does not offer STARTTLS"), Event.CONFIG_ERROR),
    (SmtpHostBusy("mx: every connection slot is taken"), Event.HOST_BUSY),
    (SmtpRejected(SmtpReply(550, "5.1.1 No such user"), "rcpt"), Refused(ReplyClass.HARD_BOUNCE)),
    (SmtpRejected(SmtpReply(535, "5.7.8 Bad credentials"), "auth"),
     Refused(ReplyClass.SENDER_PROBLEM, at_auth=True)),
    (SmtpRejected(SmtpReply(451, "4.3.0 try later"), "data"), Refused(ReplyClass.SOFT_BOUNCE)),
    (SmtpError("no row expects this"), None),
]


@pytest.mark.parametrize(("error", "result"), TRANSACTION_ERRORS)
def test_a_transaction_error_is_an_event_or_a_refusal(error: SmtpError, result: object) -> None:
    assert transaction_result(error) == result


def test_a_timeout_is_retried_as_a_connection_failure_and_fails_on_the_last_attempt() -> None:
    came_to = transaction_result(SmtpTimeout("data: timed out"))
    assert came_to is not None
    assert decide(came_to, FIRST, POLICY).retry is Retry.CONNECTION
    assert decide(came_to, LAST, POLICY) == fails("connection", DOWN)


def test_a_config_error_pauses_for_the_health_check_to_lift_and_says_so_in_its_reason() -> None:
    came_to = transaction_result(SmtpConfigError("mx: TLS certificate refused (self-signed)"))
    assert came_to is not None
    decision = decide(came_to, FIRST, POLICY)
    assert decision.pause is PauseKind.HEALTH_CHECK and decision.pause_reason is not None
    assert decision.pause_reason.text("mx: TLS certificate refused") == (
        "config_error: mx: TLS certificate refused")


def test_a_pause_reason_is_kept_short() -> None:
    assert PauseReason.QUOTA.text("x" * 1000) == ("quota: " + "x" * 1000)[:300]


def test_a_raised_attempt_is_counted_under_its_retry_label() -> None:
    assert {r: r.counted_as for r in Retry} == {
        Retry.SOFT_BOUNCE: "soft_bounced", Retry.CONNECTION: "connection_failed"}


def test_paused_mailboxes_are_counted_by_their_reasons_head() -> None:
    assert pause_class("config_error: mx does not offer STARTTLS") == "config_error"
    assert pause_class("auth_failed: 535 5.7.8") == "auth_failed"
    assert pause_class("bounce spike, looking into it") == "operator"


# What a SENDER_PROBLEM result looked like before it carried its pause kind.
EARLIER_RESULTS = [
    ({"outcome": "sender_problem", "code": None, "reply": "", "retry_at": None,
      "reason": "config_error: 127.0.0.1 does not offer STARTTLS"}, PauseKind.HEALTH_CHECK),
    ({"outcome": "sender_problem", "code": 535, "reply": "5.7.8 Bad credentials", "retry_at": None,
      "reason": "auth_failed: 535 5.7.8 Bad credentials"}, PauseKind.OPERATOR),
    ({"outcome": "sender_problem", "code": 550, "reply": "5.4.5 Daily user sending limit exceeded",
      "retry_at": None, "reason": "quota: 550 5.4.5 Daily user sending limit exceeded"},
     PauseKind.OPERATOR),
    ({"outcome": "sent", "code": 250, "reply": "2.0.0 OK", "reason": "", "retry_at": None}, None),
]


@pytest.mark.parametrize(("recorded", "pause"), EARLIER_RESULTS)
def test_a_result_recorded_before_pause_kinds_reads_as_the_workflow_then_read_it(
    recorded: dict[str, object], pause: PauseKind | None
) -> None:
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(recorded).encode())
    (result,) = pydantic_data_converter.payload_converter.from_payloads([payload], [SendResult])
    assert isinstance(result, SendResult)
    assert result.pause is pause


def test_a_result_keeps_the_pause_kind_it_was_given() -> None:
    given = SendResult(outcome=SendOutcome.SENDER_PROBLEM, reason="config_error: x",
                       pause=PauseKind.OPERATOR)
    assert SendResult.model_validate_json(given.model_dump_json()).pause is PauseKind.OPERATOR


def test_every_wait_the_gate_script_gives_names_its_limit() -> None:
    lua = (Path(__file__).parents[2] / "limits" / "lua" / "admit.lua").read_text()
    reasons = re.findall(r"\{'wait', [^{}]*?, '([^']+)'", lua)
    assert len(reasons) == 6, reasons
    limits = {Admission(Verdict.WAIT, SOON, reason).limit for reason in reasons}
    assert limits == set(GateLimit) - {GateLimit.SENDING_WINDOW, GateLimit.OTHER}
    assert Admission(Verdict.WAIT, SOON, "something new").limit is GateLimit.OTHER


SOON = datetime(2026, 1, 1, tzinfo=UTC)
