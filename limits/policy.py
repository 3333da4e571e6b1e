"""The limits' numbers and the pure arithmetic over them (no I/O).

Defaults are the reference article's; every one is configuration
(``LimitPolicy`` is built from settings by the worker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from config.settings import Settings
from limits.window import SendingWindow

_PER_MINUTE = {"gmail": 150, "outlook": 100, "yahoo": 50, "other": 30}
_CONNECTIONS = {"gmail": 15, "outlook": 10, "other": 5}


@dataclass(frozen=True)
class LimitPolicy:
    provider_per_minute: dict[str, int] = field(default_factory=lambda: dict(_PER_MINUTE))
    # Mailboxes per provider that one unit of the provider limit covers.
    provider_scale_unit: int = 150
    # The provider window is a little longer than a minute so that network
    # jitter between our reservation and the server's receipt can never let
    # a server-side 60-second window see more than the limit.
    provider_window: timedelta = timedelta(seconds=62)
    # How late after its place a transaction may reach DATA and still use it: within the
    # window's margin above, a provider's own minute never sees more than the limit.
    place_lateness: timedelta = timedelta(seconds=1.5)
    host_connections: dict[str, int] = field(default_factory=lambda: dict(_CONNECTIONS))
    workspace_in_flight: int = 50
    # A workspace slot is held for one SMTP transaction; it expires after this
    # if its worker dies (longer than the send activity may run).
    workspace_lease_seconds: float = 180.0
    breaker_failures: int = 5
    breaker_open_for: timedelta = timedelta(minutes=5)
    throttle_jitter: timedelta = timedelta(minutes=5)
    # A wait shorter than this is a reservation (the send sleeps until its
    # slot); a longer one sends the send back to the queue.
    reservation_horizon: timedelta = timedelta(minutes=10)
    # Spread a mailbox's daily cap over its window: gap = window / cap x
    # uniform(1 - spread, 1 + spread) x spacing. 0 disables spacing.
    spacing: float = 1.0
    spacing_spread: float = 0.5
    # After the store lost its state (docs/decisions/0029): how long a connection
    # may still be open (the transport's lease: a transaction plus its idle time),
    # how long an idle pooled connection stays open, and how long every host is
    # held back (its breaker and push-back were forgotten).
    connection_lease: timedelta = timedelta(seconds=180)
    connection_idle: timedelta = timedelta(seconds=30)
    restore_hold: timedelta = timedelta(seconds=30)

    def provider_limit(self, provider: str, mailboxes_on_provider: int) -> int:
        base = self.provider_per_minute.get(provider, self.provider_per_minute["other"])
        return base * max(1, math.ceil(mailboxes_on_provider / self.provider_scale_unit))

    def connections(self, provider: str) -> int:
        return self.host_connections.get(provider, self.host_connections["other"])

    def spacing_gap(self, window: SendingWindow, cap: int, draw: float) -> timedelta:
        """The gap after a send; ``draw`` is uniform in [0, 1)."""
        if self.spacing <= 0:
            return timedelta(0)
        factor = 1 - self.spacing_spread + 2 * self.spacing_spread * draw
        return window.open_length() / cap * factor * self.spacing


@dataclass(frozen=True)
class WarmUp:
    """A new mailbox's ramp: ``start`` sends on its first day, ``increment`` more each day."""

    start: int
    increment: int
    began: datetime

    def cap(self, daily_limit: int, now: datetime) -> int:
        days = max(0, (now - self.began).days)
        return max(1, min(daily_limit, self.start + self.increment * days))


def policy_from(settings: Settings) -> LimitPolicy:
    return LimitPolicy(
        provider_per_minute={
            "gmail": settings.limit_gmail_per_minute, "outlook": settings.limit_outlook_per_minute,
            "yahoo": settings.limit_yahoo_per_minute, "other": settings.limit_other_per_minute,
        },
        provider_scale_unit=settings.limit_provider_scale_unit,
        provider_window=timedelta(seconds=settings.limit_provider_window_seconds),
        place_lateness=timedelta(seconds=settings.limit_place_lateness_seconds),
        host_connections={
            "gmail": settings.limit_gmail_connections, "outlook": settings.limit_outlook_connections,
            "other": settings.limit_other_connections,
        },
        workspace_in_flight=settings.limit_workspace_in_flight,
        breaker_failures=settings.limit_breaker_failures,
        breaker_open_for=timedelta(seconds=settings.limit_breaker_open_seconds),
        throttle_jitter=timedelta(seconds=settings.limit_throttle_jitter_seconds),
        reservation_horizon=timedelta(seconds=settings.limit_reservation_horizon_seconds),
        spacing=settings.mailbox_spacing,
        connection_lease=connection_lease(settings),
        connection_idle=timedelta(seconds=settings.smtp_idle_seconds),
        restore_hold=timedelta(seconds=settings.limit_restore_hold_seconds),
    )


def connection_lease(settings: Settings) -> timedelta:
    """A host slot outlives the longest transaction plus the idle time of its connection."""
    return timedelta(seconds=settings.send_start_to_close_seconds + settings.smtp_idle_seconds + 30)


def provider_slot(entries: list[float], now: float, limit: int, window: float) -> float:
    """The earliest instant >= now at which one more send keeps every window of
    ``window`` at or under ``limit`` and at least window/limit after the last
    reservation (paced, not bursts), given the sorted reservation instants
    ``entries`` (appended in order). Mirrors the Lua in ``lua/admit.lua``."""
    at = max([now, *(e + math.floor(window / limit) for e in entries[-1:])])
    if len(entries) >= limit:
        at = max(at, entries[len(entries) - limit] + window)
    return at
