"""Inputs and results of the maintenance workflows and activities (ids and counts only)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field


class CleanupInput(BaseModel):
    sent_retention: timedelta = timedelta(days=7)
    failed_retention: timedelta = timedelta(days=30)
    batch_size: int = Field(default=2000, ge=1)
    timeout: timedelta = timedelta(minutes=4)


class CleanupResult(BaseModel):
    deleted: dict[str, int]  # per retention rule: cancelled, sent, failed
    batches: int
    complete: bool  # False: the time ran out; the next run goes on


class HealthCheckInput(BaseModel):
    concurrency: int = Field(default=10, ge=1)
    timeout: timedelta = timedelta(minutes=4)


class HealthCheckResult(BaseModel):
    checked: int
    healthy: int
    paused: list[str] = []  # mailbox ids paused by this run
    resumed: list[str] = []  # mailbox ids this run resumed
    unreachable: list[str] = []  # connection failures: transient, left as they were


class ReconcileInput(BaseModel):
    timeout: timedelta = timedelta(minutes=4)


class ReconcileResult(BaseModel):
    campaigns_with_open_sends: int
    stuck_campaigns: list[str]
    ended: dict[str, int]  # sends given a final state, by that state
    open_in_running: int  # open sends whose step workflows run: not stuck


class VariantsInput(BaseModel):
    # Sends younger than this have had no time to be answered: not judged (decision 0052).
    reply_window: timedelta = timedelta(days=3)
    timeout: timedelta = timedelta(minutes=4)


class VariantsResult(BaseModel):
    steps_judged: int  # steps of running campaigns with a rule and no winner yet
    winners: list[str] = []  # "campaign:step:variant" decided by this run
