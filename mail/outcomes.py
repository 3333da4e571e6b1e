"""What a send attempt's result means, decided in one table
(docs/decisions/0021-send-outcomes-table.md).

The send activity says what an attempt came to: an `Event`, or a refusal
(`Refused`, by its reply class, mail/replies.py). `decide` looks it up and
answers everything that follows: the ledger state, what the step workflow is
told, the metric label, what the host's circuit breaker records, whether the
gate's provider slot is given back, whether the host is pushed back, whether to
raise for Temporal to retry (and as what), and which pause the mailbox gets.
Nothing here does I/O; the activity applies the decision.

The enums are the names the ledger (and its CHECK constraint), the metrics and
the workflow use; their values are stored and exported, so they never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from mail.errors import (
    SmtpConfigError,
    SmtpConnectionFailed,
    SmtpError,
    SmtpHostBusy,
    SmtpOutcomeUnknown,
    SmtpRejected,
)
from mail.replies import ReplyClass


class LedgerState(StrEnum):
    """A send's state in the ledger (the CHECK on ``sends.state``, store/migrations)."""

    QUEUED = "queued"
    SENDING = "sending"
    SOFT_BOUNCED = "soft_bounced"  # retrying
    SENT = "sent"
    HARD_BOUNCED = "hard_bounced"
    FAILED = "failed"
    UNKNOWN = "unknown"  # DATA began and no reply was read: may have been delivered
    SKIPPED = "skipped"  # will not be sent (prospect no longer active, campaign cancelled)


OPEN_STATES = (LedgerState.QUEUED, LedgerState.SENDING, LedgerState.SOFT_BOUNCED)
FINAL_STATES = tuple(s for s in LedgerState if s not in OPEN_STATES)


class SendOutcome(StrEnum):
    """What the step workflow is told about a send (``SendResult.outcome``)."""

    SENT = "sent"
    HARD_BOUNCED = "hard_bounced"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    # Not final: the send goes back to the queue.
    THROTTLED = "throttled"
    MAILBOX_PAUSED = "mailbox_paused"
    CAMPAIGN_PAUSED = "campaign_paused"  # the operator paused the campaign (decision 0044)
    SENDER_PROBLEM = "sender_problem"
    BUSY = "busy"  # no host connection or workspace slot free: nothing was sent
    # A retry's own place in the limits is later (or a slot it needs is busy): nothing
    # was sent; the workflow waits until ``retry_at`` on a durable timer and sends the
    # retry again with its place (decision 0042). It keeps its attempts and its day's place.
    PLACE_LATER = "place_later"
    # The server deferred (a soft bounce) and attempts are left: told only to a caller
    # that asked for it (``SendInput.returns_soft_bounce``), which waits out the retry
    # schedule on a durable timer in the send's retry workflow (decision 0049); others
    # get it raised, for the activity's retry policy.
    SOFT_BOUNCED = "soft_bounced"


FINAL_OUTCOMES = frozenset(SendOutcome(s) for s in FINAL_STATES)


class PauseKind(StrEnum):
    """Who lifts a pause a send asks for (the values are the mailbox's ``paused_by``)."""

    OPERATOR = "operator"  # an operator's resume
    HEALTH_CHECK = "health_check"  # the next good health check (docs/decisions/0018)


class PauseReason(StrEnum):
    """The head of a pause reason ("auth_failed: 535 5.7.8 ..."): the paused-mailbox
    metric's label (telemetry/metrics.py)."""

    AUTH_FAILED = "auth_failed"
    SENDER_PROBLEM = "sender_problem"
    QUOTA = "quota"
    # The account cannot be used safely as configured: no STARTTLS, a refused
    # certificate, an unreadable credential (docs/decisions/0018).
    CONFIG_ERROR = "config_error"
    # Too many hard bounces among the mailbox's recent sends: the deliverability
    # guard's pause (docs/decisions/0033), lifted only by an operator.
    BOUNCE_RATE = "bounce_rate"

    @property
    def kind(self) -> PauseKind:
        # A config error shows in the health check's login too, so its next good run lifts it.
        return PauseKind.HEALTH_CHECK if self is PauseReason.CONFIG_ERROR else PauseKind.OPERATOR

    def text(self, detail: str) -> str:
        """The stored reason, kept short: it is a label for people, not a log."""
        return f"{self}: {detail}"[:REASON_CHARS]


REASON_CHARS = 300


class Retry(StrEnum):
    """Raise for Temporal to retry the attempt, as this ApplicationError type."""

    SOFT_BOUNCE = "SoftBounce"
    CONNECTION = "SmtpConnection"

    @property
    def counted_as(self) -> str:
        """The ``outreach_sends`` outcome label of a raised attempt."""
        return _COUNTED_AS[self]


_COUNTED_AS = {Retry.SOFT_BOUNCE: LedgerState.SOFT_BOUNCED.value,
               Retry.CONNECTION: "connection_failed"}


class Breaker(StrEnum):
    """What the host's circuit breaker records."""

    UP = "up"  # the host answered
    DOWN = "down"  # no answer, or lost after DATA


