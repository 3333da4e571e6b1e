"""What the public HTTP servers (``unsubscribe-server``, ``codec-server``) defend by themselves
(docs/decisions/0045): time, connections, bodies and their own log.

aiohttp bounds the size of a request line and of its headers, but not the time they
take: its only timer before a request is parsed is the keep-alive one (3630 s by
default), and nothing bounds a body that trickles in. A connection that sends a header
line every few seconds, or a body byte every few seconds, is held for as long as the
client likes, and a few hundred of them exhaust the process's file descriptors: then
every accept fails and asyncio logs each failure. None of it reaches a middleware, so
a rate limiter never sees it.

So ``serving`` puts a small protocol, ``GuardedConnection``, in front of aiohttp's for
every accepted connection. It sees the connection before aiohttp does (a client over
its connection cap is closed there, before one byte is read) and every byte that
arrives, and keeps one timer per connection: headers due (from connecting, or from the
last answer), then, once the ``timers`` middleware says a request's headers are in,
the body due. aiohttp has no hook for "headers parsed", but it calls the app's
middlewares right then, so the first middleware is that hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import StreamReader, web
from multidict import MultiDictProxy

from config.settings import Settings

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
Form = MultiDictProxy[str | bytes | bytearray | web.FileField]

# Connections the kernel may queue, and so also how many asyncio accepts per loop turn.
BACKLOG = 128
# Descriptors kept out of the connection budget: the listening socket, a database pool,
# log files, and one loop turn of accepted connections that are being refused.
RESERVED_DESCRIPTORS = 64
# How long an unread body is drained after an early answer (a 413, a 429), so the client
# can read the answer before the close; aiohttp's default is 10 s of the client's pace.
LINGER_SECONDS = 2.0
LOG_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class Limits:
    """Per-connection timers and connection caps; the defaults are the settings' defaults."""

    header_timeout: float = 10.0
    body_stall_timeout: float = 10.0
    body_total_timeout: float = 30.0
    max_connections_per_client: int = 20
    max_connections: int = 1000
    # Peers whose connections only count in the total: reverse proxies carry many clients.
    exempt: Networks = ()
    log_interval: float = LOG_INTERVAL_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings, exempt: Networks = ()) -> Limits:
        return cls(
            header_timeout=settings.http_header_timeout_seconds,
            body_stall_timeout=settings.http_body_timeout_seconds,
            body_total_timeout=settings.http_body_total_seconds,
            max_connections_per_client=settings.http_max_connections_per_client,
            max_connections=settings.http_max_connections,
            exempt=exempt,
        )


def client_key(address: str) -> str:
    """What one client's limits count against: its IPv4 address, or its IPv6 /64. One
    subscriber or host gets a whole /64 and picks any address in it, so counting per
    IPv6 address would give it as many buckets as it wants."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP (a unix socket, "?"): counted as it is
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d from a dual-stack socket is that IPv4 client
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


def within(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def connection_budget(requested: int) -> int:
    """``requested``, held under half the descriptors left after the reserve: past the
    limit every accept fails, and the server cannot even answer its health check."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, (soft - RESERVED_DESCRIPTORS) // 2))


def raise_descriptor_limit() -> int:
    """Raises the soft descriptor limit to the hard one (as nginx's worker_rlimit_nofile
    does); a container's soft limit is often far below what it may use. Returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


class Throttle:
    """Lets one event per ``interval`` through and counts the others, so a flood of one
    kind of event costs a log line per interval that still says how many there were."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next = -math.inf
        self._count = 0

    def hit(self) -> int | None:
        """None to stay quiet, or the events since the last one let through, this one included."""
        self._count += 1
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self._interval
        count, self._count = self._count, 0
        return count


