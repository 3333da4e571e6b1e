"""``outreach workflows replay``: before a deploy, replay the histories of the running
executions against the installed workflow code (client/replay.py).

Needs the Temporal server and the secret keys only (no PostgreSQL, no Redis), so it
runs from wherever the new version is built.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from client import ClientError
from client.db_command import fail
from client.output import echo, echo_json
from client.replay import DEFAULT_LIMIT, ReplayReport, connect, replay_workflows, running_query
from config.secrets import SecretKeyError
from config.settings import Settings, get_settings
from config.version import outreach_version


@click.group()
def workflows() -> None:
    """The Temporal executions of this installation."""


@workflows.command("replay")
@click.option("--query", default=None, metavar="TEXT",
              help="A Temporal visibility list filter (default: this installation's running workflows).")
@click.option("--limit", default=DEFAULT_LIMIT, show_default=True, type=click.IntRange(min=1),
              help="Replay at most this many executions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def workflows_replay(query: str | None, limit: int, as_json: bool) -> None:
    """Download the histories of workflows (default: the running ones) and replay them against
    this code, as a worker of this version would on picking them up: run it before rolling out
    new workers. Exit status 0: every one replays; 1: some fail (one line each, with the first
    event the code disagrees with); 2: bad input (server unreachable, query refused, keys)."""
    settings = get_settings()
    echo(f"replaying against outreach {outreach_version()}:"
         f" {query or running_query(settings)}", err=True)
    report = _replay(settings, query, limit)
    if as_json:
        echo_json(report.as_json())
    else:
        for failure in report.failures:
            echo(failure.line())
        echo(report.summary())
    if not report.runs:
        echo("note: no workflow matched the query", err=True)
    if report.limit_reached:
        echo(f"note: stopped at --limit {limit}; more workflows may match", err=True)
    sys.exit(1 if report.failures else 0)


def _replay(settings: Settings, query: str | None, limit: int) -> ReplayReport:
    async def run() -> ReplayReport:
        temporal = await connect(settings)
        return await replay_workflows(temporal, settings, query=query, limit=limit,
                                      progress=_ProgressLines())

    try:
        with _quiet_sdk_failures():
            return asyncio.run(run())
    except (ClientError, SecretKeyError) as exc:
        fail(str(exc))


class _ProgressLines:
    """"fetched 120/300 histories" on stderr: at most one a second, and the last one."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last >= 1.0:
            self._last = now
            echo(f"{stage} {done}/{total} histories", err=True)


@contextmanager
def _quiet_sdk_failures() -> Iterator[None]:
    """The SDK logs each failed replay with a traceback; the report already has one line
    per failure, with where the workflow code raised. ``--log-level INFO`` keeps them."""
    sdk = logging.getLogger("temporalio.worker")
    level = sdk.level
    if not logging.getLogger().isEnabledFor(logging.INFO):
        sdk.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        sdk.setLevel(level)
