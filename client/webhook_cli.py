"""``outreach webhook replay``: send a window of events again (issue 25).

Reads the recorded events (store/webhook_events.py) and POSTs them, signed, to
OUTREACH_WEBHOOK_URL in the order they were written, a batch at a time. The ids are
the events' own, so a receiver that deduplicates by id (as it must: delivery is at
least once) takes a replay as a no-op for what it already has. Needs PostgreSQL and
the receiver only (no Temporal); it does not change what the schedule still owes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import click

from client.db_command import fail, run_on_database
from client.output import echo
from config.settings import get_settings
from inbox.webhook import WebhookRefused, post_events
from store import webhook_events

_WHEN = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])


@click.group()
def webhook() -> None:
    """The events POSTed to OUTREACH_WEBHOOK_URL."""


@webhook.command("replay")
@click.option("--since", required=True, type=_WHEN,
              help="UTC date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SS).")
@click.option("--until", "until", type=_WHEN, help="UTC; events before it (default: up to now).")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=100, show_default=True)
def webhook_replay(since: datetime, until: datetime | None, batch_size: int) -> None:
    """POST again every event that occurred in [--since, --until), in order, under the
    same event ids."""
    settings = get_settings()
    if not settings.webhook_url:
        fail("OUTREACH_WEBHOOK_URL is not set: there is no receiver to replay to")

    async def replay(pool: asyncpg.Pool) -> int:
        sent, after = 0, 0
        while True:
            events, after = await webhook_events.window(
                pool, since.replace(tzinfo=UTC), until.replace(tzinfo=UTC) if until else None, after,
                batch_size, settings.webhook_include_address)
            if not events:
                return sent
            await post_events(settings.webhook_url, settings.webhook_secret, events)
            sent += len(events)

    try:
        sent = run_on_database(replay)
    except WebhookRefused as exc:
        fail(str(exc))
    echo(f"replayed {sent} events")