class Report:
    """Calls ``emit(count)`` for an event, then at most once per ``interval`` with the
    number of events since. A flood of one kind of event costs one log line per interval,
    and the count of a burst's tail still comes, at the end of its interval."""

    def __init__(self, interval: float, emit: Callable[[int], None]) -> None:
        self._interval = interval
        self._emit = emit
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None

    def event(self) -> None:
        self._count += 1
        if self._timer is None:
            self._flush()

    def close(self) -> None:
        """Reports what is still counted, now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._report()

    def _flush(self) -> None:
        self._timer = None
        if self._report():
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._flush)

    def _report(self) -> bool:
        count, self._count = self._count, 0
        if count:
            self._emit(count)
        return count > 0


class ThrottledRecords(logging.Filter):
    """One record per message template and interval: aiohttp logs an error with its
    traceback for every malformed request, and anyone can send those."""

    def __init__(self, interval: float = LOG_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval = interval
        self._throttles: dict[tuple[str, str], Throttle] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        count = self._throttles.setdefault(key, Throttle(self._interval)).hit()
        if count is None:
            return False
        if count > 1:
            record.msg = f"{record.msg} [{count - 1} more like it since the last such line]"
        return True


# aiohttp's per-connection error lines ("Error handling request ...") go through this logger.
_AIOHTTP_LOG = logging.getLogger(f"{__name__}.aiohttp")
_AIOHTTP_LOG.addFilter(ThrottledRecords())


@contextlib.contextmanager
def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float) -> Iterator[None]:
    """While the block runs, a failed accept (EMFILE, ENFILE, ...) is logged at most once
    per ``interval``, with a count. asyncio's selector loop reports it to the loop's
    exception handler once per accept attempt, and attempts up to the backlog each loop
    turn, so out of descriptors the default handler wrote hundreds of thousands of lines
    a minute. Other reports go where they went before."""
    previous = loop.get_exception_handler()
    errors: Counter[str] = Counter()

    def emit(count: int) -> None:
        log.error("http_accept_failed", count=count, errors=dict(errors),
                  hint="out of file descriptors: lower OUTREACH_HTTP_MAX_CONNECTIONS or raise ulimit -n")
        errors.clear()

    report = Report(interval, emit)

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            errors[str(context.get("exception"))] += 1
            report.event()
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)
        report.close()


class BodyTimeout(TimeoutError):
    """Set on a request's body stream when it stalls or takes too long; a TimeoutError,
    so aiohttp's own draining of an unread body stops on it quietly."""


