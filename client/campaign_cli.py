"""``outreach campaigns list|add-prospects|close`` and ``outreach prospects stop``:
operator controls on a running campaign, over OutreachClient (docs/decisions/0039)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import click

from client import ClientError
from client.api import OutreachClient
from client.db_command import fail, run_on_database
from client.output import echo, echo_json
from config.settings import get_settings
from specs import SpecError
from specs.prospects import zone_summary
from store import StoreError, campaign_controls

T = TypeVar("T")
_STATES = ("created", "running", "paused", "completed", "cancelled")


def _with_client(action: Callable[[OutreachClient], Awaitable[T]]) -> T:
    """Run ``action`` on a connected client; known errors become one line, exit code 2."""

    async def run() -> T:
        client = await OutreachClient.connect(get_settings())
        try:
            return await action(client)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    except (SpecError, StoreError, ClientError) as exc:
        fail(str(exc))
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"cannot reach the database: {exc}")


@click.command("list")
@click.option("--state", type=click.Choice(_STATES), help="Only campaigns in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def campaigns_list(state: str | None, as_json: bool) -> None:
    """List campaigns: id, name, workspace, state and progress (sends done of all)."""
    found = run_on_database(lambda pool: campaign_controls.list_campaigns(pool, state))  # no Temporal needed
    if as_json:
        echo_json([s.as_json() for s in found])
        return
    for s in found:
        state_text = s.state + (" (open)" if s.open else "")
        echo(f"{s.id:<16} {s.name[:30]:<30} {s.workspace:<16} {state_text:<16}"
             f" {s.sends_done}/{s.sends_total} sends done, {s.prospects} prospects")


@click.command("add-prospects")
@click.argument("campaign_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dedupe", type=click.Choice(["workspace", "campaign"]),
              help="workspace: skip prospects active in another running campaign of the workspace"
                   " (default: the campaign file's setting).")
def campaigns_add_prospects(campaign_id: str, file: Path, dedupe: str | None) -> None:
    """Add the prospects of a CSV FILE to a campaign (all or nothing); a running
    campaign sends them without a restart."""

    async def add(c: OutreachClient) -> None:
        loaded = await c.read_prospects(campaign_id, file)
        for warning in loaded.warnings:
            echo(f"warning: {warning}", err=True)
        echo(zone_summary(loaded.prospects))
        added = await c.add_prospects(campaign_id, loaded.prospects, dedupe)
        echo(f"added {added.added} prospect(s) to {campaign_id}; skipped {added.duplicates}"
             f" already in the campaign, {added.active_elsewhere} active in another running"
             f" campaign; {added.suppressed} suppressed (on the do-not-contact list)")

    _with_client(add)


@click.command("close")
@click.argument("campaign_id")
def campaigns_close(campaign_id: str) -> None:
    """Close an open campaign: it completes once its prospects are through."""
    _with_client(lambda c: c.close_campaign(campaign_id))
    echo(f"campaign {campaign_id} closed: it completes once its prospects are through")


@click.command("update")
@click.argument("campaign_id")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def campaigns_update(campaign_id: str, file: Path) -> None:
    """Change the subjects, bodies and delays of a campaign's steps, and its schedule, from
    a campaign FILE, for every send not made yet (all or nothing; steps cannot be added or
    removed)."""
    updated = _with_client(lambda c: c.update_campaign(campaign_id, file))
    if updated.schedule_changed:
        echo(f"campaign {campaign_id}: schedule updated; every waiting prospect is planned anew")
    if not updated.changed:
        echo(f"campaign {campaign_id}: no step changed")
        return
    echo(f"campaign {campaign_id}: step(s) {', '.join(map(str, updated.changed))} updated")


@click.command("stop")
@click.argument("campaign_id")
@click.argument("prospect")
@click.option("--reason", help="Why, kept with the prospect and its skipped sends.")
def prospects_stop(campaign_id: str, prospect: str, reason: str | None) -> None:
    """End one PROSPECT's sequence (its address or id): state 'stopped', queued sends 'skipped'."""
    stopped = run_on_database(  # PostgreSQL alone: an in-flight send stops at the check before DATA
        lambda pool: campaign_controls.stop_prospect(pool, campaign_id, prospect, reason))
    echo(f"prospect {stopped.email} ({stopped.prospect_id}) stopped;"
         f" {stopped.skipped} queued send(s) skipped")
    told = asyncio.run(_claim_again(campaign_id))
    if told is not None:
        echo(f"note: {told}; the campaign's steps see the stop when they next claim", err=True)


async def _claim_again(campaign_id: str) -> str | None:
    """The steps claim again now, as OutreachClient.stop_prospect has them do; what kept
    them from being told (Temporal unreachable, the signal refused), else None. The
    stop itself is done: it needs PostgreSQL alone."""
    try:
        client = await OutreachClient.connect(get_settings())
    except ClientError:
        return "Temporal is unreachable"
    try:
        await client.claim_again(campaign_id)
    except ClientError as exc:  # refused by the server (decision 0043): said, not raised
        return str(exc)
    finally:
        await client.close()
    return None


@click.command("retire")
@click.argument("mailbox_id")
@click.option("--reassign", is_flag=True,
              help="Move its prospects not yet sent step 1 to their campaigns' other mailboxes.")
@click.option("--force", is_flag=True, help="Retire even a campaign's last mailbox, skipping the rest.")
def mailboxes_retire(mailbox_id: str, reassign: bool, force: bool) -> None:
    """Retire a mailbox: it sends nothing more; prospects mid-sequence keep their thread
    and end skipped (reason mailbox_retired)."""
    r = _with_client(lambda c: c.retire_mailbox(mailbox_id, reassign=reassign, force=force))
    echo(f"mailbox {mailbox_id} retired: {r.moved} prospect(s) moved to other mailboxes,"
         f" {r.stopped} ended ({r.skipped} open send(s) skipped) in {len(r.campaigns)} campaign(s)")


@click.group()
def sends() -> None:
    """Sends of a campaign."""


@sends.command("retry")
@click.argument("campaign_id")
@click.option("--state", required=True, type=click.Choice(["unknown", "failed"]),
              help="Which sends: unknown (may already have been delivered) or failed.")
@click.option("--step", type=click.IntRange(min=1), help="Only this step's sends.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def sends_retry(campaign_id: str, state: str, step: int | None, yes: bool) -> None:
    """Send again the campaign's unknown or failed sends, after saying how many."""
    count = _with_client(lambda c: c.count_retryable_sends(campaign_id, state, step))
    which = f"{state} send(s) of campaign {campaign_id}" + (f", step {step}" if step else "")
    if not count:
        echo(f"no {which} to retry")
        return
    echo(f"{count} {which} will be sent again.")
    if state == "unknown":
        echo("An unknown send may already have been delivered: its recipient may get it twice.")
    if not yes:
        if not sys.stdin.isatty():
            fail("not retried: confirm at a terminal, or add --yes")
        if not click.confirm("Send them again?", default=False):
            fail("not retried")
    retried = _with_client(lambda c: c.retry_sends(campaign_id, state, step))
    echo(f"{retried.count} send(s) queued again")


def register(
    main: click.Group, campaigns: click.Group, mailboxes: click.Group, prospects: click.Group
) -> None:
    for command in (campaigns_list, campaigns_add_prospects, campaigns_close, campaigns_update):
        campaigns.add_command(command)
    mailboxes.add_command(mailboxes_retire)
    prospects.add_command(prospects_stop)
    main.add_command(sends)

