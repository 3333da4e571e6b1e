"""IMAP settings in the mailboxes file: defaults, refusals, the password sealed at
rest, and `mailboxes status` saying whether replies are read (issue 14)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from client.cli import inbox_state
from specs import SpecError
from specs.loading import load_campaign_file, load_mailboxes_file
from store.accounts import list_mailboxes
from store.importer import create_campaign, import_mailboxes
from store.inbox_settings import imap_account, imap_mailboxes
from tests.factories import settings_ring

MAILBOXES = """\
mailboxes:
  - id: reads
    email: ann@sender.example.com
    smtp_host: smtp.sender.example.com
    username: ann
    password: smtp-secret
    imap_host: imap.sender.example.com
  - id: own-login
    email: bob@sender.example.com
    smtp_host: smtp.sender.example.com
    password: smtp-secret
    imap_host: 127.0.0.1
    imap_security: none
    imap_username: bob-imap
    imap_password: imap-secret
    imap_folders: [INBOX, Junk]
  - id: deaf
    email: cid@sender.example.com
    smtp_host: smtp.sender.example.com
    password: smtp-secret
"""


async def test_imap_settings_import_with_defaults_and_sealed_password(
    db: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(MAILBOXES, "utf-8")
    await import_mailboxes(db, load_mailboxes_file(path))
    ring = settings_ring()

    assert await imap_mailboxes(db) == ["own-login", "reads"]
    reads = await imap_account(db, "reads", ring=ring)
    assert (reads.port, reads.security, reads.username, reads.password, reads.folders) == (
        993, "tls", "ann", "smtp-secret", ("INBOX",))  # SMTP credentials by default
    own = await imap_account(db, "own-login", ring=ring)
    assert (own.port, own.username, own.password, own.folders) == (
        143, "bob-imap", "imap-secret", ("INBOX", "Junk"))
    stored = await db.fetchval("SELECT imap_password FROM mailboxes WHERE id = 'own-login'")
    assert stored.startswith("enc:v1:") and "imap-secret" not in stored

    rows = {r["id"]: r for r in await list_mailboxes(db)}
    assert "not read" in inbox_state(rows["deaf"])
    assert inbox_state(rows["reads"]) == "inbox: not read yet"


async def test_clear_imap_password_is_refused_by_the_database(db: asyncpg.Pool, tmp_path: Path) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(MAILBOXES, "utf-8")
    await import_mailboxes(db, load_mailboxes_file(path))
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE mailboxes SET imap_password = 'plain' WHERE id = 'reads'")


@pytest.mark.parametrize(("extra", "message"), [
    ("    imap_port: 993\n", "imap_port given without imap_host"),
    ("    imap_host: imap.example.com\n    imap_security: none\n", "only for a loopback host"),
    ("    imap_host: h.example.com\n    imap_password: a\n    imap_password_env: B\n", "not both"),
    ("    imap_host: h.example.com\n    imap_folders: []\n", "imap_folders"),
])
def test_bad_imap_settings_are_refused_with_the_reason(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(
        "mailboxes:\n  - id: a\n    email: a@sender.example.com\n"
        "    smtp_host: smtp.sender.example.com\n" + extra, "utf-8")
    with pytest.raises(SpecError) as err:
        load_mailboxes_file(path)
    assert message in str(err.value) and "mailboxes.yaml" in str(err.value)


@pytest.mark.parametrize(("value", "stored"), [
    ("", "campaign"), ("stop_on_reply: true\n", "campaign"), ("stop_on_reply: false\n", "none"),
    ("stop_on_reply: workspace\nstop_on_auto_reply: true\n", "workspace"),
])
async def test_campaign_reply_options_are_stored(
    db: asyncpg.Pool, tmp_path: Path, value: str, stored: str
) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(MAILBOXES, "utf-8")
    await import_mailboxes(db, load_mailboxes_file(path))
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(
        "name: c\nworkspace: ws\nmailboxes: [reads]\nsteps:\n  - subject: Hi\n    body: Hello\n"
        "prospects:\n  - {email: p@example.com}\n" + value, "utf-8")
    created = await create_campaign(db, load_campaign_file(campaign))
    row = await db.fetchrow(
        "SELECT stop_on_reply, stop_on_auto_reply FROM campaigns WHERE id = $1", created.id)
    assert (row["stop_on_reply"], row["stop_on_auto_reply"]) == (stored, "stop_on_auto_reply: true" in value)


def test_unknown_stop_on_reply_is_refused_naming_the_field(tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(
        "name: c\nworkspace: ws\nmailboxes: [reads]\nsteps:\n  - subject: Hi\n    body: Hello\n"
        "prospects:\n  - {email: p@example.com}\nstop_on_reply: sometimes\n", "utf-8")
    with pytest.raises(SpecError) as err:
        load_campaign_file(campaign)
    assert "stop_on_reply" in str(err.value) and "campaign.yaml" in str(err.value)


async def test_oauth_mailbox_without_imap_password_uses_xoauth2(db: asyncpg.Pool, tmp_path: Path) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(
        "mailboxes:\n  - id: gw\n    email: ann@sender.example.com\n    smtp_host: smtp.gmail.com\n"
        "    username: ann@sender.example.com\n    imap_host: imap.gmail.com\n"
        "    oauth: {provider: google, client_id: cid, refresh_token: rt}\n", "utf-8")
    await import_mailboxes(db, load_mailboxes_file(path))
    account = await imap_account(db, "gw", ring=settings_ring())
    assert (account.oauth, account.password, account.username, account.port) == (
        True, "", "ann@sender.example.com", 993)