class ConnectionTable:
    """The open connections: counted per client and in all, with the ones waiting for
    request headers in age order (the first to go when the total is reached)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.max_connections = connection_budget(limits.max_connections)
        self.count = 0
        self._per_client: Counter[str] = Counter()
        self._idle: dict[GuardedConnection, None] = {}  # insertion order is age
        self._reports: dict[str, Report] = {}
        self._refused: Counter[str] = Counter()  # clients over their cap, since the last line

    def client_of(self, transport: asyncio.BaseTransport) -> str | None:
        """The key a connection counts against per client, or None for an exempt peer."""
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        return None if within(address, self.limits.exempt) else client_key(address)

    def admit(self, connection: GuardedConnection) -> bool:
        client = connection.client
        if client is not None and self._per_client[client] >= self.limits.max_connections_per_client:
            self._refused[client] += 1
            self.note("refused_client_cap")
            return False
        if self.count >= self.max_connections and not self._evict_oldest_idle():
            self.note("refused_total_cap")
            return False
        self.count += 1
        if client is not None:
            self._per_client[client] += 1
        return True

    def release(self, connection: GuardedConnection) -> None:
        self.count -= 1
        self._idle.pop(connection, None)
        if connection.client is not None:
            self._per_client[connection.client] -= 1
            if not self._per_client[connection.client]:
                del self._per_client[connection.client]

    def idle(self, connection: GuardedConnection, waiting: bool) -> None:
        if waiting:
            self._idle[connection] = None
        else:
            self._idle.pop(connection, None)

    def note(self, reason: str) -> None:
        """Logs a refused or dropped connection, in one line per interval and reason."""
        if reason not in self._reports:
            self._reports[reason] = Report(self.limits.log_interval, lambda count: self._log(reason, count))
        self._reports[reason].event()

    def close(self) -> None:
        for report in self._reports.values():
            report.close()

    def _log(self, reason: str, count: int) -> None:
        if reason == "refused_client_cap":
            top = dict(self._refused.most_common(3))
            self._refused.clear()
            log.warning("http_connection_dropped", reason=reason, count=count, clients=top)
        else:
            level = log.warning if reason.startswith("refused") else log.info
            level("http_connection_dropped", reason=reason, count=count)

    def _evict_oldest_idle(self) -> bool:
        """Makes room by closing the connection that has waited longest for its headers:
        a silent connection costs its client the slot, not the next client."""
        if not self._idle:
            return False
        oldest = next(iter(self._idle))
        del self._idle[oldest]
        oldest.drop("evicted_idle")
        return True


@dataclass
class _Body:
    stream: StreamReader  # request.content
    started: float


class GuardedConnection(asyncio.Protocol):
    """One accepted connection, in front of aiohttp's protocol for it: admits or refuses
    it, passes everything through, and keeps its one timer (see the module's doc)."""

    def __init__(self, inner: asyncio.Protocol, table: ConnectionTable) -> None:
        self._inner = inner
        self._table = table
        self._limits = table.limits
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._body: _Body | None = None
        self._last_data = 0.0
        self._unsent = math.inf  # bytes of our last answer not yet taken by the client
        self.client: str | None = None

    # -- asyncio.Protocol, passed through -----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client = self._table.client_of(transport)
        if not self._table.admit(self):
            transport.abort()  # aiohttp never sees it; nothing is read
            return
        self._transport = transport
        self._inner.connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused: never admitted, never handed on
        self._transport = None
        self._cancel_timer()
        self._table.release(self)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- the request's progress, from the ``timers`` middleware -------------------------

    def request_started(self, request: web.BaseRequest) -> None:
        """Its headers are in: the header timer stops; the body's starts if one is coming."""
        self._table.idle(self, False)
        self._cancel_timer()
        if self._transport is None or request.content.is_eof():
            return
        self._body = _Body(request.content, self._loop.time())
        self._last_data = self._body.started
        self._arm(min(self._limits.body_stall_timeout, self._limits.body_total_timeout), self._check_body)

    def request_finished(self) -> None:
        self._await_headers()

    def drop(self, reason: str) -> None:
        self._table.note(reason)
        if self._transport is not None:
            self._transport.abort()

    # -- the timer ------------------------------------------------------------------------

    def _await_headers(self) -> None:
        if self._transport is None:
            return
        self._body = None
        self._unsent = math.inf
        self._table.idle(self, True)
        self._arm(self._limits.header_timeout, self._headers_overdue)

    def _headers_overdue(self) -> None:
        if self._transport is None:
            return
        unsent = self._transport.get_write_buffer_size()
        if 0 < unsent < self._unsent:
            # Still taking our last (large) answer: a slow reader that makes progress.
            self._unsent = unsent
            self._arm(self._limits.header_timeout, self._headers_overdue)
            return
        self.drop("header_timeout")

    def _check_body(self) -> None:
        body = self._body
        if body is None or body.stream.is_eof():
            return
        now = self._loop.time()
        stall_end = self._last_data + self._limits.body_stall_timeout
        total_end = body.started + self._limits.body_total_timeout
        if now < min(stall_end, total_end):
            self._arm(min(stall_end, total_end) - now, self._check_body)
            return
        reason = "body_stalled" if now >= stall_end else "body_too_slow"
        self._table.note(reason)
        # Wakes the handler's read with the error; the read helpers answer it with 408.
        body.stream.set_exception(BodyTimeout(reason))

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        if self._transport is not None:
            self._timer = self._loop.call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _connection_of(request: web.BaseRequest) -> GuardedConnection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, GuardedConnection) else None


