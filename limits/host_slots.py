"""Connection slots per SMTP host: one lease per open connection.

The transport (mail.transport) holds a slot for each connection it opens; this
module knows a connection only as a ``HostConnection`` (whose mailbox, which
host, how many connections that host allows), so limits never import mail.

A pooled connection holds its slot while open (renewed at each transaction)
and gives it back when closed; a worker that dies leaves leases that expire
by themselves, so no slot is ever lost for good.

A mailbox's connection has one lease (per transport), so a connection that
replaces a closed one takes over that lease. The transport gives the closed
connection's lease back in a task it does not wait for; if that task ran after
the new connection renewed the lease, it would remove the new connection's
lease and let another worker open one connection too many (the chaos suite
saw the provider refuse it). So `release` notes, when called, which hold it
gives back, and does nothing if the lease was held again since.

A release already under way when the lease is held again is the same race one
step later: its ZREM and the new hold's ZADD go over different connections of
the Redis pool, so the ZREM can land second and take the new connection's lease
(the chaos suite saw it when a hung host failed attempts that were retried at
once: 5 connections refused as one too many). So the two calls of one lease run
one after the other, under the lease's lock.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections import Counter
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from limits import LimitStoreUnavailable
from limits.store import LimitStore, host_scope


class HostConnection(Protocol):
    """A mailbox's connection to its SMTP host, as far as its slot goes (mail's SmtpAccount is one)."""

    @property
    def mailbox_id(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def max_connections(self) -> int | None:
        """The host's connection limit; None: no limit, no slot taken."""
        ...


class HostSlots:
    def __init__(self, store: LimitStore, ttl: timedelta) -> None:
        self._store = store
        self._ttl = ttl
        # Distinct per transport, so two workers' connections of one mailbox are two slots.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._holds: Counter[str] = Counter()  # lease id -> times held, to tell a stale release
        self._locks: dict[str, asyncio.Lock] = {}  # lease id -> its store calls, in order

    def _lease(self, account: HostConnection) -> tuple[str, str]:
        return host_scope(account.host), f"{self._owner}:{account.mailbox_id}"

    async def hold(self, account: HostConnection) -> bool:
        if account.max_connections is None:
            return True
        scope, lease = self._lease(account)
        self._holds[lease] += 1  # before any await: a release already scheduled sees it
        async with self._locks.setdefault(lease, asyncio.Lock()):
            return await self._store.acquire_lease(
                scope, lease, account.max_connections, datetime.now(UTC), self._ttl
            )

    def release(self, account: HostConnection) -> Coroutine[Any, Any, None]:
        """The release of the lease as held now (not a coroutine function: the hold
        it gives back is fixed when it is called, not when it runs)."""
        return self._release(account, self._holds[self._lease(account)[1]])

    async def _release(self, account: HostConnection, holds: int) -> None:
        scope, lease = self._lease(account)
        if account.max_connections is None:
            return
        async with self._locks.setdefault(lease, asyncio.Lock()):
            if self._holds[lease] != holds:
                return  # held again since: the lease is the new connection's now
            del self._holds[lease]
            try:
                await self._store.release_lease(scope, lease)
            except LimitStoreUnavailable:
                pass  # the lease expires by itself; the connection is closed either way
