"""An SMTP server in this process that plays "the provider" for the tests, the
benchmarks and `outreach dev`, and misbehaves on command.

It runs on the caller's asyncio loop (`loop.create_server` with aiosmtpd's SMTP
protocol), not in aiosmtpd's Controller thread, so tests can await conditions
on it. All state is read and written on that loop only; no locks are needed.

    async with LocalSmtpServer() as inbox:
        inbox.script("bob@example.com", [(450, "4.2.1 Mailbox busy")], at="rcpt")
        ... send through port inbox.port ...
        await inbox.wait_for(lambda: len(inbox.messages) == 1)
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import mailbox
import os
import socket
import ssl
from base64 import b64decode
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Stage = Literal["connect", "mail", "rcpt", "data"]
Reply = tuple[int, str]


@dataclass(frozen=True)
class AcceptedMessage:
    received_at: datetime
    peer: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str | None
    raw: bytes
    auth_user: str | None


@dataclass(frozen=True)
class ConnectionEvent:
    at: datetime
    peer: str
    kind: Literal["open", "close"]


class HostRules(Protocol):
    """A provider's rules on top of the LocalSmtpServer's scripted misbehaviour (inbox/provider.py):
    each `admit_*` returns a refusal reply or None to go on."""

    def admit_connection(self, peer: str) -> Reply | None: ...
    def connection_closed(self, peer: str) -> None: ...
    def admit_recipient(self, recipient: str) -> Reply | None: ...
    def admit_message(self, message: AcceptedMessage) -> Reply | None: ...
    def drop_message(self, message: AcceptedMessage) -> bool: ...
    def received(self, message: AcceptedMessage, acknowledged: bool) -> None: ...


class LocalSmtpServer:
    """Plaintext SMTP on 127.0.0.1; AUTH accepts anything unless `credentials` is given."""

    def __init__(
        self,
        *,
        credentials: dict[str, str] | None = None,
        tokens: dict[str, str] | None = None,
        maildir: str | Path | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        hostname: str = "inbox.localhost",
    ) -> None:
        self.messages: list[AcceptedMessage] = []
        self.connection_events: list[ConnectionEvent] = []
        self.auth_attempts: list[str] = []  # user names, in order, right or wrong
        # Every command verb clients sent ("EHLO", "STARTTLS", "AUTH", ...), in order,
        # whether or not it was accepted: shows that a client never even tried AUTH.
        self.commands: list[str] = []
        self.concurrent_connections = 0
        self.max_concurrent_connections = 0
        self.on_data: Callable[[AcceptedMessage], None] | None = None
        self.rules: HostRules | None = None
        self.port = 0
        self._credentials = credentials
        self._tokens = tokens  # user -> OAuth2 access token accepted by AUTH XOAUTH2
        self._maildir = mailbox.Maildir(maildir, create=True) if maildir is not None else None
        self._starttls = starttls
        self._implicit_tls = implicit_tls
        self._hostname = hostname
        self._scripts: dict[tuple[Stage, str | None], deque[Reply]] = {}
        self._hangs: dict[Stage, float] = {}
        self._recipient_hangs: dict[str, tuple[float, int]] = {}  # recipient -> (seconds, times left)
        self._holds: dict[Stage, asyncio.Event] = {}
        # Sessions waiting at a hold now, by stage: a test knows a client got that far.
        self.held: dict[Stage, int] = {}
        self._drops: dict[str, int] = {}
        self._sessions: set[_InboxSMTP] = set()
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _InboxSMTP(self, loop), host, port, ssl=self._implicit_tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self.drop_connections()
        await self._server.wait_closed()
        self._server = None
        await self.wait_for(lambda: self.concurrent_connections == 0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- misbehaviour on command --------------------------------------------------

    def script(self, recipient: str | None, replies: Iterable[Reply], at: Stage = "rcpt") -> None:
        """Answer the next attempts with `replies`, one each, then accept again.

        `recipient` None means every recipient; at "connect" and "mail" it must be None.
        """
        if recipient is not None and at in ("connect", "mail"):
            raise ValueError(f"at {at!r} the recipient is not known yet")
        key = None if recipient is None else _key(recipient)
        self._scripts.setdefault((at, key), deque()).extend(replies)

    def hang(self, at: Stage, seconds: float) -> None:
        """Stall `seconds` before answering at `at` (0 stops). At "data" the body has
        been read and nothing is recorded unless the client is still there after it."""
        self._hangs[at] = seconds

    def hang_recipient(self, recipient: str, seconds: float, times: int = 1) -> None:
        """Stall `seconds` at RCPT before answering, on the next `times` attempts to
        `recipient` (a host that hangs on one transaction until the client gives up)."""
        self._recipient_hangs[_key(recipient)] = (seconds, times)

    def hold(self, at: Stage) -> None:
        """Keep every session that reaches `at` waiting, with no reply, until `release(at)`:
        for a test that must act while a client is at a known point of its transaction."""
        self._holds.setdefault(at, asyncio.Event())

    def release(self, at: Stage) -> None:
        """Let the sessions held at `at` go on, and stop holding there."""
        gate = self._holds.pop(at, None)
        if gate is not None:
            gate.set()

    def drop_after_data(self, recipient: str, times: int = 1) -> None:
        """Read the body, record the message (a real server may have kept it), then
        close the connection without replying; the next `times` messages to `recipient`."""
        self._drops[_key(recipient)] = times

    def drop_connections(self) -> None:
        """Hang up on every client now, mid-session and without a reply, as a
        restarting server or an idle timeout would."""
        for session in list(self._sessions):
            session.hang_up()
            # Recorded now: a session hung up on mid-STARTTLS never hears of its own loss.
            self._connection(session, "close")

    # -- observation ----------------------------------------------------------------

    # The deadline is this helper's whole point, hence the `timeout` parameter.
    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once `predicate()` holds; TimeoutError after `timeout` seconds.

        Woken by every change of the inbox's state, and every 50 ms for predicates
        over anything else (a database, another process)."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.05):
                            await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"condition not met within {timeout} s") from None

    def client_left(self, peer: str) -> bool:
        """Whether the client at `peer` has closed its end, even if this loop has not
        read its FIN yet: a connection count must not depend on which of two events
        that arrived together one loop turn handles first."""
        for session in self._sessions:
            if session.peer_name == peer:
                return session.client_left()
        return True

    def messages_to(self, recipient: str) -> list[AcceptedMessage]:
        key = _key(recipient)
        return [m for m in self.messages if key in map(_key, m.rcpt_tos)]

    @property
    def connections_opened(self) -> int:
        return sum(1 for event in self.connection_events if event.kind == "open")

    # -- called by the SMTP sessions ---------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _connection(self, session: _InboxSMTP, kind: Literal["open", "close"]) -> None:
        if kind == "open":
            self._sessions.add(session)
        elif session in self._sessions:
            self._sessions.remove(session)
        else:
            return  # aiosmtpd reports a failed STARTTLS handshake's loss twice
        if kind == "close" and self.rules is not None:
            self.rules.connection_closed(session.peer_name)
        self.concurrent_connections = len(self._sessions)
        self.max_concurrent_connections = max(
            self.max_concurrent_connections, self.concurrent_connections
        )
        self.connection_events.append(ConnectionEvent(_now(), session.peer_name, kind))
        self._notify()

    def _scripted(self, at: Stage, recipients: Iterable[str | None]) -> str | None:
        for recipient in (*recipients, None):
            queue = self._scripts.get((at, None if recipient is None else _key(recipient)))
            if queue:
                code, text = queue.popleft()
                return f"{code} {text}"
        return None

    async def _stall(self, at: Stage) -> None:
        gate = self._holds.get(at)
        if gate is not None:
            self.held[at] = self.held.get(at, 0) + 1
            self._notify()
            try:
                await gate.wait()  # cancelled when the client goes away
            finally:
                self.held[at] -= 1
                self._notify()
        seconds = self._hangs.get(at, 0.0)
        if seconds > 0:
            await asyncio.sleep(seconds)  # cancelled when the client goes away

    async def _stall_recipient(self, recipient: str) -> None:
        seconds, times = self._recipient_hangs.get(_key(recipient), (0.0, 0))
        if times > 0:
            self._recipient_hangs[_key(recipient)] = (seconds, times - 1)
            await asyncio.sleep(seconds)  # cancelled when the client goes away

    def _take_drop(self, recipients: Iterable[str]) -> bool:
        for recipient in map(_key, recipients):
            if self._drops.get(recipient, 0) > 0:
                self._drops[recipient] -= 1
                return True
        return False

    def _authenticate(self, login: LoginPassword) -> bool:
        user = login.login.decode(errors="replace")
        self.auth_attempts.append(user)
        self._notify()
        if self._credentials is None:
            return True
        return self._credentials.get(user) == login.password.decode(errors="replace")

    def _authenticate_token(self, user: str, token: str) -> bool:
        self.auth_attempts.append(user)
        self._notify()
        if self._tokens is None:
            return self._credentials is None
        return self._tokens.get(user) == token

    def _accept(self, message: AcceptedMessage) -> None:
        self.messages.append(message)
        self._notify()
        if self.on_data is not None:
            self.on_data(message)
        if self._maildir is not None:
            self._maildir.add(message.raw)


class _InboxSMTP(SMTP):
    """One client session; aiosmtpd's protocol with the LocalSmtpServer's hooks."""

    def __init__(self, inbox: LocalSmtpServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            _Handler(inbox),
            hostname=inbox._hostname,
            tls_context=inbox._starttls,
            auth_require_tls=False,
            authenticator=_Authenticator(inbox),
            loop=loop,
        )
        self.inbox = inbox
        self.peer_name = "?"
        self._smtp_methods = {
            verb: _recorded(inbox, verb, method) for verb, method in self._smtp_methods.items()
        }

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    async def auth_XOAUTH2(self, _: SMTP, args: list[str]) -> AuthResult:
        """RFC-less but widespread (Google, Microsoft): base64 of
        "user=U^Aauth=Bearer T^A^A"."""
        try:
            decoded = b64decode(args[1].encode(), validate=True).decode()
            fields = dict(part.split("=", 1) for part in decoded.split("\x01") if part)
            user, token = fields["user"], fields["auth"].removeprefix("Bearer ")
        except (IndexError, KeyError, ValueError, binascii.Error):
            await self.push("501 5.5.2 Can't decode XOAUTH2")
            return AuthResult(success=False, handled=True)
        ok = self.inbox._authenticate_token(user, token)
        # handled=False: aiosmtpd answers 235 or 535 5.7.8 itself.
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(user.encode(), b""))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._original_transport is None  # STARTTLS calls this a second time
        super().connection_made(transport)
        if first:
            self.peer_name = _peer(transport.get_extra_info("peername"))
            self.inbox._connection(self, "open")

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.inbox._connection(self, "close")

    def client_left(self) -> bool:
        sock = None if self.transport is None else self.transport.get_extra_info("socket")
        if sock is None:
            return True
        try:  # peek on a duplicate: asyncio's socket wrapper has no recv()
            with socket.socket(fileno=os.dup(sock.fileno())) as dup:
                return dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False  # nothing to read: still connected
        except OSError:
            return True

    def hang_up(self) -> None:
        for transport in (self.transport, self._original_transport):
            if transport is not None:
                transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self._timeout_handle is not None:
            self._timeout_handle.cancel()

    async def _handle_client(self) -> None:
        rules = self.inbox.rules
        refused = None if rules is None else rules.admit_connection(self.peer_name)
        if refused is not None:
            await self.push(f"{refused[0]} {refused[1]}")
            assert self.transport is not None
            self.transport.close()
            return
        try:
            await self.inbox._stall("connect")
        except asyncio.CancelledError:  # the client left; aiosmtpd closes in this case too
            if self.transport is not None:
                self.transport.close()
            raise
        refusal = self.inbox._scripted("connect", ())
        if refusal is not None:
            await self.push(refusal)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _QuietSession(Session):
    """aiosmtpd sets the deprecated `login_data` on every AUTH and logs a warning
    each time; the LocalSmtpServer reads `auth_data` instead, so drop the noise."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _Authenticator:
    def __init__(self, inbox: LocalSmtpServer) -> None:
        self._inbox = inbox

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self._inbox._authenticate(data)
        if not ok:  # handled=False: aiosmtpd answers 535 5.7.8 itself
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=data)


