"""``outreach mailboxes check-dns [ID]``: the SPF, DKIM and DMARC records of each
mailbox's sending domain (mail/sender_dns.py). Exit status 1 when a record is missing
or unusable, so a deployment script can stop on it."""

from __future__ import annotations

import json
import sys

import click

from client.db_command import fail, run_on_database
from config.settings import get_settings
from mail.sender_dns import TxtLookup
from store.sender_dns import check_senders


def lookup_from_settings() -> TxtLookup:
    try:
        return TxtLookup(get_settings().dns_resolver)
    except ValueError as exc:
        fail(str(exc))


@click.command("check-dns")
@click.argument("mailbox_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per mailbox.")
def check_dns(mailbox_id: str | None, as_json: bool) -> None:
    """Look up the SPF, DKIM (the mailbox's dkim_selector) and DMARC records of each
    mailbox's domain (or MAILBOX_ID's) and say what is missing or weak."""
    lookup = lookup_from_settings()
    reports = run_on_database(lambda pool: check_senders(pool, lookup, mailbox_id))
    if as_json:
        click.echo(json.dumps([r.as_json() for r in reports], indent=2))
    else:
        for report in reports:
            click.echo(f"{report.mailbox_id}  {report.domain}")
            for f in report.findings:
                click.echo(f"  {f.record.upper():<6} {f.level:<8} {f.detail}"
                           + (f"\n{'':<18}{f.name}: {f.value}" if f.value else
                              f"\n{'':<18}{f.name}" if f.name else ""))
        if not reports:
            click.echo("no mailboxes", err=True)
    sys.exit(1 if any(r.errors for r in reports) else 0)
