"""The demo: the example mailboxes and 3-step campaign, sent through the local inbox,
with progress while it runs and a summary at the end."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import click

from client.api import OutreachClient
from localsmtp.server import LocalSmtpServer
from specs.loading import load_campaign_file, load_mailboxes_file
from store.importer import create_campaign, import_mailboxes

_EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def run_example_campaign(client: OutreachClient, inbox: LocalSmtpServer, smtp_port: int) -> None:
    mailboxes = [
        spec.model_copy(update={"smtp_port": smtp_port})
        for spec in load_mailboxes_file(_EXAMPLES / "mailboxes.yaml")
    ]
    await import_mailboxes(client.pool, mailboxes)
    created = await create_campaign(client.pool, load_campaign_file(_EXAMPLES / "campaign.yaml"))
    click.echo(f"campaign {created.id}: {created.prospects} prospects, starting")
    started = time.monotonic()
    await client.start_campaign(created.id)
    status = await _follow(client, created.id)
    elapsed = time.monotonic() - started
    _summary(status, inbox, elapsed)


async def _follow(client: OutreachClient, campaign_id: str) -> dict[str, object]:
    last = ""
    while True:
        status = await client.campaign_status(campaign_id)
        line = " | ".join(
            f"step {s['step']}: {s['sent']} sent"
            + (f", {s['queued'] + s['sending'] + s['soft_bounced']} open"
               if s["queued"] + s["sending"] + s["soft_bounced"] else "")
            for s in status["steps"]
        )
        if line != last:
            click.echo(f"  [{status['state']}] {line}")
            last = line
        if status["state"] in ("completed", "cancelled"):
            return status
        await asyncio.sleep(1.0)


def _summary(status: dict[str, object], inbox: LocalSmtpServer, elapsed: float) -> None:
    by_step = Counter(len(m.references) + 1 for m in inbox.messages)
    threaded = sum(1 for m in inbox.messages if m.references and m.in_reply_to == m.references[-1])
    click.echo("")
    click.echo(f"campaign {status['id']} {status['state']} in {elapsed:.0f}s")
    for step, n in sorted(by_step.items()):
        click.echo(f"  step {step}: {n} message(s) in the inbox")
    click.echo(f"  follow-ups threaded (In-Reply-To/References): {threaded}")
    one_click = sum(1 for m in inbox.messages if message_from_bytes(m.raw)["List-Unsubscribe-Post"])
    click.echo(f"  with one-click List-Unsubscribe: {one_click}")
    click.echo(f"  total messages received: {len(inbox.messages)}")
