"""The limit store: the atomic operations every limit is built from.

Two implementations keep the same contract (tests/limits run one suite
against both): ``RedisLimitStore`` (shared by all workers; each operation is
one Lua script, so one round trip and no race between check and update) and
``MemoryLimitStore`` (one process; for fast tests and as the executable
description of the Lua).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol


class Verdict(StrEnum):
    GO = "go"  # send at ``at`` (now, or a reserved instant shortly after)
    WAIT = "wait"  # nothing reserved; ask again at ``at``
    REBUILD = "rebuild"  # the store lost this mailbox: reload it from the ledger first
    RESTORE = "restore"  # the store lost its shared state: restore it from the ledger first


class GateLimit(StrEnum):
    """The limit behind a gate's "wait": the ``limit`` label of outreach_gate_waits."""

    SENDING_WINDOW = "sending_window"  # decided by the gate itself, before the store
    MAILBOX_PAUSED = "mailbox_paused"
    CIRCUIT_OPEN = "circuit_open"
    CIRCUIT_HALF_OPEN = "circuit_half_open"
    DAILY_CAP = "daily_cap"
    ROLLING_CAP = "rolling_cap"
    PROVIDER_OR_SPACING = "provider_or_spacing"
    OTHER = "other"


# A "wait" reason's words (limits/lua/admit.lua and MemoryLimitStore say them) -> its limit.
# The words are what operators see in a send's history; the limit is read only here.
_WAIT_REASONS = (
    ("mailbox paused", GateLimit.MAILBOX_PAUSED),
    ("circuit open", GateLimit.CIRCUIT_OPEN),
    ("circuit half-open", GateLimit.CIRCUIT_HALF_OPEN),
    ("daily cap", GateLimit.DAILY_CAP),
    ("rolling 24 h cap", GateLimit.ROLLING_CAP),
    ("no slot", GateLimit.PROVIDER_OR_SPACING),
)


@dataclass(frozen=True)
class AdmitRequest:
    mailbox_id: str
    send_key: str
    now: datetime
    day: tuple[datetime, datetime]  # the mailbox's calendar day holding ``now``
    cap: int  # today's cap (daily limit, or the warm-up ramp's)
    provider: str
    provider_limit: int
    provider_window: timedelta
    host: str
    spacing_gap: timedelta
    horizon: timedelta
    probe_ttl: timedelta


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    at: datetime
    reason: str = ""
    probe: bool = False  # this send is the circuit breaker's single probe
    reservation: str = ""  # GO: the provider slot taken, to give back if unused

    @property
    def limit(self) -> GateLimit:
        """WAIT: the limit that said so."""
        return next((limit for words, limit in _WAIT_REASONS if self.reason.startswith(words)),
                    GateLimit.OTHER)


@dataclass(frozen=True)
class Restoration:
    """What the store forgot when it lost its state (a restart without persistence, a
    flush, a failover to an empty replica), as the ledger tells it: restored before
    anything is admitted again, so a loss never lets more through than a provider
    or host takes (docs/decisions/0029).

    Members are ids of the ledger's attempts; instants are when each counts until.
    """

    provider_sends: dict[str, list[tuple[str, datetime]]]  # provider -> (attempt, started)
    provider_window: timedelta  # how long a provider window entry is kept
    host_connections: dict[str, list[tuple[str, datetime]]]  # host -> (attempt, may be open until)
    # Hosts sent to lately, whose breaker or push-back was forgotten: held back until
    # ``hold_until``, as if pushed back, rather than taken for healthy.
    held_hosts: list[str]
    hold_until: datetime


class LimitStore(Protocol):
    async def admit(self, req: AdmitRequest) -> Admission: ...

    async def restore(self, restoration: Restoration) -> bool:
        """Put back what the ledger says is still counting, then trust the store again;
        False (and nothing changed) if it was trusted already (another worker restored it)."""
        ...

    async def rebuild_mailbox(
        self, mailbox_id: str, paused: bool, reason: str, sends: list[tuple[str, datetime]]
    ) -> None: ...

    async def set_paused(self, mailbox_id: str, paused: bool, reason: str) -> None: ...

    async def refund(self, provider: str, reservation: str) -> None:
        """Give back a provider slot that was not used (nothing was sent)."""
        ...

    async def day_holders(self, mailbox_id: str, since: datetime) -> list[str]:
        """The send keys holding a place in the mailbox's budget since ``since``."""
        ...

    async def release_day(self, mailbox_id: str, send_key: str) -> None:
        """Give back a send's place in its mailbox's day: nothing was sent and the send
        went back to the queue, so the gate counts it again only if it comes back."""
        ...

    async def acquire_lease(
        self, scope: str, lease_id: str, limit: int, now: datetime, ttl: timedelta,
        generation: str = "",
    ) -> bool:
        """Take (or renew) one of ``limit`` concurrent leases of ``scope`` (e.g. a
        host's connections, a workspace's sends in flight); False if all are held.
        A lease not released ends by itself after ``ttl``: a dead worker keeps none.
        None is taken while the store is not trusted (it lost its state and was not
        restored yet): a connection opened before the loss may still be open. With
        ``generation`` (a send's reservation's), none is taken unless the store is
        still in that generation: a slot granted before a loss was forgotten with it."""
        ...

    async def release_lease(self, scope: str, lease_id: str) -> None: ...

    async def record_connection(
        self, host: str, ok: bool, now: datetime, threshold: int, open_for: timedelta,
        attempt: str = "", open_until: datetime | None = None,
    ) -> bool:
        """Count a connection success or failure; True if the breaker is now open.

        With ``attempt``: that attempt has ended and its connection may stay open until
        ``open_until`` at most; a host slot restored for it while it was in progress
        (decision 0029) is shortened to that, in the same step."""
        ...

    async def push_back(self, host: str, until: datetime) -> None:
        """No new send to ``host`` before ``until`` (a throttling reply)."""
        ...


def generation_of(reservation: str) -> str:
    """The store generation a provider slot was granted in ('' if it names none)."""
    return reservation.rpartition("#")[2] if "#" in reservation else ""


def reserved_instant(reservation: str) -> datetime | None:
    """The instant a provider place was reserved for (``key@ms#generation``); None for ''."""
    if "@" not in reservation:
        return None
    instant = reservation.rpartition("@")[2].partition("#")[0]
    return datetime.fromtimestamp(int(instant) / 1000, UTC)


def restored_lease(attempt: str) -> str:
    """The placeholder lease a restore gives a connection the ledger says may be open."""
    return f"restored:{attempt}"


def host_scope(host: str) -> str:
    """The lease scope of a host's connections (limits/host_slots.py)."""
    return f"host:{host}"


KEEP = timedelta(hours=48)  # mailbox reservations older than this cannot matter


# Both stores keep times in integer milliseconds, as the Lua scripts do, so they
# give the same answers to the same questions.
def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def span_ms(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)