class Event(StrEnum):
    """What an attempt came to, other than a refusal.

    For the transaction's events the value is what ``send_attempts.outcome`` records.
    """

    # Found before any SMTP transaction began: nothing was sent, no attempt recorded.
    PROSPECT_INACTIVE = "prospect_inactive"
    UNBUILDABLE = "unbuildable"  # the message cannot be built from this data
    PAUSED = "paused"  # the mailbox is paused
    CAMPAIGN_PAUSED = "campaign_paused"  # the campaign is paused (decision 0044)
    TOKEN_REFUSED = "token_refused"  # OAuth refresh refused: grant revoked, client changed
    CREDENTIAL_UNREADABLE = "credential_unreadable"  # its key removed, or the value altered
    WORKSPACE_BUSY = "workspace_busy"  # every in-flight slot of the workspace taken
    LIMITS_DOWN = "limits_down"  # the limit store did not answer: fail closed
    # The transaction.
    HOST_BUSY = "host_busy"  # no connection slot of the host free
    PAUSED_BEFORE_DATA = "mailbox_paused"  # paused after the transaction began
    CAMPAIGN_PAUSED_BEFORE_DATA = "campaign_paused_before_data"  # its campaign, likewise
    # DATA would have gone too long after the transaction's place in the limits (a
    # hung connection of the mailbox held it back), and no place was free now.
    PLACE_PASSED = "place_passed"
    # Stopped after the transaction began: the address was suppressed, the prospect
    # is no longer active, or the send was ended (a cancelled campaign). Never sent.
    STOPPED_BEFORE_DATA = "stopped"
    CONFIG_ERROR = "config_error"  # the account cannot be used safely as configured
    NO_CONNECTION = "connection"  # no usable answer before DATA: safe to retry
    OUTCOME_UNKNOWN = "unknown"  # lost after DATA began: never resend
    DELIVERED = "sent"  # DATA accepted


@dataclass(frozen=True)
class Refused:
    """The server refused, with a reply of this class."""

    reply_class: ReplyClass
    at_auth: bool = False  # at AUTH: a sender problem or quota reads "auth_failed"


def transaction_result(exc: SmtpError) -> Event | Refused | None:
    """What a transaction that raised came to; None for an error no row expects."""
    if isinstance(exc, SmtpRejected):
        return Refused(exc.reply_class, at_auth=exc.stage == "auth")
    for error, event in _ERRORS:
        if isinstance(exc, error):
            return event
    return None


_ERRORS: tuple[tuple[type[SmtpError], Event], ...] = (
    (SmtpHostBusy, Event.HOST_BUSY),
    (SmtpOutcomeUnknown, Event.OUTCOME_UNKNOWN),
    (SmtpConfigError, Event.CONFIG_ERROR),
    (SmtpConnectionFailed, Event.NO_CONNECTION),  # timeouts too (SmtpTimeout)
)


@dataclass(frozen=True)
class AttemptPolicy:
    max_attempts: int  # the send retry policy's (activities/models.py)


@dataclass(frozen=True)
class SendDecision:
    ledger: LedgerState | None  # None: the row is left as it is
    recorded: str | None  # send_attempts.outcome; None: no attempt began (the ledger state settles)
    outcome: SendOutcome | None  # told to the workflow; None when raising
    retry: Retry | None  # raise, for Temporal to retry the attempt
    exhausted: bool  # no attempt is left: this one ends the send
    metric: str  # outreach_sends' outcome label
    breaker: Breaker | None  # None: the breaker records nothing
    refund: bool  # give back the provider slot the gate reserved: nothing was sent
    # Give back the mailbox's day slot: nothing was sent and the send goes back to the
    # step's queue (or ends unsent), so it must not count against today's cap; a retry
    # (raised for Temporal, or waiting for its place) keeps it: it is still the same send.
    releases_day: bool
    push_back: bool  # back the whole host off, for every worker
    suppress: bool  # never mail this prospect again
    pause: PauseKind | None  # pause the mailbox, to be lifted by this kind
    pause_reason: PauseReason | None  # the pause reason's head


class _Row(NamedTuple):
    ledger: LedgerState | None
    # Retried rows: the ledger state while retrying; the outcome when no attempt is left.
    outcome: SendOutcome
    breaker: Breaker | None = None
    refund: bool = False  # give back the provider place the attempt held (decision 0042)
    push_back: bool = False
    suppress: bool = False
    retry: Retry | None = None
    pause: PauseReason | None = None


