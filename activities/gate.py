"""The gate: may this send go, and when? One Redis round trip in the common case.

It asks every shared limit at once (limits/lua/admit.lua): the mailbox's
pause flag, daily cap (its local calendar day and any rolling 24 h, reduced
while it warms up) and spacing; the provider's per-minute window; the host's
circuit breaker and throttling push-back. The answer is "go at T" (a
reserved instant, now or soon: the workflow sleeps on a durable timer until
it) or "wait until T" (nothing reserved: the mailbox is skipped until T).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from temporalio import activity

from activities.models import GateInput, GateResult, GateVerdict
from config.names import GATE_SEND
from limits.policy import LimitPolicy
from limits.store import KEEP, Admission, AdmitRequest, GateLimit, LimitStore, Restoration, Verdict
from store.accounts import MailboxRecord, mailbox_record
from store.ledger import any_open, mailbox_sends_since
from store.limit_history import limit_history
from telemetry.metrics import GATE_WAITS, LIMIT_STORE_RESTORES

log = structlog.get_logger(__name__)
_CACHE_SECONDS = 30.0  # cap, window and provider-size edits take effect within this


class Gate:
    """The limits' answer for one SMTP transaction of a send; asked by the gate activity
    before a send's first attempt and by the send activity before each retry, so that
    every transaction has its own place (decision 0042)."""

    def __init__(
        self, pool: asyncpg.Pool, store: LimitStore, policy: LimitPolicy,
        paused_recheck: float, send_timeout: float,
    ) -> None:
        self._pool = pool
        self._store = store
        self._policy = policy
        self._paused_recheck = timedelta(seconds=paused_recheck)
        self._probe_ttl = timedelta(seconds=send_timeout + 30)
        # A full day whose places are held by sends still open is looked at again once
        # they have ended: one that goes back to the queue unsent gives its place back
        # (decision 0019, item 7), which a step skipping the mailbox until its next day
        # would leave unused.
        self._cap_recheck = timedelta(seconds=send_timeout + 30)
        self._mailboxes: dict[str, tuple[float, MailboxRecord]] = {}
        self._provider_sizes: dict[str, tuple[float, int]] = {}

    async def _mailbox(self, mailbox_id: str) -> MailboxRecord:
        cached = self._mailboxes.get(mailbox_id)
        if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        record = await mailbox_record(self._pool, mailbox_id)
        self._mailboxes[mailbox_id] = (time.monotonic(), record)
        return record

    async def _provider_size(self, provider: str) -> int:
        cached = self._provider_sizes.get(provider)
        if cached and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        size: int = await self._pool.fetchval(
            "SELECT count(*) FROM mailboxes WHERE provider = $1", provider
        )
        self._provider_sizes[provider] = (time.monotonic(), size)
        return size

    async def ask(
        self, mailbox_id: str, send_key: str, now: datetime, closes_at: datetime | None = None
    ) -> GateResult:
        """GO at a reserved instant (now or soon), or WAIT until an instant (nothing reserved).
        With ``closes_at`` (the recipient's window closes), no slot at or after it is given:
        past it, the send goes back to the queue at once (WAIT until now), where the claim
        moves it to the recipient's next opening (decision 0051)."""
        if closes_at is not None and closes_at <= now:
            return GateResult(verdict=GateVerdict.WAIT, until=now, reason="recipient's window closed")
        mailbox = await self._mailbox(mailbox_id)
        opens = mailbox.window.next_open(now)
        if opens > now:
            GATE_WAITS.labels(limit=GateLimit.SENDING_WINDOW, provider=mailbox.provider).inc()
            return GateResult(verdict=GateVerdict.WAIT, until=opens, reason="outside sending window")
        admission = await self._admit(mailbox, send_key, now, closes_at)
        if admission.verdict is Verdict.GO:
            return GateResult(verdict=GateVerdict.GO, until=admission.at,
                              reason="circuit probe" if admission.probe else "",
                              reservation=admission.reservation)
        until = admission.at
        GATE_WAITS.labels(limit=admission.limit, provider=mailbox.provider).inc()
        if admission.limit is GateLimit.MAILBOX_PAUSED:
            until = now + self._paused_recheck  # a resume may come at any moment
        elif admission.limit in (GateLimit.DAILY_CAP, GateLimit.ROLLING_CAP) and await any_open(
                self._pool, await self._store.day_holders(mailbox.id, now - timedelta(days=1))):
            until = min(until, now + self._cap_recheck)
        return GateResult(verdict=GateVerdict.WAIT, until=mailbox.window.next_open(until),
                          reason=admission.reason)

    async def _restore(self, now: datetime) -> None:
        """The store lost its state: put back what the ledger says still counts
        (docs/decisions/0029). Several workers may do it at once; one restores.
        A host sent to within a breaker's open time or a push-back's jitter may have
        had either: it is held back, from the gate's clock, as if pushed back."""
        p = self._policy
        seen = await limit_history(self._pool, p.provider_window, p.connection_lease, p.connection_idle,
                                   active=max(p.breaker_open_for, p.throttle_jitter))
        restored = await self._store.restore(Restoration(
            provider_sends=seen.provider_sends, provider_window=p.provider_window,
            host_connections=seen.host_connections, held_hosts=seen.active_hosts,
            hold_until=now + p.restore_hold,
        ))
        if restored:
            LIMIT_STORE_RESTORES.inc()
            log.warning(
                "limit_store_restored", provider_sends=sum(map(len, seen.provider_sends.values())),
                open_connections=sum(map(len, seen.host_connections.values())),
                held_hosts=len(seen.active_hosts), hold_seconds=p.restore_hold.total_seconds())

    def _request(
        self, mailbox: MailboxRecord, send_key: str, now: datetime, size: int, closes_at: datetime | None
    ) -> AdmitRequest:
        cap = mailbox.cap_on(now)
        p: LimitPolicy = self._policy
        # A slot past the recipient's window would send outside it: the horizon ends there
        # (a later slot answers WAIT, which holds the mailbox until its next free slot).
        horizon = p.reservation_horizon if closes_at is None else min(
            p.reservation_horizon, closes_at - now - timedelta(milliseconds=1))
        return AdmitRequest(
            mailbox_id=mailbox.id, send_key=send_key, now=now, day=mailbox.window.day_bounds(now),
            cap=cap, provider=mailbox.provider, provider_limit=p.provider_limit(mailbox.provider, size),
            provider_window=p.provider_window, host=mailbox.smtp_host,
            spacing_gap=p.spacing_gap(mailbox.window, cap, random.random()),
            horizon=horizon, probe_ttl=self._probe_ttl,
        )

    async def _admit(
        self, mailbox: MailboxRecord, send_key: str, now: datetime, closes_at: datetime | None = None
    ) -> Admission:
        request = self._request(mailbox, send_key, now, await self._provider_size(mailbox.provider),
                                closes_at)
        admission = await self._store.admit(request)
        if admission.verdict is Verdict.RESTORE:
            await self._restore(now)
            admission = await self._store.admit(request)
        if admission.verdict is not Verdict.REBUILD:
            return admission
        # The store lost (or never had) this mailbox: reload it from PostgreSQL first.
        fresh = await mailbox_record(self._pool, mailbox.id)
        used = await mailbox_sends_since(self._pool, mailbox.id, now - KEEP)
        log.info("mailbox_limits_rebuilt", mailbox_id=mailbox.id, sends=len(used))
        await self._store.rebuild_mailbox(mailbox.id, fresh.paused, fresh.pause_reason, used)
        return await self._store.admit(request)


class GateActivities(Gate):
    @activity.defn(name=GATE_SEND)
    async def gate_send(self, inp: GateInput) -> GateResult:
        return await self.ask(inp.mailbox_id, str(inp.key), inp.now or datetime.now(UTC), inp.closes_at)
