"""An out-of-office postponement in the recipient's time (issues 23 and 25, decisions
0051 and 0053) on the real PostgreSQL: the return date read in the prospect's zone,
the buffer counted on the recipient's working days (the schedule's days and holidays),
and the postponed step then claimed only inside the recipient's window, through the
claim's own path; a campaign without a schedule postpones as before, in the
prospect's zone when it has one."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import yaml

from inbox.intent import judge
from specs.campaign_update import load_campaign_update
from specs.campaigns import CampaignSpec, resolve_campaign
from store import inbound
from store.campaign_update import update_steps
from store.importer import create_campaign
from store.inbound import Acted, Inbound, Match
from store.open_work import reschedule_step
from tests.factories import add_mailbox
from tests.integration.test_open_work import claim, open_step, send

WINDOW = {"timezone": "recipient", "days": ["mon", "tue", "wed", "thu", "fri"],
          "from": "09:00", "to": "17:00"}
KOLKATA = ZoneInfo("Asia/Kolkata")
BERLIN = ZoneInfo("Europe/Berlin")


def spec(people: list[dict[str, Any]], schedule: dict[str, Any] | None) -> dict[str, Any]:
    found = {"name": "Away", "workspace": "ws", "mailboxes": ["mb"],
             "steps": [{"subject": "Hi", "body": "x"}, {"delay": "1d", "body": "y"}], "prospects": people}
    return {**found, "schedule": schedule} if schedule else found


async def created(db: asyncpg.Pool, people: list[dict[str, Any]],
                  schedule: dict[str, Any] | None) -> tuple[str, list[int]]:
    """A campaign imported as the CLI does (the mailbox in UTC, open all week), on_reply
    at its defaults: postpone, 1 business day."""
    await add_mailbox(db, "mb", 2525)
    made = await create_campaign(db, resolve_campaign(CampaignSpec.model_validate(spec(people, schedule))))
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", made.id)
    ids = [r["id"] for r in await db.fetch("SELECT id FROM prospects WHERE campaign_id = $1 ORDER BY id",
                                           made.id)]
    return made.id, ids


async def step_1_sent(db: asyncpg.Pool, campaign_id: str, prospect: int, at: datetime) -> None:
    """Step 1 went to ``prospect`` at ``at``: step 2 waits, due a day later."""
    await db.execute("UPDATE prospects SET next_due_at = '-infinity' WHERE id = $1", prospect)
    assert prospect in [c.prospect_id for c in (await claim(db, campaign_id, as_of=at)).sends]
    await send(db, campaign_id, 1, prospect)
    await db.execute("UPDATE sends SET sent_at = $3 WHERE campaign_id = $1 AND step = 1 AND prospect_id = $2",
                     campaign_id, prospect, at)
    await reschedule_step(db, campaign_id, 2)
    assert await open_step(db, prospect) == (2, at + timedelta(days=1))


async def out_of_office(db: asyncpg.Pool, campaign_id: str, prospect: int, back: date | None,
                        at: datetime) -> Acted:
    """An automatic out-of-office reply to step 1, recorded and acted on as the poll does."""
    email = await db.fetchval("SELECT email FROM prospects WHERE id = $1", prospect)
    async with db.acquire() as conn, conn.transaction():
        found = Inbound("mb", "INBOX", 1, secrets.randbelow(10**9), None, "auto_reply", None,
                        Match(campaign_id, 1, prospect, email, "thread"), "", at, intent="out_of_office",
                        intent_confidence=0.9, return_date=back)
        row_id = await inbound.record(conn, found)
        assert row_id is not None
        return await inbound.act_on(conn, row_id, found, as_of=at)


async def claimed(db: asyncpg.Pool, campaign_id: str, at: datetime) -> list[int]:
    """Step 2's claim at ``at``; what it claims is sent (the sequence ends there)."""
    found = [c.prospect_id for c in (await claim(db, campaign_id, step=2, as_of=at)).sends]
    for prospect in found:
        await send(db, campaign_id, 2, prospect)
    return found