class _Handler:
    """aiosmtpd handler hooks; returning a reply string overrides the default."""

    def __init__(self, inbox: LocalSmtpServer) -> None:
        self._inbox = inbox

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._inbox._credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        await self._inbox._stall("mail")
        refusal = self._inbox._scripted("mail", ())
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._inbox._stall("rcpt")
        await self._inbox._stall_recipient(address)
        refusal = self._inbox._scripted("rcpt", (address,))
        if refusal is not None:
            return refusal
        rules = self._inbox.rules
        refused = None if rules is None else rules.admit_recipient(address)
        if refused is not None:
            return f"{refused[0]} {refused[1]}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        inbox = self._inbox
        await inbox._stall("data")
        refusal = inbox._scripted("data", envelope.rcpt_tos)
        if refusal is not None:
            return refusal
        message = _accepted(session, envelope)
        rules = inbox.rules
        refused = None if rules is None else rules.admit_message(message)
        if refused is not None:
            return f"{refused[0]} {refused[1]}"
        inbox._accept(message)
        dropped = inbox._take_drop(envelope.rcpt_tos) or (rules is not None and rules.drop_message(message))
        if rules is not None:
            rules.received(message, not dropped)
        if dropped:
            assert server.transport is not None
            server.transport.close()
            # connection_lost cancels this session's task, so no reply is ever written.
            await asyncio.get_running_loop().create_future()
        return f"250 2.0.0 OK queued as {len(inbox.messages)}"


def _accepted(session: Session, envelope: Envelope) -> AcceptedMessage:
    raw = envelope.original_content or b""
    headers = BytesHeaderParser(policy=default_policy).parsebytes(raw)
    auth = session.auth_data
    return AcceptedMessage(
        received_at=_now(),
        peer=_peer(session.peer),
        mail_from=envelope.mail_from or "",
        rcpt_tos=tuple(envelope.rcpt_tos),
        message_id=_header(headers.get("Message-ID")),
        in_reply_to=_header(headers.get("In-Reply-To")),
        references=tuple((_header(headers.get("References")) or "").split()),
        subject=_header(headers.get("Subject")),
        raw=raw,
        auth_user=auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else None,
    )


def _recorded(inbox: LocalSmtpServer, verb: str, method: Callable[[str], Any]) -> Callable[[str], Any]:
    @functools.wraps(method)  # keeps the syntax attributes HELP reads
    async def recording(arg: str) -> Any:
        inbox.commands.append(verb)
        inbox._notify()
        return await method(arg)

    return recording


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _header(value: object) -> str | None:
    return None if value is None else str(value).strip()


def _key(address: str) -> str:
    return address.strip().lower()


def _now() -> datetime:
    return datetime.now(UTC)
