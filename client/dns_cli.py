"""``outreach mailboxes check-dns [ID]``: the SPF, DKIM and DMARC records of each
mailbox's sending domain (mail/sender_dns.py). Exit status 1 when a record is missing
or unusable, so a deployment script can stop on it."""

from __future__ import annotations

import sys

import click

from client.db_command import fail, run_on_database
from client.output import echo, echo_json
from config.settings import get_settings
from config.terminal import printable
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
        echo_json([r.as_json() for r in reports])
    else:
        for report in reports:
            echo(f"{report.mailbox_id}  {report.domain}")
            for f in report.findings:
                # A record's text is the domain owner's: it stays on its own line.
                echo(f"  {f.record.upper():<6} {f.level:<8} {f.detail}"
                     + (f"\n{'':<18}{f.name}: {printable(f.value)}" if f.value else
                        f"\n{'':<18}{f.name}" if f.name else ""))
        if not reports:
            echo("no mailboxes", err=True)
    sys.exit(1 if any(r.errors for r in reports) else 0)
