"""The limit store in one process's memory: the same contract as the Redis store.

Each operation holds a lock for its whole body, as a Lua script is atomic in
Redis. Times are kept in integer milliseconds, like the Lua, so both stores
give the same answers to the same questions.
"""

from __future__ import annotations

import asyncio
import bisect
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from limits.policy import provider_slot
from limits.store import (
    KEEP,
    Admission,
    AdmitRequest,
    Restoration,
    Verdict,
    host_scope,
    ms,
    restored_lease,
    span_ms,
)

_DAY = 86_400_000


def _at(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


@dataclass
class _Mailbox:
    ready: bool = False  # False: only a pause flag was written since the state was lost
    paused: bool = False
    reason: str = ""
    next_at: int = 0
    reserved: dict[str, int] = field(default_factory=dict)  # send key -> ms


@dataclass
class _Breaker:
    failures: int = 0
    open_until: int = 0
    probe: str | None = None
    probe_until: int = 0


class MemoryLimitStore:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.forget_everything()

    def forget_everything(self) -> None:
        """What a Redis restart without persistence does."""
        self._generation = ""  # the generation key: set by restore ('' = lost)
        self._mailboxes: dict[str, _Mailbox] = {}
        self._providers: dict[str, list[tuple[int, str]]] = {}  # sorted (instant, reservation)
        self._breakers: dict[str, _Breaker] = {}
        self._push_back: dict[str, int] = {}
        self._leases: dict[str, dict[str, int]] = {}  # scope -> lease -> expiry

    async def admit(self, req: AdmitRequest) -> Admission:
        async with self._lock:
            return self._admit(req)

    def _admit(self, req: AdmitRequest) -> Admission:
        now = ms(req.now)
        if not self._generation:
            return Admission(Verdict.RESTORE, req.now)
        box = self._mailboxes.get(req.mailbox_id)
        if box is None or not box.ready:
            return Admission(Verdict.REBUILD, req.now)
        if box.paused:
            return Admission(Verdict.WAIT, req.now, f"mailbox paused: {box.reason}")
        breaker = self._breakers.setdefault(req.host, _Breaker())
        probe = False
        if breaker.open_until > 0:
            if now < breaker.open_until:
                return Admission(Verdict.WAIT, _at(breaker.open_until), "circuit open")
            if breaker.probe not in (None, req.send_key) and breaker.probe_until > now:
                return Admission(Verdict.WAIT, _at(breaker.probe_until),
                                 "circuit half-open, probe in flight")
            probe = True
        box.reserved = {k: t for k, t in box.reserved.items() if t > now - span_ms(KEEP)}
        # A reservation made before today's start does not carry over: a send reserved
        # yesterday and sent today is one of today's sends (limits/lua/admit.lua).
        held = box.reserved.get(req.send_key, -1) >= ms(req.day[0])
        if not held:
            wait = self._over_cap(box, req, now)
            if wait:
                return wait
        # Every transaction keeps the mailbox's spacing, a retry too (limits/lua/admit.lua).
        at = max(now, box.next_at, self._push_back.get(req.host, 0))
        window = span_ms(req.provider_window)
        entries = [e for e in self._providers.get(req.provider, []) if e[0] > now - window]
        at = int(provider_slot([float(t) for t, _ in entries], float(at), req.provider_limit,
                               float(window)))
        if at - now > span_ms(req.horizon):
            return Admission(Verdict.WAIT, _at(at), "no slot within the reservation horizon")
        reservation = f"{req.send_key}@{at}#{self._generation}"
        bisect.insort(entries, (at, reservation))
        self._providers[req.provider] = entries
        if not held:
            box.reserved[req.send_key] = now
        box.next_at = at + span_ms(req.spacing_gap)
        if probe:
            breaker.probe, breaker.probe_until = req.send_key, at + span_ms(req.probe_ttl)
        return Admission(Verdict.GO, _at(at), probe=probe, reservation=reservation)

    @staticmethod
    def _over_cap(box: _Mailbox, req: AdmitRequest, now: int) -> Admission | None:
        start, end = ms(req.day[0]), ms(req.day[1])
        if sum(1 for t in box.reserved.values() if start <= t < end) >= req.cap:
            return Admission(Verdict.WAIT, req.day[1], "daily cap reached")
        rolling = sorted(t for t in box.reserved.values() if t > now - _DAY)
        if len(rolling) >= req.cap:
            return Admission(Verdict.WAIT, _at(rolling[len(rolling) - req.cap] + _DAY),
                             "rolling 24 h cap reached")
        return None

    async def restore(self, restoration: Restoration) -> bool:
        async with self._lock:
            if self._generation:
                return False
            r = restoration
            for provider, sends in r.provider_sends.items():
                entries = self._providers.setdefault(provider, [])
                for attempt, started in sends:
                    bisect.insort(entries, (ms(started), f"restored:{attempt}@{ms(started)}"))
            for host, connections in r.host_connections.items():
                leases = self._leases.setdefault(host_scope(host), {})
                for attempt, until in connections:
                    leases.setdefault(restored_lease(attempt), ms(until))
            for host in r.held_hosts:
                self._push_back[host] = max(self._push_back.get(host, 0), ms(r.hold_until))
            self._generation = secrets.token_hex(8)
            return True

    async def rebuild_mailbox(
        self, mailbox_id: str, paused: bool, reason: str, sends: list[tuple[str, datetime]]
    ) -> None:
        async with self._lock:
            box = self._mailboxes.get(mailbox_id)
            if box is not None and box.ready:
                return
            if box is None:  # a pause written since the loss is newer than ours: keep it
                box = self._mailboxes[mailbox_id] = _Mailbox(paused=paused, reason=reason)
            for send_key, at in sends:
                box.reserved.setdefault(send_key, ms(at))
            box.ready = True

    async def refund(self, provider: str, reservation: str) -> None:
        async with self._lock:
            entries = self._providers.get(provider, [])
            self._providers[provider] = [e for e in entries if e[1] != reservation]

    async def day_holders(self, mailbox_id: str, since: datetime) -> list[str]:
        async with self._lock:
            box = self._mailboxes.get(mailbox_id)
            return [k for k, t in box.reserved.items() if t >= ms(since)] if box else []

    async def release_day(self, mailbox_id: str, send_key: str) -> None:
        async with self._lock:
            box = self._mailboxes.get(mailbox_id)
            if box is not None:
                box.reserved.pop(send_key, None)

    async def set_paused(self, mailbox_id: str, paused: bool, reason: str) -> None:
        async with self._lock:
            box = self._mailboxes.setdefault(mailbox_id, _Mailbox())
            box.paused, box.reason = paused, reason

    async def acquire_lease(
        self, scope: str, lease_id: str, limit: int, now: datetime, ttl: timedelta,
        generation: str = "",
    ) -> bool:
        async with self._lock:
            if not self._generation or generation not in ("", self._generation):
                return False
            at = ms(now)
            leases = {k: t for k, t in self._leases.get(scope, {}).items() if t > at}
            self._leases[scope] = leases
            if lease_id not in leases and len(leases) >= limit:
                return False
            leases[lease_id] = ms(now + ttl)
            return True

    async def release_lease(self, scope: str, lease_id: str) -> None:
        async with self._lock:
            self._leases.get(scope, {}).pop(lease_id, None)

    async def record_connection(
        self, host: str, ok: bool, now: datetime, threshold: int, open_for: timedelta,
        attempt: str = "", open_until: datetime | None = None,
    ) -> bool:
        async with self._lock:
            leases = self._leases.get(host_scope(host), {})
            if attempt and restored_lease(attempt) in leases:
                placeholder = restored_lease(attempt)
                leases[placeholder] = min(leases[placeholder], ms(open_until or now))
            if ok:
                self._breakers.pop(host, None)
                return False
            b = self._breakers.setdefault(host, _Breaker())
            at = ms(now)
            b.failures += 1
            if (b.open_until > 0 and at >= b.open_until) or b.failures >= threshold:
                b.open_until, b.failures, b.probe, b.probe_until = at + span_ms(open_for), 0, None, 0
                return True
            return b.open_until > 0 and at < b.open_until

    async def push_back(self, host: str, until: datetime) -> None:
        async with self._lock:
            self._push_back[host] = max(self._push_back.get(host, 0), ms(until))
