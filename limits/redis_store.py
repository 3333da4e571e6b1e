"""The limit store in Redis: one Lua script per operation (``limits/lua/``).

Redis holds only what can be rebuilt. A generation key says the store is
trusted: when Redis loses its data it is gone too, and everything is answered
``RESTORE`` (no admission, no lease) until the provider windows, host
connections and push-backs are restored from the ledger (restore.lua); a
mailbox whose state is missing is answered ``REBUILD`` and reloaded from
PostgreSQL before it sends. Any Redis error is raised as
``LimitStoreUnavailable``: no send starts without the limits.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from config.names import redis_key
from limits import LimitStoreUnavailable
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


def _script(redis: aioredis.Redis, name: str) -> AsyncScript:
    return redis.register_script(resources.files("limits").joinpath("lua", name).read_text("utf-8"))


@contextmanager
def _unavailable_on_redis_error() -> Iterator[None]:
    """The one place a Redis error becomes ``LimitStoreUnavailable``."""
    try:
        yield
    except RedisError as exc:
        raise LimitStoreUnavailable(f"redis: {exc}") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimitStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._admit = _script(redis, "admit.lua")
        self._rebuild = _script(redis, "mailbox_rebuild.lua")
        self._acquire = _script(redis, "lease_acquire.lua")
        self._breaker = _script(redis, "breaker_record.lua")
        self._push_back = _script(redis, "push_back.lua")
        self._restore = _script(redis, "restore.lua")

    def _key(self, *parts: str) -> str:
        return redis_key(self._prefix, *parts)

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        with _unavailable_on_redis_error():
            return await script(keys=list(keys), args=list(args))

    def _mailbox_keys(self, mailbox_id: str) -> list[str]:
        state = self._key("mailbox", mailbox_id)
        return [state, f"{state}:sends"]

    async def admit(self, req: AdmitRequest) -> Admission:
        keys = [
            *self._mailbox_keys(req.mailbox_id),
            self._key("provider", req.provider, "window"),
            self._key("host", req.host, "breaker"),
            self._key("host", req.host, "push-back"),
            self._key("generation"),
        ]
        args: list[str | int] = [
            req.send_key, ms(req.now), ms(req.day[0]), ms(req.day[1]), req.cap, span_ms(KEEP),
            req.provider_limit, span_ms(req.provider_window), span_ms(req.spacing_gap),
            span_ms(req.horizon), span_ms(req.probe_ttl),
        ]
        verdict, at, reason, *taken = await self._run(self._admit, keys, args)
        reason = _text(reason)
        return Admission(
            Verdict(_text(verdict)), datetime.fromtimestamp(int(_text(at)) / 1000, UTC),
            "" if reason == "probe" else reason, probe=reason == "probe",
            reservation=_text(taken[0]) if taken else "",
        )

    async def restore(self, restoration: Restoration) -> bool:
        r = restoration
        keys = [self._key("generation"), *(self._key("provider", p, "window") for p in r.provider_sends),
                *(self._key("leases", host_scope(h)) for h in r.host_connections),
                *(self._key("host", h, "push-back") for h in r.held_hosts)]
        args: list[str | int] = [
            secrets.token_hex(8), ms(datetime.now(UTC)), ms(r.hold_until), span_ms(r.provider_window),
            len(r.provider_sends), len(r.host_connections), len(r.held_hosts)]
        for sends in r.provider_sends.values():
            args.append(len(sends))
            for attempt, started in sends:
                args += [ms(started), f"restored:{attempt}@{ms(started)}"]
        for connections in r.host_connections.values():
            args.append(len(connections))
            for attempt, until in connections:
                args += [ms(until), restored_lease(attempt)]
        return bool(await self._run(self._restore, keys, args))

    async def refund(self, provider: str, reservation: str) -> None:
        with _unavailable_on_redis_error():
            await self._redis.zrem(self._key("provider", provider, "window"), reservation)

    async def day_holders(self, mailbox_id: str, since: datetime) -> list[str]:
        with _unavailable_on_redis_error():
            keys = await self._redis.zrangebyscore(self._mailbox_keys(mailbox_id)[1], ms(since), "+inf")
        return [k.decode() if isinstance(k, bytes) else str(k) for k in keys]

    async def release_day(self, mailbox_id: str, send_key: str) -> None:
        with _unavailable_on_redis_error():
            await self._redis.zrem(self._mailbox_keys(mailbox_id)[1], send_key)

    async def rebuild_mailbox(
        self, mailbox_id: str, paused: bool, reason: str, sends: list[tuple[str, datetime]]
    ) -> None:
        args: list[str | int] = ["1" if paused else "0", reason]
        for send_key, at in sends:
            args += [ms(at), send_key]
        await self._run(self._rebuild, self._mailbox_keys(mailbox_id), args)

    async def set_paused(self, mailbox_id: str, paused: bool, reason: str) -> None:
        with _unavailable_on_redis_error():
            await self._redis.hset(
                self._mailbox_keys(mailbox_id)[0],
                mapping={"paused": "1" if paused else "0", "reason": reason},
            )

    async def acquire_lease(
        self, scope: str, lease_id: str, limit: int, now: datetime, ttl: timedelta,
        generation: str = "",
    ) -> bool:
        args: list[str | int] = [lease_id, ms(now), ms(now + ttl), limit, generation]
        keys = [self._key("leases", scope), self._key("generation")]
        return bool(await self._run(self._acquire, keys, args))

    async def release_lease(self, scope: str, lease_id: str) -> None:
        with _unavailable_on_redis_error():
            await self._redis.zrem(self._key("leases", scope), lease_id)

    async def record_connection(
        self, host: str, ok: bool, now: datetime, threshold: int, open_for: timedelta,
        attempt: str = "", open_until: datetime | None = None,
    ) -> bool:
        args: list[str | int] = ["1" if ok else "0", ms(now), threshold, span_ms(open_for),
                                 restored_lease(attempt) if attempt else "", ms(open_until or now)]
        keys = [self._key("host", host, "breaker"), self._key("leases", host_scope(host))]
        return bool(await self._run(self._breaker, keys, args))

    async def push_back(self, host: str, until: datetime) -> None:
        await self._run(self._push_back, [self._key("host", host, "push-back")], [ms(until)])