@web.middleware
async def timers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The first middleware of every app ``serving`` runs: aiohttp calls it as soon as a
    request's headers are parsed, which is when the connection's header timer must stop."""
    connection = _connection_of(request)
    if connection is not None:
        connection.request_started(request)
    try:
        return await handler(request)
    except BodyTimeout:  # a handler that read the body itself, without the helpers below
        raise _closing(web.HTTPRequestTimeout(text="The request body came too slowly\n")) from None
    finally:
        if connection is not None:
            connection.request_finished()


def _closing(response: web.HTTPException) -> web.HTTPException:
    response.force_close()  # what is left of the body is not read
    return response


def _ended_early() -> web.HTTPException:
    """For a client that went away mid-body: an answer nobody reads, where the error
    itself would reach aiohttp as a 500 and log a traceback per disconnect."""
    return _closing(web.HTTPBadRequest(text="The request body ended early\n"))


def _refuse_declared_oversize(request: web.BaseRequest, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise _closing(web.HTTPRequestEntityTooLarge(
            limit, request.content_length, text=f"The request body is over {limit} bytes\n"))


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (413), in time (408)."""
    _refuse_declared_oversize(request, limit)
    try:
        return await request.read()
    except BodyTimeout:
        raise _closing(web.HTTPRequestTimeout(text="The request body came too slowly\n")) from None
    except web.HTTPRequestEntityTooLarge as exc:
        raise _closing(exc) from None
    except ConnectionError:
        raise _ended_early() from None


async def read_form(request: web.BaseRequest, limit: int) -> Form:
    """The form fields (urlencoded or multipart), like ``read_body``, and 400 for a body
    that is not a form: a multipart type without boundary, an unknown charset or transfer
    encoding, bytes that are not in the charset. The body is bounded and parsed in
    memory, so whatever the parser raises is the body's fault, never the server's."""
    _refuse_declared_oversize(request, limit)
    try:
        return await request.post()
    except BodyTimeout:
        raise _closing(web.HTTPRequestTimeout(text="The request body came too slowly\n")) from None
    except web.HTTPException as exc:  # 413, or too many fields
        raise _closing(exc) from None
    except ConnectionError:
        raise _ended_early() from None
    except Exception as exc:
        log.info("http_form_refused", error=type(exc).__name__, detail=str(exc)[:200])
        raise _closing(web.HTTPBadRequest(text="The request body is not a readable form\n")) from None


def base_url(host: str, server: asyncio.Server) -> str:
    port = server.sockets[0].getsockname()[1]
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int,
                  limits: Limits | None = None) -> AsyncIterator[str]:
    """The app listening on host:port behind the guard until the block ends; yields its
    base URL (with the bound port, also for port 0)."""
    if timers not in app.middlewares:
        raise ValueError("the app must have client.http_guard.timers as its first middleware")
    limits = limits or Limits()
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(
        app,
        access_log=None,  # a line per request would be a flood's amplifier; the apps log what matters
        logger=_AIOHTTP_LOG,
        lingering_time=LINGER_SECONDS,
        # Neither server takes compressed bodies; unpacked, a small one could far exceed
        # the bound before it is counted.
        auto_decompress=False,
        # handler_cancellation stays off: a client that goes away after posting its
        # one-click still gets unsubscribed.
    )
    await runner.setup()
    try:
        table = ConnectionTable(limits)
        handlers = runner.server
        assert handlers is not None
        with quiet_accept_errors(loop, limits.log_interval):
            server = await loop.create_server(lambda: GuardedConnection(handlers(), table), host, port,
                                              backlog=BACKLOG)
            try:
                yield base_url(host, server)
            finally:
                server.close()
                table.close()
    finally:
        await runner.cleanup()