async def test_back_on_monday_14th_is_read_in_kolkata_and_the_step_waits_for_the_window(
    db: asyncpg.Pool,
) -> None:
    campaign_id, (asha,) = await created(db, [{"email": "asha@example.in", "timezone": "Asia/Kolkata"}],
                                         WINDOW)
    wednesday = datetime(2027, 6, 9, 5, 0, tzinfo=UTC)  # 10:30 in Kolkata
    await step_1_sent(db, campaign_id, asha, wednesday)
    received = wednesday + timedelta(minutes=5)
    back = judge("Thank you for your email. I am out of the office and back on Monday 14th.",
                 automatic=True, received_at=received).return_date
    assert back == date(2027, 6, 14)

    acted = await out_of_office(db, campaign_id, asha, back, received)
    # Monday 14th + 1 business day: Tuesday 15th at midnight in Kolkata, not in the
    # mailbox's UTC (that would be 5.5 hours later).
    tuesday = datetime(2027, 6, 15, 0, 0, tzinfo=KOLKATA)
    assert acted.postponed_to == tuesday == datetime(2027, 6, 14, 18, 30, tzinfo=UTC)
    move = await db.fetchrow("SELECT step, due_before, due_after, reason FROM postponements"
                             " WHERE prospect_id = $1", asha)
    assert (move["step"], move["due_before"], move["due_after"]) == (
        2, wednesday + timedelta(days=1), tuesday)
    assert move["reason"] == "return date 2027-06-14 (Asia/Kolkata) + 1 business day(s)"

    # Nothing before the return, and at midnight the window is still closed: the claim
    # moves the prospect to its next opening, 09:00 in Kolkata, and the step sleeps on it.
    assert await claimed(db, campaign_id, datetime(2027, 6, 14, 3, 30, tzinfo=UTC)) == []
    assert await claimed(db, campaign_id, tuesday) == []
    opens = datetime(2027, 6, 15, 9, 0, tzinfo=KOLKATA)
    assert await open_step(db, asha) == (2, opens)
    assert (await claim(db, campaign_id, step=2, as_of=tuesday + timedelta(minutes=1))).next_due_at == opens
    assert await claimed(db, campaign_id, opens - timedelta(seconds=1)) == []
    assert await claimed(db, campaign_id, opens) == [asha]


async def test_the_buffer_skips_the_german_recipients_easter_holidays(db: asyncpg.Pool) -> None:
    campaign_id, (jonas, ines) = await created(
        db, [{"email": "jonas@example.de", "country": "DE"}, {"email": "ines@example.fr", "country": "FR"}],
        {**WINDOW, "holidays": "recipient"})
    assert [await db.fetchval("SELECT timezone FROM prospects WHERE id = $1", p) for p in (jonas, ines)] == [
        "Europe/Berlin", "Europe/Paris"]
    monday = datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    for p in (jonas, ines):
        await step_1_sent(db, campaign_id, p, monday)
    back = date(2027, 3, 25)  # Maundy Thursday: Good Friday, then Easter Monday
    jonas_to = (await out_of_office(db, campaign_id, jonas, back, monday + timedelta(hours=1))).postponed_to
    ines_to = (await out_of_office(db, campaign_id, ines, back, monday + timedelta(hours=1))).postponed_to
    # Germany keeps Good Friday and Easter Monday: the next working day is Tuesday 30
    # March. France keeps only Easter Monday (outside Alsace-Moselle): Friday the 26th.
    assert jonas_to == datetime(2027, 3, 30, 0, 0, tzinfo=BERLIN)
    assert ines_to == datetime(2027, 3, 26, 0, 0, tzinfo=ZoneInfo("Europe/Paris"))
    # Each goes out in its own window once due: Ines on Friday at 09:00 Paris, Jonas
    # on Tuesday at 09:00 Berlin (summer time since the 28th), not on Easter Monday.
    assert await claimed(db, campaign_id, ines_to) == []
    assert await open_step(db, ines) == (2, datetime(2027, 3, 26, 8, 0, tzinfo=UTC))
    assert await claimed(db, campaign_id, datetime(2027, 3, 26, 8, 0, tzinfo=UTC)) == [ines]
    assert await claimed(db, campaign_id, datetime(2027, 3, 29, 10, 0, tzinfo=UTC)) == []
    assert await claimed(db, campaign_id, jonas_to) == []
    assert await open_step(db, jonas) == (2, datetime(2027, 3, 30, 7, 0, tzinfo=UTC))
    assert await claimed(db, campaign_id, datetime(2027, 3, 30, 7, 0, tzinfo=UTC)) == [jonas]


