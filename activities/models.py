"""Inputs and results of the activities: ids and small facts only.

Prospect addresses, template fields and message content never travel here;
activities read them from PostgreSQL by id.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, model_validator

from mail.outcomes import PauseKind, PauseReason
from mail.outcomes import SendOutcome as SendOutcome  # defined with the table that decides it

# The send retry policy gives attempts at +0, +5 min, +35 min, +2 h 35 min:
# initial 5 min, coefficient 6 (5 -> 30 min), capped at 2 h, 4 attempts.
SEND_MAX_ATTEMPTS = 4
SEND_FIRST_RETRY = timedelta(minutes=5)
SEND_BACKOFF = 6.0
SEND_MAX_RETRY = timedelta(hours=2)


class SendKey(BaseModel):
    campaign_id: str
    step: int
    prospect_id: int

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.step}:{self.prospect_id}"


class DueSend(BaseModel):
    prospect_id: int
    mailbox_id: str
    # The step variant the send was given when claimed ('': the implicit one, or a result
    # recorded before variants); here so the Event History shows it (decision 0052).
    variant: str = ""
    # When the recipient's window closes (decision 0051); None: the campaign has none.
    closes_at: datetime | None = None


class DueSendsInput(BaseModel):
    campaign_id: str
    step: int
    as_of: datetime
    limit: int
    per_mailbox: int = 1_000_000
    exclude_prospects: list[int] = []
    blocked_mailboxes: list[str] = []


class DueSendsResult(BaseModel):
    sends: list[DueSend]
    # The earliest instant a prospect not yet due becomes due, if any.
    next_due_at: datetime | None
    # Prospects of this step not yet in a final state (due or not); only
    # counted when nothing is due, since it is what ends the step (and only up
    # to the page plus those in flight: "none" is what matters).
    pending: int | None
    # False when every mailbox of the campaign is paused or retired: the step before
    # sends nothing until a resume, which tells the steps (decision 0046). Results
    # recorded before this field read True: they acted as if some mailbox could send.
    sendable: bool = True


class GateInput(BaseModel):
    key: SendKey
    mailbox_id: str
    # The workflow's clock: limits are decided in workflow time, which is
    # wall-clock time in production and skipped time in tests.
    now: datetime | None = None
    # The recipient's window closes then (decision 0051): no slot at or after it is given.
    closes_at: datetime | None = None


class GateVerdict(StrEnum):
    GO = "go"
    WAIT = "wait"


class GateResult(BaseModel):
    verdict: GateVerdict
    # GO: the reserved instant to send at (now or shortly after); WAIT: when to ask again.
    until: datetime | None = None
    reason: str = ""
    # GO: the provider slot reserved for this send, given back if nothing is sent.
    reservation: str = ""


# The head of a pause reason that the next good health check lifts (activities/health.py).
CONFIG_ERROR = PauseReason.CONFIG_ERROR


class SendResult(BaseModel):
    outcome: SendOutcome
    code: int | None = None
    # The server's reply, so a send's history shows what the server said.
    reply: str = ""
    # For SENDER_PROBLEM: the pause reason (e.g. "auth_failed: 535 5.7.8").
    reason: str = ""
    # For THROTTLED: when the host takes sends again (jittered push-back); for
    # PLACE_LATER: when the retry's place in the limits comes (decision 0042).
    retry_at: datetime | None = None
    # For PLACE_LATER: the place reserved for the retry at ``retry_at`` ('' if none was:
    # ask again then), and the number of the attempt that waits for it.
    reservation: str = ""
    attempt: int = 0
    # For SENDER_PROBLEM: who lifts the pause the mailbox gets.
    pause: PauseKind | None = None

    @model_validator(mode="before")
    @classmethod
    def _pause_of_earlier_results(cls, data: Any) -> Any:
        """A result recorded before ``pause`` existed (histories still hold them) named
        its pause in the reason's head, as the step workflow then read it."""
        if (isinstance(data, dict) and "pause" not in data
                and data.get("outcome") == SendOutcome.SENDER_PROBLEM):
            lifted_by_health_check = str(data.get("reason", "")).startswith(f"{CONFIG_ERROR}:")
            data = {**data, "pause": PauseKind.HEALTH_CHECK if lifted_by_health_check
                    else PauseKind.OPERATOR}
        return data


class SendInput(BaseModel):
    key: SendKey
    # The place in the limits this execution's first attempt holds: from the gate's GO,
    # or a retry's own place after a PLACE_LATER. Any attempt without one asks the
    # limits for its own place before its SMTP transaction (decision 0042).
    reservation: str = ""
    # Attempts made by earlier executions of this send (a retry that waited for its
    # place runs as a new execution): Temporal's attempt counts on from them.
    attempts_before: int = 0
    # A soft bounce with attempts left ends the execution with a SOFT_BOUNCED result
    # instead of raising it for the retry policy, so no execution sleeps between
    # soft-bounce attempts (decision 0049). False: a caller from before, which expects
    # the raise. Hang-ups, timeouts and lost workers still retry under the policy.
    returns_soft_bounce: bool = False


class SettleFailedInput(BaseModel):
    key: SendKey
    reason: str


class CampaignStateInput(BaseModel):
    campaign_id: str
    state: str


# Who paused a mailbox (mailboxes.paused_by, docs/decisions/0012): a health check
# resumes only its own pauses and never overrides an operator's.
PAUSED_BY_OPERATOR = "operator"
PAUSED_BY_HEALTH_CHECK = "health_check"


class MailboxStateInput(BaseModel):
    mailbox_id: str
    paused: bool
    reason: str = ""
    paused_by: str | None = None  # PAUSED_BY_OPERATOR (when None) or PAUSED_BY_HEALTH_CHECK


class MailboxInput(BaseModel):
    """The MailboxWorkflow's input, here since the health-check activity starts it too."""

    mailbox_id: str
    paused: bool = False
    reason: str = ""
    # PAUSED_BY_OPERATOR or PAUSED_BY_HEALTH_CHECK while paused.
    paused_by: str = ""
    # Carried over continue-as-new: requested vs applied change counters.
    version: int = 0
    applied: int = 0
    # Changes a run applies before it continues as new (long before its history grows
    # large); in the input, so a new default never changes a running execution.
    changes_per_run: int = 200
