"""The image's health probe (``python -m telemetry.probe``; docs/decisions/0023).

A worker is healthy while its /metrics endpoint answers: the endpoint starts once
the worker has reached Temporal and ends with the process. A container running any
other ``outreach`` command (``db migrate``, ``schedules apply``, the codec server)
has nothing to probe and is reported healthy, so one-shot jobs never turn unhealthy
while they run. With metrics turned off (port 0) there is nothing to ask either.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path

from config.settings import Settings

_ANY_ADDRESS = {"", "0.0.0.0", "::"}


def command_line(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def runs_worker(argv: list[str]) -> bool:
    """``outreach [options] worker``, run directly, by an interpreter or under an init."""
    for i, arg in enumerate(argv):
        if Path(arg).name == "outreach":
            return "worker" in argv[i + 1:]
    return False


def metrics_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.metrics_host in _ANY_ADDRESS else settings.metrics_host
    return f"http://{host}:{settings.metrics_port}/metrics"


def probe(pid: int, settings: Settings, timeout: float) -> tuple[bool, str]:
    if not runs_worker(command_line(pid)):
        return True, "not a worker: nothing to probe"
    if not settings.metrics_port:
        return True, "metrics are off (OUTREACH_METRICS_PORT=0): nothing to probe"
    url = metrics_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telemetry.probe", description=__doc__)
    parser.add_argument("--pid", type=int, default=1, help="the process to judge (the container's first)")
    parser.add_argument("--timeout", type=float, default=3.0)
    options = parser.parse_args(args)
    healthy, why = probe(options.pid, Settings(), options.timeout)
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
