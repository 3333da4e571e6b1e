"""Connection slots per SMTP host, for mail.transport: one lease per open connection.

A pooled connection holds its slot while open (renewed at each transaction)
and gives it back when closed; a worker that dies leaves leases that expire
by themselves, so no slot is ever lost for good.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta

from limits import LimitStoreUnavailable
from limits.store import LimitStore
from mail.transport import SmtpAccount


class HostSlots:
    def __init__(self, store: LimitStore, ttl: timedelta) -> None:
        self._store = store
        self._ttl = ttl
        # Distinct per transport, so two workers' connections of one mailbox are two slots.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    def _lease(self, account: SmtpAccount) -> tuple[str, str]:
        return f"host:{account.host}", f"{self._owner}:{account.mailbox_id}"

    async def hold(self, account: SmtpAccount) -> bool:
        if account.max_connections is None:
            return True
        scope, lease = self._lease(account)
        return await self._store.acquire_lease(
            scope, lease, account.max_connections, datetime.now(UTC), self._ttl
        )

    async def release(self, account: SmtpAccount) -> None:
        if account.max_connections is None:
            return
        try:
            await self._store.release_lease(*self._lease(account))
        except LimitStoreUnavailable:
            pass  # the lease expires by itself; the connection is closed either way
