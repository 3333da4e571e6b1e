"""The parts of client/http_guard.py that need no server: whom a limit counts against,
how many connections the descriptors allow, and how a flood of one event stays one log
line per interval (docs/decisions/0045)."""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

import pytest
from aiohttp import web

from client import http_guard
from client.http_guard import Report, Throttle, ThrottledRecords, client_key, connection_budget


def test_ipv6_addresses_of_one_64_are_one_client_and_ipv4_addresses_are_each_their_own() -> None:
    same = {client_key(a) for a in ("2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff",
                                    "2001:DB8:1:2:abcd::9")}
    assert same == {"2001:db8:1:2::/64"}
    assert client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert client_key("::1") == "::/64"
    assert client_key("192.0.2.1") != client_key("192.0.2.2")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"  # a dual-stack socket's IPv4 client
    assert client_key("?") == "?"


def test_the_connection_budget_stays_under_half_the_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 256))
    assert connection_budget(1000) == (256 - http_guard.RESERVED_DESCRIPTORS) // 2
    monkeypatch.setattr(resource, "getrlimit", lambda _: (20_000, 20_000))
    assert connection_budget(1000) == 1000
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert connection_budget(1000) == 1000


def test_a_throttle_lets_one_event_per_interval_through_with_the_count() -> None:
    now = [0.0]
    throttle = Throttle(10, clock=lambda: now[0])
    assert throttle.hit() == 1
    assert [throttle.hit() for _ in range(99)] == [None] * 99
    now[0] = 10.0
    assert throttle.hit() == 100


def test_aiohttps_error_lines_are_throttled_per_message() -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("tests.http_guard.throttled")
    logger.propagate = False
    logger.addFilter(ThrottledRecords(interval=3600))
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    for i in range(10_000):
        logger.error("Error handling request from %s", f"192.0.2.{i % 250}")
    logger.error("another message")
    assert [r.getMessage() for r in records] == ["Error handling request from 192.0.2.0", "another message"]


class Recorder:
    """Stands in for the module's structlog logger."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    warning = info = error


async def test_a_flood_of_accept_errors_is_one_line_per_interval_with_its_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(http_guard, "log", recorder)
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    seen: list[str] = []
    loop.set_exception_handler(lambda _, context: seen.append(context["message"]))
    try:
        with http_guard.quiet_accept_errors(loop, interval=3600):
            for _ in range(10_000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})
            loop.call_exception_handler({"message": "something else"})
        assert seen == ["something else"]  # the handler before it still gets the rest
    finally:
        loop.set_exception_handler(before)
    # The first, and the rest counted when the block ended.
    assert [(event, fields["count"]) for event, fields in recorder.lines] == [
        ("http_accept_failed", 1), ("http_accept_failed", 9999)]
    assert recorder.lines[1][1]["errors"] == {"[Errno 24] Too many open files": 9999}


async def test_a_report_sums_a_burst_and_says_the_tail_at_the_end_of_the_interval() -> None:
    emitted: list[int] = []
    report = Report(0.2, emitted.append)
    for _ in range(50):
        report.event()
    assert emitted == [1]
    await asyncio.sleep(0.3)
    assert emitted == [1, 49]
    await asyncio.sleep(0.3)
    report.event()  # quiet for an interval: the next one is said at once
    assert emitted == [1, 49, 1]
    report.close()


async def test_an_app_without_the_timers_middleware_is_not_served() -> None:
    with pytest.raises(ValueError, match="timers"):
        async with http_guard.serving(web.Application(), "127.0.0.1", 0):
            pass
