"""The image's health probe (telemetry/probe.py) against real processes and a real endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread

import pytest

from config.settings import Settings
from telemetry.probe import probe, runs_worker


@pytest.mark.parametrize(("argv", "worker"), [
    (["/opt/outreach/bin/python", "/opt/outreach/bin/outreach", "worker"], True),
    (["/sbin/docker-init", "--", "outreach", "--log-level", "DEBUG", "worker"], True),
    (["/opt/outreach/bin/python", "/opt/outreach/bin/outreach", "db", "migrate"], False),
    (["outreach", "codec-server", "--port", "8081"], False),
    (["python", "-m", "pytest", "worker"], False),
])
def test_which_command_lines_are_a_worker(argv: list[str], worker: bool) -> None:
    assert runs_worker(argv) is worker


@pytest.fixture
def worker_lookalike() -> Iterator[int]:
    """A process whose command line is a worker's (``... outreach worker``), serving nothing."""
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "outreach", "worker"],
                          stdin=subprocess.PIPE) as proc:
        # Until the child has exec'd, /proc shows the parent's command line, and the probe
        # would rightly call it "not a worker" (CI saw it).
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 10
        while b"worker" not in cmdline.read_bytes():
            assert time.monotonic() < deadline, "the stand-in worker did not start"
            time.sleep(0.01)
        yield proc.pid
        proc.kill()


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        self.send_response(200 if self.path == "/metrics" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metrics_port() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Metrics)
    Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound for the test and never listened on: a connection is refused, and no
    other process can take the port meanwhile (a port merely free when picked could be
    taken by a server of another test before the probe, which a CI run saw)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def test_a_worker_whose_metrics_answer_is_healthy(worker_lookalike: int, metrics_port: int) -> None:
    healthy, why = probe(worker_lookalike, Settings(metrics_port=metrics_port), timeout=3)
    assert healthy, why


def test_a_worker_whose_metrics_do_not_answer_is_unhealthy(worker_lookalike: int, closed_port: int) -> None:
    healthy, why = probe(worker_lookalike, Settings(metrics_port=closed_port), timeout=3)
    assert not healthy and "refused" in why.lower()


def test_a_one_shot_command_or_metrics_off_has_nothing_to_probe(
    worker_lookalike: int, closed_port: int,
) -> None:
    assert probe(os.getpid(), Settings(metrics_port=closed_port), timeout=3) == (
        True, "not a worker: nothing to probe")
    healthy, why = probe(worker_lookalike, Settings(metrics_port=0), timeout=3)
    assert healthy and "metrics are off" in why
