"""SMTP submission through each mailbox's own server, one pooled connection per mailbox.

A send is MAIL FROM, RCPT TO, then `before_data()` (the caller's ledger records
that DATA is about to start), then DATA. Everything before DATA is safe to
retry; after `before_data()` a lost connection means the outcome is unknown
(`SmtpOutcomeUnknown`), because the server may have kept the message.

Timeouts, each enforced on its own: the TCP connect (`connect`), the TLS
handshake of implicit TLS plus the 220 greeting (`greeting`), and every later
command's reply (`socket`, aiosmtplib's per-command timeout). aiosmtplib alone
would use one value for connect and greeting, so the socket is opened here.

TLS cannot be stripped: "starttls" requires the server to offer STARTTLS (else
`SmtpConfigError`, before any AUTH), certificates and host names are verified,
"none" is for loopback only. A TLS failure a retry will not fix (certificate,
host name, protocol) is an `SmtpConfigError` too: it pauses the mailbox.

Errors are translated at this boundary (see `mail.errors`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiosmtplib

from config.settings import Settings
from mail.errors import (
    SmtpConfigError,
    SmtpConnectionFailed,
    SmtpError,
    SmtpHostBusy,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpStage,
    SmtpTimeout,
)
from mail.message import normalize_address
from mail.replies import SmtpReply

__all__ = ["MailTransport", "SmtpAccount", "SmtpReply", "SmtpTimeouts", "Security"]

Security = Literal["tls", "starttls", "none"]


@dataclass(frozen=True)
class SmtpAccount:
    mailbox_id: str
    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or tracebacks
    max_connections: int | None = None  # the host's connection limit, for ConnectionSlots
    # An OAuth2 access token: AUTH XOAUTH2 instead of a password.
    oauth_token: str | None = field(default=None, repr=False)


class ConnectionSlots(Protocol):
    """Shared limits on open connections per host (see limits/)."""

    async def hold(self, account: SmtpAccount) -> bool:
        """Take, or renew, the slot of this mailbox's connection; False if none is free."""
        ...

    async def release(self, account: SmtpAccount) -> None: ...


@dataclass(frozen=True)
class SmtpTimeouts:
    connect: float = 60.0
    greeting: float = 30.0
    socket: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTimeouts:
        return cls(
            settings.smtp_connect_timeout,
            settings.smtp_greeting_timeout,
            settings.smtp_socket_timeout,
        )


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    account: SmtpAccount
    last_used: float
    clean: bool = True  # False while a failed transaction may be open: RSET first
    on_close: Callable[[], None] | None = None

    def reusable(self, account: SmtpAccount, now: float, idle_seconds: float) -> bool:
        fresh = now - self.last_used <= idle_seconds
        return self.smtp.is_connected and self.account == account and fresh

    def close(self) -> None:
        self.smtp.close()
        hook, self.on_close = self.on_close, None
        if hook is not None:
            hook()  # once: the connection's slot is free again


