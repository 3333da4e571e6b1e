"""Hearing replies within seconds: one IMAP IDLE connection per mailbox folder.

Where the server offers IDLE (RFC 2177), the worker keeps a connection per mailbox
folder open, EXAMINEd (read-only), and idles on it; when the server says a message
arrived, the mailbox gets the same pass the poll schedule runs (inbox/poll.py), so the
cursor, the deduplication and every effect are the poll's own, and a pass from here
and one from the schedule at once are safe (docs/decisions/0035). The schedule goes on
as the safety net, and is all there is for a server without IDLE.

Bounded: at most ``max_connections`` folders are watched per worker process (the
rest are only polled); each IDLE is ended and started again every ``renew`` seconds
(servers drop one after 30 minutes); a connection that fails is opened again after a
backoff (1 s doubling to 5 minutes, with jitter), and the set of mailboxes is read
again every ``refresh`` seconds. ``OUTREACH_INBOX_IDLE=false`` turns it off.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import asyncpg
import structlog

from config.secrets import KeyRing
from inbox.imap import ImapError, ImapReader
from inbox.poll import PassResult, PollLimits, TokenSource, poll_mailbox
from store.inbox_settings import ImapAccount, imap_account, imap_mailboxes

log = structlog.get_logger(__name__)

OnPass = Callable[[PassResult], Awaitable[None]]


@dataclass(frozen=True)
class ListenLimits:
    max_connections: int = 50
    renew: float = 25 * 60.0  # below the 30 minutes after which servers drop an IDLE
    refresh: float = 300.0  # how often new (or removed) mailboxes are noticed
    backoff_first: float = 1.0
    backoff_max: float = 300.0


class InboxListener:
    """The watchers of one worker process; ``run`` until ``stop`` is set."""

    def __init__(self, pool: asyncpg.Pool, ring: KeyRing, poll: PollLimits, on_pass: OnPass,
                 limits: ListenLimits = ListenLimits(), tokens: TokenSource | None = None) -> None:
        self._pool, self._ring, self._poll, self._on_pass = pool, ring, poll, on_pass
        self._limits, self._tokens = limits, tokens
        self._watching: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._passes: dict[str, asyncio.Lock] = {}  # one pass at a time per mailbox from here

    @property
    def watching(self) -> set[tuple[str, str]]:
        return {key for key, task in self._watching.items() if not task.done()}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._refresh()
                except (asyncpg.PostgresError, OSError) as exc:
                    log.warning("inbox_idle_refresh_failed", error=str(exc))
                try:
                    await asyncio.wait_for(stop.wait(), self._limits.refresh)
                except TimeoutError:
                    pass
        finally:
            for task in self._watching.values():
                task.cancel()
            await asyncio.gather(*self._watching.values(), return_exceptions=True)

    async def _refresh(self) -> None:
        wanted: list[tuple[str, str]] = []
        for mailbox_id in await imap_mailboxes(self._pool, None):
            folders = await self._pool.fetchval(
                "SELECT imap_folders FROM mailboxes WHERE id = $1", mailbox_id)
            wanted += [(mailbox_id, folder) for folder in folders or ["INBOX"]]
        wanted = wanted[: self._limits.max_connections]
        for key, task in list(self._watching.items()):
            if key not in wanted or task.done():
                task.cancel()
                del self._watching[key]
        for key in wanted:
            if key not in self._watching:
                self._watching[key] = asyncio.create_task(self._watch(*key), name=f"idle {key[0]} {key[1]}")

    async def _watch(self, mailbox_id: str, folder: str) -> None:
        """IDLE on one folder for as long as it is wanted; a pass after each arrival."""
        failures = 0
        while True:
            try:
                account = await self._account(mailbox_id)
                async with ImapReader(account, timeout=self._poll.timeout) as imap:
                    if not imap.supports_idle:
                        log.info("inbox_idle_unsupported", mailbox_id=mailbox_id, folder=folder)
                        return  # the poll schedule reads it
                    await imap.examine(folder)
                    await self._pass(mailbox_id)  # what came while no one listened
                    failures = 0
                    while True:
                        if await imap.wait_for_new(self._limits.renew):
                            await self._pass(mailbox_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one folder's trouble must not end the others
                failures += 1
                wait = min(self._limits.backoff_first * 2 ** min(failures - 1, 20), self._limits.backoff_max)
                wait *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
                log.warning("inbox_idle_reconnect", mailbox_id=mailbox_id, folder=folder,
                            error=f"{type(exc).__name__}: {exc}", wait_seconds=round(wait, 1))
                await asyncio.sleep(wait)

    async def _account(self, mailbox_id: str) -> ImapAccount:
        account = await imap_account(self._pool, mailbox_id, ring=self._ring)
        if account.oauth:
            if self._tokens is None:
                raise ImapError(f"mailbox {mailbox_id!r} logs in with OAuth2 and no token source was given")
            account = replace(account, password=await self._tokens(mailbox_id))
        return account

    async def _pass(self, mailbox_id: str) -> None:
        lock = self._passes.setdefault(mailbox_id, asyncio.Lock())
        async with lock:
            result = await poll_mailbox(self._pool, mailbox_id, ring=self._ring, limits=self._poll,
                                        tokens=self._tokens)
            await self._on_pass(result)
