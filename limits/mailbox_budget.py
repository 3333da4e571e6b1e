"""A mailbox's daily budget and pause flag, shared by every worker through Redis.

Redis holds only what can be rebuilt: when a mailbox's state is missing the
reservation answers ``rebuild`` and the caller reloads it from PostgreSQL (the
ledger's sends of the last 48 h and the mailbox's pause flag) before any send
goes, so losing Redis never lets a mailbox exceed its cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config.names import redis_key
from limits import LimitStoreUnavailable

# Reservations older than this cannot matter to "today" or "the last 24 h".
KEEP = timedelta(hours=48)


def _lua(name: str) -> str:
    return resources.files("limits").joinpath("lua", name).read_text("utf-8")


class Verdict(StrEnum):
    GO = "go"
    PAUSED = "paused"
    DAY_FULL = "day_full"
    ROLLING_FULL = "rolling_full"
    REBUILD = "rebuild"


@dataclass(frozen=True)
class Reservation:
    verdict: Verdict
    # For DAY_FULL and ROLLING_FULL: the earliest instant a slot frees.
    free_at: datetime | None = None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class MailboxBudget:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(_lua("mailbox_reserve.lua"))
        self._rebuild = redis.register_script(_lua("mailbox_rebuild.lua"))

    def _keys(self, mailbox_id: str) -> list[str]:
        state = redis_key(self._prefix, "mailbox", mailbox_id)
        return [state, f"{state}:sends"]

    async def reserve(
        self, mailbox_id: str, send_key: str, now: datetime, day: tuple[datetime, datetime], cap: int
    ) -> Reservation:
        keep_ms = int(KEEP.total_seconds() * 1000)
        args: list[str | int] = [send_key, _ms(now), _ms(day[0]), _ms(day[1]), cap, keep_ms]
        try:
            verdict, detail = await self._reserve(keys=self._keys(mailbox_id), args=args)
        except RedisError as exc:
            raise LimitStoreUnavailable(f"redis: {exc}") from exc
        verdict = Verdict(_text(verdict))
        if verdict in (Verdict.DAY_FULL, Verdict.ROLLING_FULL):
            return Reservation(verdict, datetime.fromtimestamp(int(_text(detail)) / 1000, UTC))
        return Reservation(verdict)

    async def rebuild(
        self, mailbox_id: str, paused: bool, reason: str, sends: list[tuple[str, datetime]]
    ) -> None:
        args: list[str | int] = ["1" if paused else "0", reason]
        for send_key, at in sends:
            args += [_ms(at), send_key]
        try:
            await self._rebuild(keys=self._keys(mailbox_id), args=args)
        except RedisError as exc:
            raise LimitStoreUnavailable(f"redis: {exc}") from exc

    async def set_paused(self, mailbox_id: str, paused: bool, reason: str) -> None:
        state = self._keys(mailbox_id)[0]
        try:
            await self._redis.hset(state, mapping={"paused": "1" if paused else "0", "reason": reason})
        except RedisError as exc:
            raise LimitStoreUnavailable(f"redis: {exc}") from exc


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
