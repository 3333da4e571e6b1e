"""Reading a mailbox over IMAP without changing it (aioimaplib).

Only commands that change nothing are sent: LOGIN, EXAMINE (the folder opened
read-only, RFC 3501 6.3.2), UID SEARCH, UID FETCH of RFC822.SIZE and
BODY.PEEK[...] (PEEK: the \\Seen flag is not set), and IDLE (RFC 2177: the server
says when a message arrives). No STORE, COPY, MOVE, EXPUNGE.
A message above ``max_bytes`` is fetched as its header only, and of that header at
most HEADER_BYTES (a partial FETCH): a stranger chooses a message's size.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType

import aioimaplib

from store.inbox_settings import ImapAccount


class ImapError(Exception):
    """The server refused, dropped the connection, or answered something unreadable."""


@dataclass(frozen=True)
class Fetched:
    uid: int
    size: int
    raw: bytes
    headers_only: bool
    arrived_at: datetime | None = None  # INTERNALDATE: when the server received it


HEADER_BYTES = 256 * 1024  # as inbox/headers.py reads at most
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol, answering the server's challenge after a refused XOAUTH2
    (RFC 7628: the server sends its error as a continuation and waits for an empty
    line before it says NO); aioimaplib would wait for ever."""

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if command is not None and command.name == "AUTHENTICATE":
            self.transport.write(b"\r\n")
            return
        super()._continuation(line)


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client over ``_Protocol`` (create_client is its extension point,
    as in its own IMAP4_SSL); TLS from the start when given a context."""

    def create_client(
        self, host: str, port: int, loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        running = loop or asyncio.get_running_loop()
        self.protocol = _Protocol(running, conn_lost_cb)
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


class ImapReader:
    """One connection to one mailbox: ``async with ImapReader(account) as imap``."""

    def __init__(
        self, account: ImapAccount, *, timeout: float = 30.0, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._account = account
        self._timeout = timeout
        # Verified TLS (chain and host name) unless a test gives its own trust.
        self._tls = tls_context or ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._client: aioimaplib.IMAP4 | None = None

    async def __aenter__(self) -> ImapReader:
        a = self._account
        try:
            tls = self._tls if a.security == "tls" else None
            self._client = _Client(a.host, a.port, timeout=self._timeout, ssl_context=tls)
            await self._client.wait_hello_from_server()
            if a.security == "starttls":
                await self._starttls()
            if a.oauth:
                response = await self._client.xoauth2(a.username, a.password)
            else:
                response = await self._client.login(a.username, a.password)
        except TimeoutError as exc:
            await self._drop()
            raise ImapError(f"{a.host}:{a.port} did not answer within {self._timeout:g} s") from exc
        except (OSError, aioimaplib.AioImapException, ssl.SSLError) as exc:
            await self._drop()
            raise ImapError(f"cannot connect to {a.host}:{a.port}: {exc or type(exc).__name__}") from exc
        if response.result != "OK":
            await self._drop()
            how = "AUTHENTICATE XOAUTH2" if a.oauth else "LOGIN"
            raise ImapError(f"{how} refused for {a.username!r}: {_text(response.lines)}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        client = self._client
        self._client = None
        if client is not None:
            try:
                await asyncio.wait_for(client.logout(), 5)
            except (TimeoutError, OSError, aioimaplib.AioImapException):
                pass  # the connection is gone anyway

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.protocol is not None and client.protocol.transport is not None:
            client.protocol.transport.close()

    async def _starttls(self) -> None:
        # aioimaplib has no STARTTLS: send it, then upgrade the same transport.
        assert self._client is not None
        protocol = self._client.protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self._timeout)
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(response.lines)}")
        protocol.transport = await protocol.loop.start_tls(
            protocol.transport, protocol, self._tls, server_hostname=self._account.host
        )

    async def _run(self, what: str, call: Awaitable[aioimaplib.Response]) -> aioimaplib.Response:
        try:
            response = await asyncio.wait_for(call, self._timeout)
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"{what}: {exc or type(exc).__name__}") from exc
        if response.result != "OK":
            raise ImapError(f"{what} refused: {_text(response.lines)}")
        return response

    @property
    def _imap(self) -> aioimaplib.IMAP4:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    async def examine(self, folder: str) -> int:
        """Open ``folder`` read-only; its UIDVALIDITY."""
        response = await self._run(f"EXAMINE {folder}", self._imap.examine(_quoted(folder)))
        # aioimaplib moves to SELECTED only after its own SELECT; EXAMINE selects too.
        self._imap.protocol.state = aioimaplib.SELECTED
        for line in response.lines:
            match = _UIDVALIDITY.search(bytes(line)) if isinstance(line, bytes | bytearray) else None
            if match:
                return int(match.group(1))
        raise ImapError(f"EXAMINE {folder}: no UIDVALIDITY in the answer")

    @property
    def supports_idle(self) -> bool:
        return bool(self._client is not None and self._client.has_capability("IDLE"))

    async def wait_for_new(self, seconds: float) -> bool:
        """IDLE on the examined folder for at most ``seconds`` (servers drop an IDLE after
        30 minutes: RFC 2177 asks clients to end it sooner); True when the server said a
        message arrived (EXISTS)."""
        imap = self._imap
        try:
            idle = await asyncio.wait_for(imap.idle_start(timeout=seconds + self._timeout), self._timeout)
            try:
                pushed = await imap.wait_server_push(timeout=seconds)
            except TimeoutError:
                pushed = []
            imap.idle_done()
            await asyncio.wait_for(idle, self._timeout)
        except (TimeoutError, OSError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"IDLE: {exc or type(exc).__name__}") from exc
        lines = pushed if isinstance(pushed, list) else []
        return any(isinstance(line, bytes | bytearray) and line.endswith(b"EXISTS") for line in lines)

    async def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always includes the last message, even when its UID is below n.
        response = await self._run("UID SEARCH", self._imap.uid_search(f"UID {last_uid + 1}:*", charset=None))
        return [u for u in _search_result(response) if u > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        since = f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"
        response = await self._run("UID SEARCH", self._imap.uid_search(f"SINCE {since}", charset=None))
        return _search_result(response)

    async def fetch(self, uid: int, max_bytes: int) -> Fetched:
        response = await self._run(
            "UID FETCH", self._imap.uid("fetch", str(uid), "(RFC822.SIZE INTERNALDATE)"))
        lines = [bytes(x) for x in response.lines if isinstance(x, bytes | bytearray)]
        size = next((int(m.group(1)) for line in lines for m in [_SIZE.search(line)] if m), None)
        arrived = next((_internaldate(m.group(1)) for line in lines
                        for m in [_INTERNALDATE.search(line)] if m), None)
        if size is None:
            raise ImapError(f"UID FETCH {uid}: the message is gone")
        part = "BODY.PEEK[]" if size <= max_bytes else f"BODY.PEEK[HEADER]<0.{HEADER_BYTES}>"
        response = await self._run("UID FETCH", self._imap.uid("fetch", str(uid), f"({part})"))
        literal = next((bytes(line) for line in response.lines if isinstance(line, bytearray)), None)
        if literal is None:
            raise ImapError(f"UID FETCH {uid}: no message in the answer")
        return Fetched(uid, size, literal, headers_only=size > max_bytes, arrived_at=arrived)


def _internaldate(value: bytes) -> datetime | None:
    try:  # "30-Nov-2026 06:45:48 +0000"
        return datetime.strptime(value.decode().strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _search_result(response: aioimaplib.Response) -> list[int]:
    found: list[int] = []
    for line in response.lines:
        text = bytes(line) if isinstance(line, bytes | bytearray) else b""
        if text.startswith(b"SEARCH") or (text and text.split()[0].isdigit()):
            found.extend(int(t) for t in text.replace(b"SEARCH", b"").split() if t.isdigit())
    return sorted(set(found))


def _text(lines: list[object]) -> str:
    texts = (bytes(x).decode("utf-8", "replace") for x in lines if isinstance(x, bytes | bytearray))
    return " ".join(texts)[:300]