async def test_without_a_schedule_postponement_is_as_before_save_the_prospects_zone(
    db: asyncpg.Pool,
) -> None:
    campaign_id, (kai, asha, lena) = await created(
        db, [{"email": "kai@example.de", "country": "DE"},
             {"email": "asha@example.in", "timezone": "Asia/Kolkata"},
             {"email": "lena@example.com", "timezone": "America/New_York"}], None)
    await db.execute("UPDATE prospects SET timezone = NULL WHERE id = $1", kai)  # no zone: the mailbox's
    monday = datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    for p in (kai, asha, lena):
        await step_1_sent(db, campaign_id, p, monday)
    back = date(2027, 3, 25)
    kai_to = (await out_of_office(db, campaign_id, kai, back, monday)).postponed_to
    asha_to = (await out_of_office(db, campaign_id, asha, back, monday)).postponed_to
    # Monday to Friday, no holidays (Good Friday counts): Friday the 26th at midnight,
    # in the mailbox's UTC for Kai, in Kolkata for Asha.
    assert kai_to == datetime(2027, 3, 26, 0, 0, tzinfo=UTC)
    assert asha_to == datetime(2027, 3, 26, 0, 0, tzinfo=KOLKATA)
    # No date: now plus postpone_default (7 days), whatever the zone.
    lena_to = (await out_of_office(db, campaign_id, lena, None, monday)).postponed_to
    assert lena_to == monday + timedelta(days=7)
    # No window to wait for: each is claimed the moment it is due, not before.
    assert await claimed(db, campaign_id, asha_to - timedelta(seconds=1)) == []
    assert await claimed(db, campaign_id, asha_to) == [asha]
    assert await claimed(db, campaign_id, kai_to) == [kai]
    assert await claimed(db, campaign_id, monday + timedelta(days=7)) == [lena]


async def test_a_prospect_whose_windows_never_meet_stays_so(db: asyncpg.Pool) -> None:
    campaign_id, (asha,) = await created(db, [{"email": "asha@example.in", "timezone": "Asia/Kolkata"}],
                                         WINDOW)
    monday = datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    await step_1_sent(db, campaign_id, asha, monday)
    await db.execute("UPDATE prospects SET next_due_at = 'infinity' WHERE id = $1", asha)
    acted = await out_of_office(db, campaign_id, asha, date(2027, 3, 25), monday)
    assert acted.action == "postpone"
    assert await db.fetchval("SELECT next_due_at = 'infinity' FROM prospects WHERE id = $1", asha)


async def test_a_new_schedule_does_not_undo_a_postponement(db: asyncpg.Pool, tmp_path: Path) -> None:
    campaign_id, (asha,) = await created(db, [{"email": "asha@example.in", "timezone": "Asia/Kolkata"}],
                                         WINDOW)
    monday = datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    await step_1_sent(db, campaign_id, asha, monday)
    until = (await out_of_office(db, campaign_id, asha, date(2027, 3, 25), monday)).postponed_to
    assert until == datetime(2027, 3, 26, 0, 0, tzinfo=KOLKATA)
    # The window widened: every waiting prospect is planned anew, from its plain due
    # time (a day after step 1) or, postponed, from its postponement.
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in spec([], {**WINDOW, "to": "20:00"}).items()
                                    if k != "prospects"}))
    assert (await update_steps(db, campaign_id, load_campaign_update(path))).schedule_changed
    assert await open_step(db, asha) == (2, until)
    assert await claimed(db, campaign_id, monday + timedelta(days=1)) == []
    assert await claimed(db, campaign_id, datetime(2027, 3, 26, 9, 0, tzinfo=KOLKATA)) == [asha]


STEP_2_DELAY = "UPDATE steps SET delay_seconds = $2 WHERE campaign_id = $1 AND step = 2"


async def test_a_new_step_delay_does_not_undo_a_postponement(db: asyncpg.Pool) -> None:
    campaign_id, (asha, ravi) = await created(
        db, [{"email": "asha@example.in", "timezone": "Asia/Kolkata"},
             {"email": "ravi@example.in", "timezone": "Asia/Kolkata"}], None)
    monday = datetime(2027, 3, 22, 9, 0, tzinfo=UTC)
    for p in (asha, ravi):
        await step_1_sent(db, campaign_id, p, monday)
    until = (await out_of_office(db, campaign_id, asha, date(2027, 3, 25), monday)).postponed_to
    # Step 2's delay becomes 2 days (the trigger re-plans whoever waits for it) and then
    # 10: Ravi follows each new delay, Asha keeps her postponement until it is passed.
    await db.execute(STEP_2_DELAY, campaign_id, 172800)
    assert [await open_step(db, p) for p in (asha, ravi)] == [(2, until), (2, monday + timedelta(days=2))]
    await db.execute(STEP_2_DELAY, campaign_id, 864000)
    assert [await open_step(db, p) for p in (asha, ravi)] == [(2, monday + timedelta(days=10))] * 2
    # The same through the function the scheduler's tests call.
    await db.execute(STEP_2_DELAY, campaign_id, 3600)
    assert await reschedule_step(db, campaign_id, 2) == 2
    assert [await open_step(db, p) for p in (asha, ravi)] == [(2, until), (2, monday + timedelta(hours=1))]
