"""The check right before DATA (store/ledger.mark_data_started) is the last moment a
"stop" can still win: a suppression entry, a domain entry or a cancelled campaign
committed while a send is mid-transaction (held by the SMTP server at RCPT) stops it
before DATA, and the send ends `skipped`, never sent.
"""

from __future__ import annotations

import asyncpg
import pytest

from client.api import OutreachClient
from localsmtp.server import LocalSmtpServer
from store import ledger, suppressions
from tests.factories import add_campaign, add_mailbox, send_row
from tests.integration.test_campaign_controls import until
from tests.integration.test_campaign_e2e import wait_for_state


async def _held_mid_transaction(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, email: str,
) -> tuple[str, int]:
    await add_mailbox(db, "mb", inbox.port)
    campaign_id, [prospect] = await add_campaign(db, ["mb"], [email], [("Hi", "Body", 0)])
    inbox.hold("rcpt")  # the gate said go, MAIL FROM was accepted: RCPT TO waits
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: inbox.held.get("rcpt") == 1, timeout=60)
    return campaign_id, prospect


async def _attempt_outcome(db: asyncpg.Pool, campaign_id: str) -> str:
    async def recorded() -> bool:
        return await db.fetchval("SELECT count(*) FROM send_attempts WHERE campaign_id = $1"
                                 " AND finished_at IS NOT NULL", campaign_id) == 1

    await until(recorded, "the attempt recorded")
    outcome: str = await db.fetchval("SELECT outcome FROM send_attempts WHERE campaign_id = $1", campaign_id)
    return outcome


@pytest.mark.parametrize("entry", ["Late@Example.com", "@example.com"])
async def test_an_address_suppressed_mid_transaction_is_stopped_before_data(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient, entry: str,
) -> None:
    campaign_id, prospect = await _held_mid_transaction(db, inbox, client, "late@example.com")
    await suppressions.add(db, suppressions.Scope.workspace("ws"), entry, reason="asked by phone")
    inbox.release("rcpt")

    assert await _attempt_outcome(db, campaign_id) == "stopped"
    row = await send_row(db, campaign_id, 1, prospect)
    assert (row["state"], row["last_reply"], row["data_started_at"]) == ("skipped", "suppressed", None)
    await wait_for_state(client, campaign_id, "completed", timeout=60)
    assert "DATA" not in inbox.commands and inbox.messages == []
    status = await db.fetchval("SELECT status FROM prospects WHERE id = $1", prospect)
    assert status == "suppressed"


async def test_a_send_of_a_campaign_cancelled_mid_transaction_is_not_sent(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    campaign_id, prospect = await _held_mid_transaction(db, inbox, client, "c@example.com")
    assert await client.cancel_campaign(campaign_id) == "cancelled"
    inbox.release("rcpt")

    assert await _attempt_outcome(db, campaign_id) == "stopped"
    row = await send_row(db, campaign_id, 1, prospect)
    assert (row["state"], row["data_started_at"]) == ("skipped", None)
    assert "DATA" not in inbox.commands and inbox.messages == []


class _ResumedBetweenStatements:
    """The pool, where the campaign is resumed right after the check's first statement
    (which found it paused) and before the second asks why: an operator's quick pause
    and resume."""

    def __init__(self, pool: asyncpg.Pool, campaign_id: str) -> None:
        self._pool, self._campaign_id, self.checks = pool, campaign_id, 0

    async def fetchval(self, *args: object) -> object:
        found = await self._pool.fetchval(*args)
        self.checks += 1
        if self.checks == 1:
            await self._pool.execute("UPDATE campaigns SET paused = false WHERE id = $1", self._campaign_id)
        return found

    async def fetchrow(self, *args: object) -> object:
        return await self._pool.fetchrow(*args)


async def test_a_pause_lifted_between_the_checks_statements_is_asked_again_not_taken_for_a_stop(
    db: asyncpg.Pool, inbox: LocalSmtpServer,
) -> None:
    """Found by a test of quick pauses and resumes: the second statement saw no reason to
    stop and said "prospect stopped", and the send was skipped for good."""
    await add_mailbox(db, "mb", inbox.port)
    campaign_id, [prospect] = await add_campaign(db, ["mb"], ["quick@example.com"], [("Hi", "Body", 0)])
    await db.execute("INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state)"
                     " VALUES ($1, 1, $2, 'mb', '<quick@sender.example.com>', 'sending')",
                     campaign_id, prospect)
    await db.execute("UPDATE campaigns SET paused = true WHERE id = $1", campaign_id)
    pool = _ResumedBetweenStatements(db, campaign_id)

    found = await ledger.mark_data_started(pool, campaign_id, 1, prospect)  # type: ignore[arg-type]

    assert found is ledger.DataStart.GO
    assert pool.checks == 2
