"""What the CLI prints cannot drive the operator's terminal: text a remote server wrote
(an SMTP reply, a DSN, an IMAP error) shows its control characters as escapes
(config/terminal.py, docs/decisions/0047). Real processes, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import asyncpg

from config.settings import Settings
from store import suppressions
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_cli import OUTREACH, ROOT, outreach

# Retitle the window and ring (OSC ... BEL), clear the screen, a C1 CSI, a forged line
# (U+2028) and a right-to-left override.
HOSTILE = "mailbox gone\x1b]0;pwned\x07\x1b[2J\x9b31m\u2028forged line\u202eliame"
SHOWN = "mailbox gone\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u2028forged line\\u202eliame"
RAW = ("\x1b", "\x07", "\x9b", "\u2028", "\u202e")


def assert_inert(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


async def bounced_prospect(db: asyncpg.Pool) -> tuple[str, int]:
    """A prospect whose send hard-bounced with HOSTILE as the server's text, listed with it
    as the reason, and an inbound message in a folder whose name holds an ESC."""
    await add_mailbox(db, "mb", 2525)
    campaign_id, (prospect,) = await add_campaign(db, ["mb"], ["t1@example.com"], [("Hi", "x", 0)])
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, attempts,"
        " last_code, last_enhanced, last_reply) VALUES ($1, 1, $2, 'mb', '<m@x>', 'hard_bounced', 1,"
        " 550, '5.1.1', $3)", campaign_id, prospect, HOSTILE)
    async with db.acquire() as conn:
        assert await suppressions.record_hard_bounce(conn, campaign_id, prospect, "5.1.1", HOSTILE)
    await db.execute(
        "INSERT INTO inbound_messages (mailbox_id, folder, uidvalidity, uid, class, verdict, campaign_id,"
        " step, prospect_id, matched_by) VALUES ('mb', $1, 1, 1, 'bounce', 'hard', $2, 1, $3, 'thread')",
        "INBOX\x1b[8m", campaign_id, prospect)
    return campaign_id, prospect


async def test_trace_shows_a_remote_reply_escaped_on_its_own_line(
    db: asyncpg.Pool, settings: Settings
) -> None:
    campaign_id, prospect = await bounced_prospect(db)
    offline = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})  # the ledger's view only
    ran = await outreach(offline, "trace", str(prospect))
    assert ran.returncode == 0, ran.stderr
    assert_inert(ran.stdout + ran.stderr)
    assert f"    last reply: 550 {SHOWN}\n" in ran.stdout  # U+2028 forged no line
    assert not any(line.startswith("forged") for line in ran.stdout.splitlines())
    assert f"mailbox mb INBOX\\x1b[8m uid 1  answers {campaign_id}:1:{prospect}" in ran.stdout


async def test_listings_show_stored_remote_text_escaped(db: asyncpg.Pool, settings: Settings) -> None:
    await bounced_prospect(db)
    await db.execute("UPDATE mailboxes SET imap_host = 'imap.example.com', imap_port = 993,"
                     " imap_security = 'tls' WHERE id = 'mb'")
    await db.execute("INSERT INTO inbox_cursors (mailbox_id, folder, error, error_at)"
                     " VALUES ('mb', 'INBOX', $1, now())", "NO [ALERT] " + HOSTILE)

    human = await outreach(settings, "suppress", "list", "--workspace", "ws")
    assert human.returncode == 0, human.stderr
    assert_inert(human.stdout)
    assert human.stdout.rstrip("\n").endswith(SHOWN)

    as_json = await outreach(settings, "suppress", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert_inert(as_json.stdout)
    assert json.loads(as_json.stdout)[0]["reason"] == HOSTILE  # the same value, escaped as JSON

    status = await outreach(settings, "mailboxes", "status")
    assert status.returncode == 0, status.stderr
    assert_inert(status.stdout)
    assert f"inbox: failing (INBOX: NO [ALERT] {SHOWN})" in status.stdout


async def on_a_terminal(settings: Settings, *args: str) -> str:
    """The CLI's output with a pseudo-terminal as stdout and stderr, as an operator sees it."""
    main, attached = os.openpty()
    env = {**os.environ, "OUTREACH_DATABASE_URL": settings.database_url,
           "OUTREACH_TASK_QUEUE": settings.task_queue}
    proc = await asyncio.create_subprocess_exec(
        OUTREACH, *args, env=env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=attached,
        stderr=attached)
    os.close(attached)

    def read_all() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        out = await asyncio.wait_for(asyncio.to_thread(read_all), 60)
        assert await proc.wait() == 0, out
    finally:
        os.close(main)
    return out.decode().replace("\r\n", "\n")  # the terminal's own line ends


async def test_export_to_a_terminal_is_escaped_and_to_a_file_is_exact(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    await bounced_prospect(db)
    shown = await on_a_terminal(settings, "suppress", "export", "--workspace", "ws")
    assert_inert(shown)
    assert SHOWN in shown
    piped = await outreach(settings, "suppress", "export", "--workspace", "ws")
    assert HOSTILE in piped.stdout  # a file or a pipe gets the value as stored, to import back