class MailTransport:
    def __init__(
        self,
        timeouts: SmtpTimeouts,
        idle_seconds: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        *,
        local_hostname: str | None = None,
        slots: ConnectionSlots | None = None,
    ) -> None:
        self._timeouts = timeouts
        self._idle_seconds = idle_seconds
        # Verified TLS: certificate chain and host name (create_default_context does both).
        self._tls = tls_context or ssl.create_default_context()
        self._local_hostname = local_hostname  # the EHLO name; default: this host's FQDN
        self._pool: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._slots = slots
        self._releases: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def send(
        self,
        account: SmtpAccount,
        envelope_from: str,
        recipient: str,
        message: bytes,
        *,
        before_data: Callable[[], Awaitable[None]],
    ) -> SmtpReply:
        """Deliver one message; the 2xx reply to DATA, or one of `mail.errors`."""
        check_security(account)
        sender, rcpt = normalize_address(envelope_from), normalize_address(recipient)
        if self._slots is not None and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_idle())
        # One transaction at a time on a mailbox's connection.
        async with self._locks.setdefault(account.mailbox_id, asyncio.Lock()):
            try:
                conn = await self._open_envelope(account, sender, rcpt)
                try:
                    await before_data()
                except BaseException:
                    conn.clean = False  # MAIL and RCPT are open on the server
                    raise
                return await self._data(conn, message)
            finally:
                self._touch(account.mailbox_id)

    async def probe(self, account: SmtpAccount) -> None:
        """Connect, TLS, EHLO, AUTH and QUIT on a connection of its own (health
        checks): the same security as a send, nothing sent, nothing pooled."""
        check_security(account)
        smtp = await self._connect(account)
        try:
            with _translate("connect", account.host):
                await smtp.quit()
        finally:
            smtp.close()

    async def close(self) -> None:
        """QUIT every pooled connection (best effort, briefly), each after the
        transaction in flight on it, if any, has finished."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.gather(*(self._quit(mailbox_id) for mailbox_id in list(self._locks)))
        await asyncio.gather(*self._releases, return_exceptions=True)

    async def _open_envelope(self, account: SmtpAccount, sender: str, rcpt: str) -> _Connection:
        conn, reused = await self._checkout(account)
        try:
            await _step(conn, "mail", lambda: conn.smtp.mail(sender))
        except SmtpConnectionFailed:
            if not reused:
                raise
            # The pooled connection died while idle; nothing was sent, so reconnect once.
            conn, _ = await self._checkout(account)
            await _step(conn, "mail", lambda: conn.smtp.mail(sender))
        await _step(conn, "rcpt", lambda: conn.smtp.rcpt(rcpt))
        return conn

    async def _data(self, conn: _Connection, message: bytes) -> SmtpReply:
        try:
            response = await conn.smtp.data(message)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code > 0:  # the server answered: the outcome is known
                conn.clean = False
                raise SmtpRejected(SmtpReply(exc.code, exc.message), "data") from exc
            conn.close()
            raise SmtpOutcomeUnknown(f"unreadable reply after DATA: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # disconnects and timeouts
            conn.close()
            raise SmtpOutcomeUnknown(f"connection lost after DATA began: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return SmtpReply(response.code, response.message)

    async def _checkout(self, account: SmtpAccount) -> tuple[_Connection, bool]:
        """The mailbox's pooled connection if still good, else a new one; True if reused."""
        now = asyncio.get_running_loop().time()
        conn = self._pool.get(account.mailbox_id)
        if conn is not None and conn.reusable(account, now, self._idle_seconds):
            if not await self._hold_slot(account):
                conn.close()  # our slot expired and was taken: we are one too many
                raise SmtpHostBusy(f"{account.host}: every connection slot is taken")
            if conn.clean or await _reset(conn):
                return conn, True
        if conn is not None:
            conn.close()  # idle too long, broken, or the account's settings changed
        if not await self._hold_slot(account):
            raise SmtpHostBusy(f"{account.host}: every connection slot is taken")
        try:
            smtp = await self._connect(account)
        except BaseException:
            self._release_later(account)
            raise
        conn = _Connection(smtp, account, now, on_close=lambda: self._release_later(account))
        self._pool[account.mailbox_id] = conn
        return conn, False

    async def _hold_slot(self, account: SmtpAccount) -> bool:
        if self._slots is None:
            return True
        if await self._slots.hold(account):
            return True
        # Our own idle connections to the host first. Each ends with QUIT and its
        # reply before its slot is reused: a provider counts a connection until
        # its session ends, and one closed without a word may still be counted
        # when the new one arrives (a benchmark saw a 421 "too many connections").
        await self._end_idle(lambda c: c.account.host == account.host)
        return await self._slots.hold(account)

    def _release_later(self, account: SmtpAccount) -> None:
        if self._slots is None:
            return
        task = asyncio.get_running_loop().create_task(self._slots.release(account))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _sweep_idle(self) -> None:
        # An idle connection holds a host slot; end it (QUIT) when its idle time is
        # up, not only when the mailbox next sends.
        while True:
            await asyncio.sleep(max(0.2, self._idle_seconds / 4))
            stale = asyncio.get_running_loop().time() - self._idle_seconds
            await self._end_idle(lambda c, stale=stale: c.last_used < stale)  # type: ignore[misc]

    async def _connect(self, account: SmtpAccount) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=account.host,
            timeout=self._timeouts.socket,  # every command after the greeting
            use_tls=account.security == "tls",
            start_tls=False,  # done below, and required, for "starttls"
            tls_context=self._tls,
            local_hostname=await self._ehlo_name(),
        )
        try:
            with _translate("connect", account.host):
                await self._greet(smtp, account)
                await smtp.ehlo()
                if account.security == "starttls":
                    await _start_tls(smtp, account.host)
            if account.username is not None:
                with _translate("auth"):
                    if account.oauth_token is not None:
                        await smtp.auth_xoauth2(account.username, account.oauth_token)
                    else:
                        await smtp.login(account.username, account.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _greet(self, smtp: aiosmtplib.SMTP, account: SmtpAccount) -> None:
        async with asyncio.timeout(self._timeouts.connect):
            sock = await _open_socket(account.host, account.port)
        try:
            # The implicit TLS handshake and the 220 greeting share this budget.
            async with asyncio.timeout(self._timeouts.greeting):
                await smtp.connect(sock=sock, timeout=self._timeouts.greeting)
        except BaseException:
            sock.close()
            raise

    async def _ehlo_name(self) -> str:
        if self._local_hostname is None:
            try:  # getfqdn asks DNS, which must not stall the first send for long
                async with asyncio.timeout(self._timeouts.connect):
                    self._local_hostname = await asyncio.to_thread(socket.getfqdn)
            except TimeoutError:
                self._local_hostname = socket.gethostname()
        return self._local_hostname

    def _touch(self, mailbox_id: str) -> None:
        conn = self._pool.get(mailbox_id)
        if conn is not None:
            conn.last_used = asyncio.get_running_loop().time()

    async def _quit(self, mailbox_id: str) -> None:
        async with self._locks[mailbox_id]:
            conn = self._pool.pop(mailbox_id, None)
            if conn is not None:
                await self._say_goodbye([conn])

    async def _end_idle(self, chosen: Callable[[_Connection], bool]) -> None:
        """End the pooled connections ``chosen`` picks that no transaction is using,
        each under its mailbox's lock until its slot is given back: a send of that
        mailbox meanwhile would renew the same lease for a new connection, and the
        release would then take it from the new one (one connection too many)."""
        idle = [m for m, c in self._pool.items() if chosen(c) and not self._locks[m].locked()]
        for mailbox_id in idle:
            await self._locks[mailbox_id].acquire()  # free, so taken at once
        try:
            await self._say_goodbye([self._pool.pop(m) for m in idle if m in self._pool])
            await asyncio.gather(*self._releases, return_exceptions=True)
        finally:
            for mailbox_id in idle:
                self._locks[mailbox_id].release()

    async def _say_goodbye(self, conns: list[_Connection]) -> None:
        async def one(conn: _Connection) -> None:
            try:
                if conn.smtp.is_connected:
                    await conn.smtp.quit(timeout=min(5.0, self._timeouts.socket))
            except (aiosmtplib.SMTPException, OSError):
                pass  # best effort: the server drops idle clients anyway
            finally:
                conn.close()  # frees the slot

        await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)


