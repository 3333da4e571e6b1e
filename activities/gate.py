"""The gate: may this send go now, or from when? One Redis round trip in the common case.

In this version the gate knows the mailbox's sending window, its pause flag
and its daily cap (calendar day in the mailbox's time zone, and any rolling
24 h). A wait is answered with the instant it ends, so the workflow sleeps on
a durable timer instead of asking again and again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from temporalio import activity

from activities.models import GateInput, GateResult, GateVerdict
from limits.mailbox_budget import KEEP, MailboxBudget, Reservation, Verdict
from store.accounts import MailboxRecord, mailbox_record
from store.ledger import mailbox_sends_since

log = structlog.get_logger(__name__)
_CACHE_SECONDS = 30.0  # cap and window edits take effect within this


class GateActivities:
    def __init__(self, pool: asyncpg.Pool, budget: MailboxBudget, paused_recheck: float) -> None:
        self._pool = pool
        self._budget = budget
        self._paused_recheck = timedelta(seconds=paused_recheck)
        self._mailboxes: dict[str, tuple[float, MailboxRecord]] = {}

    async def _mailbox(self, mailbox_id: str) -> MailboxRecord:
        cached = self._mailboxes.get(mailbox_id)
        if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        record = await mailbox_record(self._pool, mailbox_id)
        self._mailboxes[mailbox_id] = (time.monotonic(), record)
        return record

    @activity.defn(name="gate_send")
    async def gate_send(self, inp: GateInput) -> GateResult:
        mailbox = await self._mailbox(inp.mailbox_id)
        now = datetime.now(UTC)
        opens = mailbox.window.next_open(now)
        if opens > now:
            return GateResult(verdict=GateVerdict.WAIT, until=opens, reason="outside sending window")
        reserve = await self._reserve(mailbox, str(inp.key), now)
        if reserve.verdict is Verdict.GO:
            return GateResult(verdict=GateVerdict.GO)
        if reserve.verdict is Verdict.PAUSED:
            return GateResult(
                verdict=GateVerdict.WAIT, until=now + self._paused_recheck, reason="mailbox paused"
            )
        assert reserve.free_at is not None
        return GateResult(
            verdict=GateVerdict.WAIT,
            until=mailbox.window.next_open(reserve.free_at),
            reason=f"daily limit {mailbox.daily_limit} reached ({reserve.verdict.value})",
        )

    async def _reserve(self, mailbox: MailboxRecord, send_key: str, now: datetime) -> Reservation:
        day = mailbox.window.day_bounds(now)
        result = await self._budget.reserve(mailbox.id, send_key, now, day, mailbox.daily_limit)
        if result.verdict is not Verdict.REBUILD:
            return result
        # Redis lost (or never had) this mailbox: reload it from PostgreSQL first.
        fresh = await mailbox_record(self._pool, mailbox.id)
        used = await mailbox_sends_since(self._pool, mailbox.id, now - KEEP)
        log.info("mailbox_budget_rebuilt", mailbox_id=mailbox.id, sends=len(used))
        await self._budget.rebuild(mailbox.id, fresh.paused, fresh.pause_reason, used)
        return await self._budget.reserve(mailbox.id, send_key, now, day, mailbox.daily_limit)
