"""Every SMTP transaction has its own place in the limits (decision 0042): a retry, after
a hung host's timeout or a soft bounce, goes only into a provider slot and a mailbox
spacing of its own, never on top of a full minute.

The SMTP server is the judge. The scale is shortened as in the other limit tests: the
engine's provider window is 12 s where production's is 62 s, and the server counts
every sliding 10 s (a provider's minute, with the same 2 s of slack as 62 against 60);
the first retry comes after 0.5-1 s instead of 5 min.
"""

from __future__ import annotations

import asyncpg
import pytest

from client.api import OutreachClient
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_limits_precision import most_in_any_window

PER_WINDOW, ENGINE_WINDOW, PROVIDER_WINDOW = 5, 12.0, 10.0


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    return e2e_settings.model_copy(update={
        "limit_gmail_per_minute": PER_WINDOW, "limit_provider_window_seconds": ENGINE_WINDOW,
        "send_start_to_close_seconds": 3.0, "send_first_retry_seconds": 0.5,
        "smtp_socket_timeout": 30.0, "step_window": 50, "mailbox_spacing": 1.0,
    })


def received(inbox: LocalSmtpServer) -> list[float]:
    return sorted(m.received_at.timestamp() for m in inbox.messages)


async def attempts(db: asyncpg.Pool, campaign_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT a.prospect_id, a.attempt, a.outcome, a.place_at, a.started_at FROM send_attempts a"
        " WHERE a.campaign_id = $1 ORDER BY a.started_at", campaign_id)


@pytest.mark.timeout(300)
async def test_a_retry_after_a_hung_attempt_takes_its_own_place_in_a_full_provider_minute(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, worker: None,
) -> None:
    # Spacing 24 h / 100,000 x 0.5-1.5 (0.4-1.3 s): the provider's pacing binds.
    await add_mailbox(db, "mb-h", inbox.port, provider="gmail", daily_limit=100_000)
    emails = [f"h{i}@example.com" for i in range(15)]
    campaign_id, _ = await add_campaign(db, ["mb-h"], emails, [("Hi", "Hello", 0)])
    # The fourth send's first attempt hangs at RCPT past the activity's 3 s timeout, in
    # the middle of a stream paced at the provider's limit (one every 12 s / 5 = 2.4 s).
    inbox.hang_recipient("h3@example.com", seconds=8.0)

    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=240)

    times = received(inbox)
    assert len(times) == len(emails) and len(inbox.messages_to("h3@example.com")) == 1
    busiest = most_in_any_window(times, PROVIDER_WINDOW)
    assert busiest <= PER_WINDOW, f"{busiest} messages in one provider window of {PROVIDER_WINDOW} s"
    rows = await attempts(db, campaign_id)
    retried = [r for r in rows if r["attempt"] > 1]
    assert retried, "the hung attempt was retried"
    assert all(r["place_at"] is not None for r in rows), "every attempt recorded its place"


@pytest.mark.timeout(300)
async def test_soft_bounce_retries_keep_the_provider_minute_and_the_mailbox_spacing(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, worker: None,
) -> None:
    """Four recipients soft-bounce twice each; every retry lands in a provider slot and a
    spacing gap of its own, at the server, and no earlier than its retry time."""
    await add_mailbox(db, "mb-s", inbox.port, provider="gmail", daily_limit=40_000)
    emails = [f"s{i}@example.com" for i in range(16)]
    campaign_id, prospects = await add_campaign(db, ["mb-s"], emails, [("Hi", "Hello", 0)])
    bouncing = {prospects[i] for i in (1, 4, 7, 10)}
    for i in (1, 4, 7, 10):
        inbox.script(emails[i], replies=[(451, "4.2.1 Mailbox busy, try later")] * 2)

    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=240)

    times = received(inbox)
    assert len(times) == len(emails)
    assert most_in_any_window(times, PROVIDER_WINDOW) <= PER_WINDOW
    # The mailbox's gap: its day (24 h) over its cap, times 0.5 to 1.5; a send leaves a
    # moment after its place at most, so allow a little less.
    least_gap = 86_400 / 40_000 * 0.5 - 0.3
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= least_gap, f"messages {min(gaps):.2f} s apart, spacing at least {least_gap:.2f} s"
    by_prospect: dict[int, list[asyncpg.Record]] = {}
    for r in await attempts(db, campaign_id):
        by_prospect.setdefault(r["prospect_id"], []).append(r)
    assert {p for p, rs in by_prospect.items() if len(rs) > 1} == bouncing
    for prospect in bouncing:
        first, second, third = by_prospect[prospect]
        assert [first["outcome"], second["outcome"], third["outcome"]] == [
            "soft_bounce", "soft_bounce", "sent"]
        # No earlier than the schedule: 0.5 s after the first, 0.5 x 6 = 3 s after the second.
        assert (second["started_at"] - first["started_at"]).total_seconds() >= 0.5
        assert (third["started_at"] - second["started_at"]).total_seconds() >= 3.0
        assert all(r["place_at"] is not None for r in (first, second, third))
