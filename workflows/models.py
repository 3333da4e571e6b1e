"""Inputs, results and query answers of the workflows."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from activities.models import SendKey


class StepTuning(BaseModel):
    """Knobs a step workflow runs with, fixed when the campaign starts (from settings)."""

    window: int = Field(default=50, ge=1)
    sends_per_run: int = Field(default=300, ge=1)
    per_mailbox: int = Field(default=3, ge=1)
    send_start_to_close: timedelta = timedelta(minutes=2)
    send_schedule_to_close: timedelta = timedelta(hours=4)
    send_first_retry: timedelta = timedelta(minutes=5)
    paused_recheck: timedelta = timedelta(seconds=10)
    min_sleep: timedelta = timedelta(seconds=2)
    # An idle step that expects nothing (no timer, nothing in flight) still
    # claims after this long: a safety net for a lost wake-up (decision 0028).
    stall_check: timedelta = timedelta(minutes=10)
    # List campaign, step and the ids a run holds in search attributes. Off only
    # where the server cannot (the time-skipping test server has no custom ones).
    search_attributes: bool = True
    # Bytes of one search attribute value a run fills with the ids it holds (the
    # server's default limit is 2,048), and the longest prospect id it reserves room for.
    # They decide when a run continues as new, so they travel with the run: a
    # deployment that changes a default does not change a running execution's commands.
    attribute_budget: int = 1_900
    max_prospect_id_chars: int = 12  # bigserial ids, far beyond any real count
    # A throttled mailbox's sends are spread over this (a random draw, recorded).
    throttle_jitter: timedelta = timedelta(minutes=5)


class StepInput(BaseModel):
    id_prefix: str
    campaign_id: str
    step: int
    delay: timedelta
    tuning: StepTuning = StepTuning()
    # Step 1 of an open campaign: ends only once the campaign is closed (told
    # like a follow-up is told its step before ended).
    awaits_close: bool = False
    # Steps of a campaign that continues as new (decision 0048): the campaign run
    # that started this step may be gone when it ends, so it reports its end (or
    # its cancellation) to the campaign's latest run by signal, with the number of
    # this start of the step; 0 (older campaigns): it reports nothing.
    generation: int = 0
    # Carried over continue-as-new:
    previous_done: bool = False
    paused: bool = False
    blocked: dict[str, datetime] = {}
    outcomes: dict[str, int] = {}
    runs: int = 1
    # Prospects whose send waits between attempts in a retry workflow of its own
    # (decision 0049): not claimed again, and the step does not end, until it is
    # handed back.
    handed_off: list[int] = []


class StepResult(BaseModel):
    campaign_id: str
    step: int
    outcomes: dict[str, int]
    runs: int


class StepEnded(BaseModel):
    """A step's report to its campaign (decision 0048): this start of it has ended."""

    step: int
    generation: int
    result: StepResult | None = None  # None when it ended cancelled or failed
    cancelled: bool = False
    failure: str = ""  # what it failed with


class CampaignCarry(BaseModel):
    """What a campaign run hands the next across continue-as-new (decision 0048)."""

    running: list[bool]  # per step: its latest start has not reported its end
    generations: list[int]  # per step: the number of its latest start
    results: list[StepResult | None]
    paused: bool
    closed: bool
    refusals: int
    runs: int


class CampaignInput(BaseModel):
    id_prefix: str
    campaign_id: str
    delays: list[timedelta]  # one per step; the first is zero
    tuning: StepTuning = StepTuning()
    # Waits for prospects with nothing left to send until closed.
    open: bool = False
    # A run continues as new past this many history events (or when the server
    # suggests it), at a quiet moment; carried in the input so a deployment that
    # changes the default does not change a running execution's commands.
    events_per_run: int = Field(default=2_000, ge=100)
    # A step that can no longer report its end (terminated, timed out) is found by
    # looking at the step workflows after this long without news.
    step_check: timedelta = timedelta(hours=1)
    carry: CampaignCarry | None = None  # set by continue-as-new


class CampaignResult(BaseModel):
    campaign_id: str
    steps: list[StepResult]


class MailboxStatus(BaseModel):
    mailbox_id: str
    paused: bool
    reason: str
    paused_by: str = ""
    # True once the latest pause/resume is in force where sends look.
    applied: bool


class SendRetryInput(BaseModel):
    """A send its step handed to a workflow of its own to wait between attempts (decision 0049)."""

    id_prefix: str
    key: SendKey
    mailbox_id: str
    retry_at: datetime  # the earliest the next attempt goes
    attempts_made: int  # by the send so far: the retry schedule goes on from them
    reservation: str = ""  # a place in the limits held for ``retry_at`` (a PLACE_LATER's)
    tuning: StepTuning  # the step's: the send's timeouts and retry schedule


class SendHandedBack(BaseModel):
    """A retry workflow's word to its step: the send is no longer in its hands."""

    prospect_id: int
    outcome: str  # what it came to, counted in the step's outcomes
