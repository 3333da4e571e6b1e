"""``outreach prospects``: what is done to one person across campaigns. Needs only
PostgreSQL (and the secret keys, for the erasure entry's hash)."""

from __future__ import annotations

import click

from client.db_command import fail, run_on_database
from client.output import echo, echo_json
from config.secrets import SecretKeyError, key_ring
from config.settings import get_settings
from store import erasure


@click.group()
def prospects() -> None:
    """Prospects: end one's sequence in a campaign, or erase a person everywhere."""


@prospects.command("forget")
@click.argument("email")
@click.option("--workspace", metavar="W", help="Only this workspace (default: every workspace).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def prospects_forget(email: str, workspace: str | None, as_json: bool) -> None:
    """Erase EMAIL's data everywhere (GDPR erasure): prospect rows, reply texts, list
    entries. Only a keyed hash of the address stays, on the do-not-contact list, so the
    address is never written to, nor stored, again."""
    try:
        ring = key_ring(get_settings().secret_keys)
    except SecretKeyError as exc:
        fail(str(exc))
    done = run_on_database(lambda pool: erasure.forget(pool, ring, email, workspace))
    if as_json:
        echo_json(done.as_json())
        return
    echo(f"erased in {done.scope}: {done.prospects} prospect row(s), {done.sends_ended} open"
         f" send(s) ended, {done.texts_cleared} text(s) cleared, {done.entries_removed} list"
         f" entr{'y' if done.entries_removed == 1 else 'ies'} replaced by {done.hash_entry}")
