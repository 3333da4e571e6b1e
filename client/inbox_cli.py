"""``outreach inbox``: read the mailboxes' inboxes now, for operators and tests.

Needs PostgreSQL and the IMAP servers only (no Temporal): the same pass the
inbox-poll schedule runs (docs/decisions/0034).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from client.db_command import fail, run_on_database
from client.output import echo, echo_json
from config.secrets import SecretKeyError, key_ring
from config.settings import get_settings
from inbox.poll import PollLimits, poll_all
from store.inbound import events_since


def poll_limits() -> PollLimits:
    s = get_settings()
    return PollLimits(max_message_bytes=s.inbox_max_message_bytes,
                      match_window=timedelta(days=s.reply_match_days), timeout=s.imap_timeout_seconds)


@click.group()
def inbox() -> None:
    """Replies, bounces, unsubscribes and complaints read from the mailboxes' inboxes."""


@inbox.command("poll")
@click.argument("mailbox_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def inbox_poll(mailbox_id: str | None, as_json: bool) -> None:
    """Read every IMAP mailbox (or MAILBOX_ID) once now; one line per new message
    (mailbox, folder, uid, class, matched send key)."""
    try:
        ring = key_ring(get_settings().secret_keys)
    except SecretKeyError as exc:
        fail(str(exc))
    from activities.inbox import oauth_token_source
    from mail.oauth import HttpTokenEndpoint

    results = run_on_database(lambda pool: poll_all(
        pool, ring, poll_limits(), mailbox_id,
        tokens=oauth_token_source(pool, HttpTokenEndpoint(), ring)))
    found = [f for r in results for f in r.found]
    if as_json:
        echo_json([f.as_dict() for f in found], ensure_ascii=False)
    else:
        for f in found:
            echo(f.line())
    for r in results:
        if r.error:
            echo(f"error: mailbox {r.mailbox_id}: {r.error}", err=True)
    if any(r.error for r in results):
        raise SystemExit(1)


@inbox.command("export")
@click.option("--since", required=True, type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="UTC date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SS).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def inbox_export(since: datetime, as_json: bool) -> None:
    """Replies, bounces, unsubscribes and complaints recorded since a date, with their
    ids, class and time (what a CRM follows)."""
    events = run_on_database(lambda pool: events_since(pool, since.replace(tzinfo=UTC)))
    if as_json:
        echo_json(events)
        return
    for e in events:
        verdict = f" ({e['verdict']})" if e["verdict"] else ""
        # A message short of proof (decision 0050) says so: it changed nothing, or only
        # stopped the one sequence it names.
        short = "" if e["proven"] else f" ({e['detail']})"
        echo(f"{e['recorded_at']:%Y-%m-%dT%H:%M:%S}Z {e['class']}{verdict} {e['mailbox_id']}"
             f" {e['send_key'] or 'unmatched'}{short}")
