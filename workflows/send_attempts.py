"""A send's attempts, as a step workflow and a send's retry workflow both make them.

An attempt is one execution of the SMTP send activity under the send retry policy
(attempts at +0, +5 min, +35 min, +2 h 35 min at the earliest, decision 0021): the
policy retries hang-ups, timeouts and lost workers inside the execution, and the Web UI
shows it on each. A soft bounce ends the execution instead, and so does a retry whose
place in the limits is later (decision 0042): the wait until the next attempt is a
durable timer in the send's retry workflow (decision 0049), never a step run's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        SEND_BACKOFF,
        SEND_FIRST_RETRY,
        SEND_MAX_ATTEMPTS,
        SEND_MAX_RETRY,
        SendInput,
        SendKey,
        SendOutcome,
        SendResult,
        SettleFailedInput,
    )
    from config.names import (
        HEALTH_PAUSE_SIGNAL,
        PAUSE_SIGNAL,
        SEND_EMAIL,
        SETTLE_SEND,
        mailbox_workflow_id,
    )
    from mail.outcomes import PauseKind
    from workflows.models import StepTuning

# Settling a failed send is one PostgreSQL statement: while it is down, keep asking.
_SETTLE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# MailboxWorkflow's signal for each kind of pause a send asks for.
_PAUSE_SIGNALS = {PauseKind.OPERATOR: PAUSE_SIGNAL, PauseKind.HEALTH_CHECK: HEALTH_PAUSE_SIGNAL}


def send_retry_policy(first_retry: timedelta = SEND_FIRST_RETRY, made: int = 0) -> RetryPolicy:
    """5 min, 30 min, 2 h between the 4 attempts of a send (docs/decisions/0021-send-outcomes-table.md).

    After ``made`` attempts (a retry that waited for its place runs as a new
    execution, decision 0042), what is left of the same schedule: the next attempt
    now, then the intervals that would have followed it."""
    return RetryPolicy(
        initial_interval=min(first_retry * SEND_BACKOFF ** made, SEND_MAX_RETRY),
        backoff_coefficient=SEND_BACKOFF,
        maximum_interval=SEND_MAX_RETRY,
        maximum_attempts=SEND_MAX_ATTEMPTS - made,
    )


class NextAttempt(NamedTuple):
    """When a send that ended an execution unsent goes again, and with what."""

    at: datetime
    made: int  # attempts before it
    reservation: str  # a place in the limits held for ``at``, or '' (it asks then)


def next_attempt(result: SendResult, first_retry: timedelta, now: datetime) -> NextAttempt:
    """After a soft bounce: the wait the retry policy would have made (+5 min, +30 min,
    +2 h after attempts 1, 2, 3). After PLACE_LATER: its place, and the attempt that
    waits for it is made again (a result without a number counts as the first)."""
    if result.outcome is SendOutcome.SOFT_BOUNCED:
        return NextAttempt(now + send_retry_policy(first_retry, result.attempt - 1).initial_interval,
                           result.attempt, "")
    assert result.outcome is SendOutcome.PLACE_LATER
    return NextAttempt(result.retry_at or now, max(result.attempt - 1, 0), result.reservation)


async def send_once(key: SendKey, mailbox_id: str, reservation: str, made: int, tuning: StepTuning,
                    returns_soft_bounce: bool) -> SendResult:
    """One execution of the send activity, with what is left of the send's retry policy;
    raises ActivityError once its attempts or its time are used up."""
    result: SendResult = await workflow.execute_activity(
        SEND_EMAIL,
        SendInput(key=key, reservation=reservation, attempts_before=made,
                  returns_soft_bounce=returns_soft_bounce),
        result_type=SendResult,
        start_to_close_timeout=tuning.send_start_to_close,
        schedule_to_close_timeout=tuning.send_schedule_to_close,
        retry_policy=send_retry_policy(tuning.send_first_retry, made),
        summary=f"send {key} via {mailbox_id}" + (f", attempt {made + 1}" if made else ""),
    )
    return result


async def settle_failed(key: SendKey, err: ActivityError) -> str:
    """A send whose last execution failed gets its final state; returns it."""
    reason = str(err.cause or err)
    state: str = await workflow.execute_activity(
        SETTLE_SEND,
        SettleFailedInput(key=key, reason=reason[:500]),
        result_type=str,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=_SETTLE_RETRY,
    )
    return state


async def pause_mailbox(id_prefix: str, mailbox_id: str, result: SendResult) -> None:
    """A sender problem pauses the mailbox through its workflow.

    An unusable account (no STARTTLS, refused certificate) is paused as the health
    check's kind: its next good login lifts it (decision 0018). Other sender problems
    (auth, quota, policy) wait for the operator."""
    mailbox = workflow.get_external_workflow_handle(mailbox_workflow_id(id_prefix, mailbox_id))
    await mailbox.signal(_PAUSE_SIGNALS[result.pause or PauseKind.OPERATOR], result.reason)
