"""The unsubscribe and codec servers against an attacker on a public address
(docs/decisions/0045): slow headers and bodies are cut off, one client's connections
are capped, a flood of them leaves the health check answering and the log short, and
malformed or oversized bodies get 400 and 413, never 500. Real servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from yarl import URL

from client import codec_server, unsubscribe_server
from client.http_guard import Limits, serving
from config.codec import PayloadEncryption
from config.secrets import key_ring
from config.settings import Settings
from tests.processes import free_port, wait_until_listening

OUTREACH = str(Path(sys.executable).parent / "outreach")
MARGIN = 1.5  # seconds a loaded two-core machine may add to a timer
# What each server is asked to read a body for, and the content type it reads.
POSTS = {"unsubscribe": ("/u/x", "application/x-www-form-urlencoded"),
         "codec": ("/decode", "application/json")}


def ring_now() -> PayloadEncryption:
    return PayloadEncryption(key_ring(Settings().secret_keys))


@contextlib.asynccontextmanager
async def running(kind: str, pool: asyncpg.Pool, limits: Limits, host: str = "127.0.0.1",
                  proxies: unsubscribe_server.Networks = (),
                  limiter: unsubscribe_server.RateLimiter | None = None) -> AsyncIterator[str]:
    if kind == "unsubscribe":
        app = unsubscribe_server.build_app(
            pool, key_ring(Settings().secret_keys),
            unsubscribe_server.RateLimiter(6000, 1000) if limiter is None else limiter, proxies)
    else:
        app = codec_server.build_app(ring_now(), ["http://127.0.0.1:8233"], None)
    async with serving(app, host, 0, limits) as url:
        yield url


@dataclass
class Outcome:
    seconds: float  # from the mark to the server's answer or close
    answer: bytes  # b"": closed without one


async def exchange(url: str, head: bytes, drips: list[bytes], every: float, give_up: float,
                   mark_after_head: bool = False, local: str | None = None) -> Outcome:
    """Sends ``head``, then one drip every ``every`` seconds, until the server answers or
    closes (or ``give_up`` seconds pass: a TimeoutError)."""
    parsed = URL(url)
    reader, writer = await asyncio.open_connection(
        parsed.host, parsed.port, local_addr=(local, 0) if local else None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(head)
    if mark_after_head:
        await writer.drain()
        started = loop.time()

    async def drip() -> None:
        with contextlib.suppress(ConnectionError):
            for piece in drips:
                await asyncio.sleep(every)
                writer.write(piece)
                await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        try:
            first = await asyncio.wait_for(reader.read(65536), give_up)
        except ConnectionError:
            first = b""
        seconds = loop.time() - started
        with contextlib.suppress(ConnectionError):
            first += await asyncio.wait_for(reader.read(), 5) if first else b""
        return Outcome(seconds, first)
    finally:
        dripping.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request_head(url: str, kind: str, length: int) -> bytes:
    path, content_type = POSTS[kind]
    host = URL(url).raw_authority
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


@pytest.mark.parametrize("kind", ["unsubscribe", "codec"])
async def test_trickled_headers_and_bodies_are_cut_off_in_time(kind: str, pool: asyncpg.Pool) -> None:
    limits = Limits(header_timeout=3, body_stall_timeout=2, body_total_timeout=3)
    async with running(kind, pool, limits) as url:
        path, _ = POSTS[kind]
        header_lines = [f"X-Drip-{i}: {i}\r\n".encode() for i in range(20)]
        headers, trickled, stalled = await asyncio.gather(
            # One header line every 2 s: each arrives in time, the whole never does.
            exchange(url, f"POST {path} HTTP/1.1\r\n".encode(), header_lines, every=2, give_up=10),
            # One body byte a second: never stalls, never finishes.
            exchange(url, request_head(url, kind, 100) + b"x", [b"x"] * 20, every=1, give_up=10,
                     mark_after_head=True),
            # A few bytes, then nothing.
            exchange(url, request_head(url, kind, 100) + b"x" * 10, [], every=1, give_up=10,
                     mark_after_head=True),
        )
        assert headers.answer == b""  # nothing to answer: the connection is dropped
        assert 3 - 0.25 <= headers.seconds <= 3 + MARGIN, headers
        assert trickled.answer.startswith(b"HTTP/1.1 408"), trickled
        assert 3 - 0.25 <= trickled.seconds <= 3 + MARGIN, trickled
        assert stalled.answer.startswith(b"HTTP/1.1 408"), stalled
        assert 2 - 0.25 <= stalled.seconds <= 2 + MARGIN, stalled
        # An ordinary request is answered and kept alive; asking nothing more, the
        # connection is closed at the header timeout (exchange waits 5 s for the close).
        probe = f"GET /healthz HTTP/1.1\r\nHost: {URL(url).raw_authority}\r\n\r\n".encode()
        idle = await exchange(url, probe, [], every=1, give_up=10)
        assert idle.answer.startswith(b"HTTP/1.1 "), idle
        assert b"Connection: close" not in idle.answer
        async with aiohttp.ClientSession() as http, http.post(
            url + path, data=b"{}", headers={"Content-Type": POSTS[kind][1]},
        ) as response:  # a form without the field (a 400), or an empty Payloads message
            assert response.status == {"unsubscribe": 400, "codec": 200}[kind]


async def slow_connections(url: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections that send part of a request line and then nothing."""
    parsed = URL(url)

    async def one(i: int) -> asyncio.StreamWriter | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parsed.host, parsed.port), 5)
        except (OSError, TimeoutError):
            return None  # the server's queue was full: that connection never began
        if i % 2:
            writer.write(b"GET /healthz HT")
        return writer

    opened = await asyncio.gather(*(one(i) for i in range(count)))
    return [w for w in opened if w is not None]


