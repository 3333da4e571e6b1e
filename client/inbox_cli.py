"""``outreach inbox``: read the mailboxes' inboxes now, for operators and tests.

Needs PostgreSQL and the IMAP servers only (no Temporal): the same pass the
inbox-poll schedule runs (docs/decisions/0034).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from client.db_command import fail, run_on_database
from client.output import echo, echo_json
from config.secrets import SecretKeyError, key_ring
from config.settings import get_settings
from inbox.poll import PollLimits, poll_all
from specs.csv_cells import neutral_row
from store.inbound import events_since, list_inbound, referrals


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


_INTENTS = ("interested", "meeting", "question", "not_interested", "unsubscribe", "wrong_person", "referral",
            "out_of_office", "other")
_WHEN = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"])


@inbox.command("list")
@click.option("--class", "intent", type=click.Choice(_INTENTS), help="Only replies of this intent.")
@click.option("--campaign", "campaign_id", help="Only messages matched to this campaign.")
@click.option("--since", type=_WHEN, help="UTC date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SS).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def inbox_list(intent: str | None, campaign_id: str | None, since: datetime | None, limit: int,
               as_json: bool) -> None:
    """Messages read from the inboxes, newest first: time, mailbox, prospect, class
    (the reply's intent), confidence, campaign, step and what on_reply did. No text."""
    rows = run_on_database(lambda pool: list_inbound(
        pool, intent=intent, campaign_id=campaign_id, since=since.replace(tzinfo=UTC) if since else None,
        limit=limit))
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        echo(_list_line(r))


def _list_line(r: dict[str, Any]) -> str:
    what = r["intent"] or r["class"]
    confidence = f" {r['intent_confidence']:.2f}" if r["intent_confidence"] is not None else ""
    where = f" {r['campaign_id']} step {r['step']}" if r["campaign_id"] else " unmatched"
    prospect = f" prospect {r['prospect_id']}" if r["prospect_id"] is not None else ""
    action = f" -> {r['action']}" if r["action"] else ""
    back = f" (back {r['return_date']})" if r["return_date"] else ""
    when = f"{r['recorded_at']:%Y-%m-%dT%H:%M:%S}Z"
    return f"{when} {r['mailbox_id']}{prospect} {what}{confidence}{where}{action}{back}"


@inbox.command("referrals")
@click.option("--campaign", "campaign_id", help="Only this campaign's.")
@click.option("--workspace", "workspace_id", help="Only this workspace's.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def inbox_referrals(campaign_id: str | None, workspace_id: str | None, as_json: bool) -> None:
    """The people replies named instead of the prospect, for export: time, campaign,
    the prospect who named them, and the address when the reply gave one (CSV)."""
    rows = run_on_database(lambda pool: referrals(pool, campaign_id, workspace_id))
    if as_json:
        echo_json(rows)
        return
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["created_at", "workspace_id", "campaign_id", "prospect_id", "referred_email"])
    for r in rows:
        # The address is a stranger's text: no cell of it runs as a spreadsheet formula.
        writer.writerow(neutral_row([f"{r['created_at']:%Y-%m-%dT%H:%M:%S}Z", str(r["workspace_id"]),
                                     str(r["campaign_id"]), str(r["prospect_id"]),
                                     str(r["referred_email"] or "")]))
    echo(out.getvalue().rstrip("\n"))