def check_security(account: SmtpAccount) -> None:
    """Refuse an account that cannot be used safely (plaintext off this machine)."""
    if account.security not in ("tls", "starttls", "none"):
        raise SmtpConfigError(f"unknown security {account.security!r}")
    if account.security == "none" and not _is_loopback(account.host):
        raise SmtpConfigError(f"plaintext SMTP is allowed only to loopback, not {account.host}")


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


async def _open_socket(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket, trying each resolved address in turn."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(f"{host} did not resolve")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:  # refused, unreachable: try the next address
            sock.close()
            error = exc
        except BaseException:  # cancelled by the connect timeout
            sock.close()
            raise
        else:
            return sock
    raise error


async def _start_tls(smtp: aiosmtplib.SMTP, host: str) -> None:
    if not smtp.supports_extension("starttls"):
        # Never fall back to plaintext: a stripped STARTTLS is what an attacker would do.
        raise SmtpConfigError(f"{host} does not offer STARTTLS")
    await smtp.starttls()
    await smtp.ehlo()  # RFC 3207: forget what was learnt in plaintext, ask again


async def _reset(conn: _Connection) -> bool:
    """RSET after a failed transaction; False if the connection is no longer usable."""
    try:
        with _translate("mail"):
            await conn.smtp.rset()
    except SmtpError:
        return False
    conn.clean = True
    return True


async def _step(conn: _Connection, stage: SmtpStage, command: Callable[[], Awaitable[Any]]) -> None:
    """One command before DATA: a refusal leaves the connection usable after RSET;
    anything else (timeout, disconnect, cancellation) closes it."""
    try:
        with _translate(stage):
            await command()
    except SmtpRejected:
        conn.clean = False
        raise
    except BaseException:
        conn.close()
        raise


@contextmanager
def _translate(stage: SmtpStage, host: str | None = None) -> Iterator[None]:
    """aiosmtplib's and the socket's errors, as `mail.errors` (only before DATA)."""
    try:
        yield
    except SmtpError:
        raise
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code <= 0:  # malformed or oversized reply: the stream can't be trusted
            raise SmtpConnectionFailed(f"{stage}: {exc.message}") from exc
        raise SmtpRejected(SmtpReply(exc.code, exc.message), stage) from exc
    except TimeoutError as exc:  # asyncio's and aiosmtplib's timeouts alike
        raise SmtpTimeout(f"{stage}: timed out") from exc
    except OSError as exc:  # refused, reset, disconnected, TLS failures
        refused = tls_failure(exc, host or stage)
        if refused is not None:
            raise refused from exc
        raise SmtpConnectionFailed(f"{stage}: {exc}") from exc
    except aiosmtplib.SMTPException as exc:  # AUTH not offered, and the like
        raise SmtpConfigError(f"{stage}: {exc.message}") from exc


# A peer that hangs up mid-handshake: a network fault, retried like any other.
_TLS_HANGUPS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def tls_failure(exc: BaseException, host: str) -> SmtpConfigError | None:
    """The config error of a TLS failure that no retry will fix (certificate not
    trusted, wrong host name, no common protocol, plaintext on a TLS port), or None."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__  # aiosmtplib wraps the handshake's error
    if isinstance(cause, ssl.SSLCertVerificationError):
        return SmtpConfigError(f"{host}: TLS certificate refused ({cause.verify_message})")
    if cause is None or isinstance(cause, _TLS_HANGUPS):
        return None
    return SmtpConfigError(f"{host}: TLS handshake failed ({cause.reason or cause})")