async def probe_answers(kind: str, url: str) -> float:
    """Seconds a request from another client address (127.0.0.2) takes to be answered."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        if kind == "unsubscribe":
            request = http.get(url + "/healthz")
        else:
            request = http.post(url + "/encode", data=b'{"payloads": []}',
                                headers={"Content-Type": "application/json"})
        async with request as response:
            assert response.status == 200
    return loop.time() - started


@contextlib.asynccontextmanager
async def subprocess_server(kind: str, database_url: str, log: Path) -> AsyncIterator[str]:
    """``outreach <kind>-server`` under a 256-descriptor limit (what the scratch install
    had), its stdout and stderr into ``log``."""
    port = free_port()
    env = {**os.environ, "OUTREACH_DATABASE_URL": database_url,
           "OUTREACH_HTTP_HEADER_TIMEOUT_SECONDS": "60"}  # the slow connections stay for the test
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", 'ulimit -n 256 && exec "$@"', "sh",
            OUTREACH, "--log-level", "INFO", f"{kind}-server", "--port", str(port),
            env=env, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await wait_until_listening(port, f"{kind}-server")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("kind", ["unsubscribe", "codec"])
async def test_five_hundred_slow_connections_leave_the_server_answering_and_its_log_short(
    kind: str, database_url: str, tmp_path: Path,
) -> None:
    log = tmp_path / "server.log"
    async with subprocess_server(kind, database_url, log) as url:
        held = await slow_connections(url, 500)
        try:
            assert len(held) >= 400  # connected, as far as the client can tell
            await asyncio.sleep(1)  # the server turns the burst away
            for _ in range(5):
                assert await probe_answers(kind, url) < 1.0
                await asyncio.sleep(0.3)
        finally:
            for writer in held:
                writer.close()
    lines = log.read_text(errors="replace").splitlines()
    assert len(lines) < 50, "\n".join(lines[:60])
    dropped = [line for line in lines if "http_connection_dropped" in line]
    assert dropped and "refused_client_cap" in dropped[0], lines


async def test_one_client_gets_its_cap_and_a_full_server_drops_its_oldest_silent_connection(
    pool: asyncpg.Pool,
) -> None:
    limits = Limits(header_timeout=30, max_connections_per_client=3, max_connections=5)
    async with running("unsubscribe", pool, limits) as url:
        parsed = URL(url)

        async def connect(local: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection(parsed.host, parsed.port, local_addr=(local, 0))

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(100), 1) == b""
            except ConnectionError:
                return True
            except TimeoutError:
                return False  # still open, still waiting for a request

        first = [await connect("127.0.0.1") for _ in range(3)]
        over = await connect("127.0.0.1")
        assert await closed(over[0])  # the fourth is dropped unread, with no answer
        others = [await connect("127.0.0.2") for _ in range(2)]  # 5 open: the total
        assert not any(await asyncio.gather(*(closed(r) for r, _ in first + others)))
        # A sixth client finds the server full: the oldest silent connection makes room.
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http, http.get(url + "/healthz") as r:
            assert r.status == 200
        assert await closed(first[0][0])
        for _, writer in [*first, over, *others]:
            writer.close()


async def test_malformed_form_bodies_get_400_without_detail(pool: asyncpg.Pool) -> None:
    part = ('--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n{}\r\n'
            'One-Click\r\n--b--\r\n')
    multipart = "multipart/form-data; boundary=b"
    cases = [
        ("multipart/form-data", b"List-Unsubscribe=One-Click"),  # no boundary
        ("multipart/form-data; boundary=", b"--\r\n"),
        (multipart, b"not multipart at all"),
        (multipart, part.format("Content-Type: text/plain; charset=nope\r\n").encode()),
        (multipart, part.format("Content-Transfer-Encoding: nope\r\n").encode()),
        (multipart, part.format("").replace('; name="List-Unsubscribe"', "").encode()),  # a nameless field
        ("application/x-www-form-urlencoded; charset=nope", b"List-Unsubscribe=One-Click"),
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click&%ff=\xff"),
        ("application/x-www-form-urlencoded; charset=utf-16", b"List-Unsubscribe=One-Click"),
    ]
    async with running("unsubscribe", pool, Limits()) as url, aiohttp.ClientSession() as http:
        for content_type, body in cases:
            async with http.post(url + "/u/x", data=body, headers={"Content-Type": content_type}) as r:
                text = await r.text()
                assert r.status == 400, (content_type, body, text)
                # No traceback, no parser message (utf-16 decodes, to a form without the field).
                assert text in ("The request body is not a readable form\n",
                                "Expected the form body List-Unsubscribe=One-Click\n"), text


async def test_bodies_over_the_bound_get_413_declared_or_not(pool: asyncpg.Pool) -> None:
    async with running("unsubscribe", pool, Limits()) as url, aiohttp.ClientSession() as http:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        big = b"List-Unsubscribe=One-Click&pad=" + b"x" * unsubscribe_server.MAX_REQUEST_BYTES
        async with http.post(url + "/u/x", data=big, headers=headers) as r:
            assert r.status == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(40):
                yield b"x" * 1024

        async with http.post(url + "/u/x", data=chunks(), headers=headers) as r:
            assert r.status == 413
        # A declared length over the bound is refused before one byte of it is sent.
        declared = await exchange(url, request_head(url, "unsubscribe", 10**9), [], every=1, give_up=5)
        assert declared.answer.startswith(b"HTTP/1.1 413") and declared.seconds < 1.0


async def test_ipv6_clients_of_one_64_share_a_rate_limit_bucket(pool: asyncpg.Pool) -> None:
    proxy = [ipaddress.ip_network("127.0.0.1/32")]
    limiter = unsubscribe_server.RateLimiter(per_minute=1, burst=2)
    async with running("unsubscribe", pool, Limits(), proxies=proxy, limiter=limiter) as url, \
            aiohttp.ClientSession() as http:
        async def status(client: str) -> int:
            async with http.get(url + "/u/x", headers={"X-Forwarded-For": client}) as r:
                return r.status

        # 400: the link is not ours, but the request got past the limiter; 429: it did not.
        one_64 = ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2:abcd::9"]
        assert [await status(a) for a in one_64] == [400, 400, 429]
        assert await status("2001:db8:1:3::1") == 400  # the next /64 is another client
        assert [await status(a) for a in ["192.0.2.1", "192.0.2.2"]] == [400, 400]  # IPv4: each address


async def test_over_ipv6_loopback_the_connection_cap_and_the_url_work(pool: asyncpg.Pool) -> None:
    async with running("unsubscribe", pool, Limits(max_connections_per_client=2), host="::1") as url:
        assert url.startswith("http://[::1]:")
        held = [await asyncio.open_connection("::1", URL(url).port) for _ in range(2)]
        refused = await exchange(url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", [], every=1, give_up=5)
        assert refused.answer == b""  # a third connection from ::/64
        held[0][1].close()
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as r:
            assert r.status == 200
        held[1][1].close()
