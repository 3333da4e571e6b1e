"""``outreach keys``: the secret keys that encrypt stored credentials (docs/decisions/0015).

Rotation: ``keys generate`` -> prepend the entry to OUTREACH_SECRET_KEYS ->
restart the workers -> ``keys rotate`` -> drop the old entry.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from client.db_command import fail, run_on_database
from client.output import echo
from config.secrets import KeyRing, SecretKeyError, generate_entry, key_ring
from config.settings import get_settings
from store import accounts


def _ring() -> KeyRing:
    try:
        return key_ring(get_settings().secret_keys)
    except SecretKeyError as exc:
        fail(str(exc))


@click.group()
def keys() -> None:
    """Secret keys for credentials at rest: generate, rotate, status."""


@keys.command("generate")
@click.option("--id", "key_id", default=None, help="The key's id (default: k<UTC date and time>).")
def keys_generate(key_id: str | None) -> None:
    """Print a new OUTREACH_SECRET_KEYS entry (id:base64key) on stdout."""
    try:
        entry = generate_entry(key_id or f"k{datetime.now(UTC):%Y%m%d%H%M%S}")
    except SecretKeyError as exc:
        fail(str(exc))
    echo(entry)
    echo(
        "prepend it to OUTREACH_SECRET_KEYS (newest first, comma-separated), restart the"
        " workers, then run `outreach keys rotate`", err=True,
    )


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1),
              help="Mailboxes per transaction.")
def keys_rotate(batch_size: int) -> None:
    """Re-encrypt every stored credential under the newest key (safe to run again)."""
    ring = _ring()
    done = run_on_database(lambda pool: accounts.rotate_credentials(pool, ring, batch_size))
    echo(
        f"{done.resealed + done.sealed_clear} value(s) re-encrypted under key {done.key_id}"
        f" ({done.resealed} from an older key, {done.sealed_clear} stored in the clear);"
        f" {done.current} already under it"
    )


@keys.command("status")
def keys_status() -> None:
    """How many stored credentials each key holds."""
    ring = _ring()
    counts = run_on_database(accounts.credential_key_ids)
    if not counts:
        echo("no credentials stored")
    for key_id, n in counts.items():
        if key_id is None:
            note = "in the clear: run `outreach keys rotate`"
        elif key_id == ring.current_id:
            note = f"key {key_id} (newest)"
        elif key_id in ring.ids:
            note = f"key {key_id}: run `outreach keys rotate` before removing it"
        else:
            note = f"key {key_id}: NOT in OUTREACH_SECRET_KEYS, these cannot be read"
        echo(f"{n:>8}  {note}")