# The table. Columns: ledger state, outcome, breaker, then what else applies, by name.
L, S, B, R, P = LedgerState, SendOutcome, Breaker, Retry, PauseReason
# Before any transaction: nothing was sent; the open row is settled only where a state is given.
_BEFORE: dict[Event, _Row] = {
    Event.PROSPECT_INACTIVE:     _Row(L.SKIPPED, S.SKIPPED),
    Event.UNBUILDABLE:           _Row(L.FAILED, S.FAILED),
    Event.PAUSED:                _Row(None, S.MAILBOX_PAUSED, refund=True),
    Event.CAMPAIGN_PAUSED:       _Row(None, S.CAMPAIGN_PAUSED, refund=True),
    Event.TOKEN_REFUSED:         _Row(None, S.SENDER_PROBLEM, pause=P.AUTH_FAILED),
    Event.CREDENTIAL_UNREADABLE: _Row(None, S.SENDER_PROBLEM, pause=P.CONFIG_ERROR),
    Event.WORKSPACE_BUSY:        _Row(None, S.BUSY, refund=True),
    Event.LIMITS_DOWN:           _Row(None, S.BUSY),
}
# The transaction ended without a refusal to judge (or was delivered).
_TRANSACTION: dict[Event, _Row] = {
    Event.HOST_BUSY:             _Row(L.QUEUED, S.BUSY, refund=True),
    Event.PAUSED_BEFORE_DATA:    _Row(L.QUEUED, S.MAILBOX_PAUSED, refund=True),
    Event.CAMPAIGN_PAUSED_BEFORE_DATA: _Row(L.QUEUED, S.CAMPAIGN_PAUSED, refund=True),
    Event.PLACE_PASSED:          _Row(L.QUEUED, S.BUSY, refund=True),
    Event.STOPPED_BEFORE_DATA:   _Row(L.SKIPPED, S.SKIPPED, refund=True),
    Event.CONFIG_ERROR:          _Row(L.QUEUED, S.SENDER_PROBLEM, pause=P.CONFIG_ERROR),
    Event.NO_CONNECTION:         _Row(L.QUEUED, S.FAILED, B.DOWN, retry=R.CONNECTION),
    Event.OUTCOME_UNKNOWN:       _Row(L.UNKNOWN, S.UNKNOWN, B.DOWN),
    Event.DELIVERED:             _Row(L.SENT, S.SENT, B.UP),
}
# The server refused: it answered, so the host is up.
_REFUSALS: dict[ReplyClass, _Row] = {
    ReplyClass.HARD_BOUNCE:      _Row(L.HARD_BOUNCED, S.HARD_BOUNCED, B.UP, suppress=True),
    ReplyClass.SOFT_BOUNCE:      _Row(L.SOFT_BOUNCED, S.FAILED, B.UP, retry=R.SOFT_BOUNCE),
    ReplyClass.THROTTLED:        _Row(L.QUEUED, S.THROTTLED, B.UP, push_back=True),
    ReplyClass.SENDER_PROBLEM:   _Row(L.QUEUED, S.SENDER_PROBLEM, B.UP, pause=P.SENDER_PROBLEM),
    ReplyClass.QUOTA:            _Row(L.QUEUED, S.SENDER_PROBLEM, B.UP, pause=P.QUOTA),
    # A reply out of place (2xx or 3xx where a refusal came): retried like a soft bounce.
    ReplyClass.ACCEPTED:         _Row(L.SOFT_BOUNCED, S.FAILED, B.UP, retry=R.SOFT_BOUNCE),
    ReplyClass.CONNECTION:       _Row(L.SOFT_BOUNCED, S.FAILED, B.UP, retry=R.SOFT_BOUNCE),
}
del L, S, B, R, P


def decide(result: Event | Refused, attempt: int, policy: AttemptPolicy) -> SendDecision:
    """The table's row for ``result``, on attempt number ``attempt`` (1-based).

    Two rules depend on the attempt: a soft bounce or a connection failure is
    raised until the last attempt, which ends ``failed``; a busy slot (host
    connection, workspace, the limit store) hands a first attempt back to the
    step's queue, but a retry stays with its workflow as ``PLACE_LATER``: it must
    not start over with all its attempts, nor lose its day's place.
    """
    recorded: str | None
    if isinstance(result, Refused):
        row, recorded = _REFUSALS[result.reply_class], result.reply_class.value
    elif result in _TRANSACTION:
        row, recorded = _TRANSACTION[result], result.value
    else:
        row, recorded = _BEFORE[result], None
    ledger, retry, exhausted, outcome = row.ledger, row.retry, False, row.outcome
    if retry is not None and attempt >= policy.max_attempts:
        ledger, retry, exhausted = LedgerState.FAILED, None, True
    if outcome is SendOutcome.BUSY and attempt > 1:
        outcome = SendOutcome.PLACE_LATER
    pause = row.pause
    if pause is not None and isinstance(result, Refused) and result.at_auth:
        pause = PauseReason.AUTH_FAILED
    return SendDecision(
        ledger=ledger, recorded=recorded, outcome=None if retry else outcome, retry=retry,
        exhausted=exhausted, metric=retry.counted_as if retry else outcome.value,
        breaker=row.breaker, refund=row.refund,
        releases_day=(retry is None and outcome is not SendOutcome.PLACE_LATER
                      and ledger in (None, LedgerState.QUEUED, LedgerState.SKIPPED)),
        push_back=row.push_back,
        suppress=row.suppress, pause=pause.kind if pause else None, pause_reason=pause,
    )
