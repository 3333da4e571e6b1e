"""Input and result of the inbox poll (ids and counts only, like the maintenance ones)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field


class InboxPollInput(BaseModel):
    max_message_bytes: int = Field(default=2 * 2**20, ge=1024)
    match_window: timedelta = timedelta(days=90)
    imap_timeout_seconds: float = Field(default=30.0, gt=0)
    concurrency: int = Field(default=10, ge=1)
    timeout: timedelta = timedelta(minutes=4)


class InboxPollResult(BaseModel):
    mailboxes: int
    found: dict[str, int]  # new inbound messages by class
    stopped: int  # prospects whose sequence this pass stopped
    failed: list[str] = []  # mailbox ids whose inbox could not be read


class WebhookInput(BaseModel):
    batch_size: int = Field(default=100, ge=1)
    timeout: timedelta = timedelta(minutes=4)


class WebhookResult(BaseModel):
    delivered: int
