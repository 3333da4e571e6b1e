"""Variants added to and retired from a campaign (issue 24, part 5), and an operator's
pick and reset, against the real PostgreSQL: what the claim gives new sends, and what
stays of the sends already made."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from activities.models import SendKey
from activities.smtp import _templates
from mail.message import message_id_for
from specs import SpecError
from specs.campaign_update import load_campaign_update
from specs.loading import load_campaign_file
from store import StoreError, ledger, open_work, variants
from store.campaign_update import update_steps
from store.importer import create_campaign
from store.variant_stats import variant_stats
from tests.factories import add_campaign, add_mailbox

KEY = b"v" * 32
HEAD = "name: upd\nworkspace: ws\nmailboxes: [mb-u]\nprospects_csv: p.csv\nsteps:\n  - variants:\n"
A = "      - {name: a, subject: 'A {{ first_name }}', body: 'a body'}\n"
B = "      - {name: b, subject: 'B {{ first_name }}', body: 'b body'}\n"
C = "      - {name: c, subject: 'C {x|y}', body: 'c body'}\n"


def write(tmp_path: Path, variants_text: str, n: int = 40) -> Path:
    rows = "".join(f"u{i}@example.com,U{i}\n" for i in range(n))
    (tmp_path / "p.csv").write_text("email,first_name\n" + rows)
    path = tmp_path / "campaign.yaml"
    path.write_text(HEAD + variants_text)
    return path


async def claim(db: asyncpg.Pool, campaign_id: str, limit: int) -> list[str]:
    def mid(prospect_id: int, domain: str) -> str:
        return message_id_for(campaign_id, 1, prospect_id, domain)

    batch = await open_work.claim_due(db, campaign_id, 1, datetime.now(UTC), limit, 1_000_000, [], [], mid,
                                      KEY)
    return [c.variant for c in batch.sends]


async def test_a_retired_variant_gets_no_new_prospect_and_keeps_its_figures(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B)))
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", created.id)
    first = await claim(db, created.id, 20)
    assert set(first) == {"a", "b"}
    await db.execute("UPDATE sends SET state = 'sent', attempts = 1, sent_at = now() WHERE campaign_id = $1",
                     created.id)

    updated = await update_steps(db, created.id, load_campaign_update(write(tmp_path, B + C)))
    assert updated.changed == [1]
    later = await claim(db, created.id, 20)
    assert len(later) == 20 and set(later) <= {"b", "c"} and "c" in later
    figures = {r["variant"]: r for r in await variant_stats(db, created.id)}
    assert figures["a"]["retired"] and figures["a"]["sent"] == first.count("a")
    assert not figures["c"]["retired"]


async def test_a_claimed_send_keeps_its_variant_when_claimed_again(db: asyncpg.Pool, tmp_path: Path) -> None:
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B, n=10)))
    first = await claim(db, created.id, 10)  # queued, as a send the gate sent back is
    await variants.pick_winner(db, created.id, 1, "a" if "b" in first else "b")
    assert await claim(db, created.id, 10) == first


async def test_a_pick_gives_every_new_prospect_the_winner_and_reset_undoes_it(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B)))
    await variants.pick_winner(db, created.id, 1, "b")
    assert set(await claim(db, created.id, 15)) == {"b"}
    await variants.pick_winner(db, created.id, 1, None)
    assert set(await claim(db, created.id, 25)) == {"a", "b"}
    log = await db.fetch("SELECT winner, decided_by FROM step_winner_decisions WHERE campaign_id = $1"
                         " ORDER BY id", created.id)
    assert [tuple(r) for r in log] == [("b", "operator"), (None, "operator")]
    with pytest.raises(StoreError, match="no variant 'z'"):
        await variants.pick_winner(db, created.id, 1, "z")


async def test_an_update_with_bad_variants_changes_nothing(db: asyncpg.Pool, tmp_path: Path) -> None:
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B)))
    before = await db.fetch("SELECT * FROM step_variants ORDER BY name")
    with pytest.raises(SpecError, match="variants named more than once: b"):
        load_campaign_update(write(tmp_path, A + B + B))
    bad = write(tmp_path, A + "      - {name: b, subject: 'B {{ missing }}', body: 'b'}\n")
    with pytest.raises(SpecError, match="uses {{ missing }}"):
        await update_steps(db, created.id, load_campaign_update(bad))
    assert await db.fetch("SELECT * FROM step_variants ORDER BY name") == before


async def test_an_old_campaign_given_variants_keeps_threading_on_the_subject_it_sent(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-u", 2525)
    # A campaign from before variants: braces in its texts were plain text.
    campaign_id, (first, *_) = await add_campaign(
        db, ["mb-u"], ["u0@example.com", "u1@example.com"],
        [("Hi {team} | {{ first_name }}", "one {x}", 0), ("Re: Hi {team} | {{ first_name }}", "two", 1)])
    await claim(db, campaign_id, 2)
    await db.execute("UPDATE sends SET state = 'sent', attempts = 1, sent_at = now() WHERE campaign_id = $1",
                     campaign_id)
    await db.execute("INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id)"
                     " VALUES ($1, 2, $2, 'mb-u', 'm2')", campaign_id, first)

    path = tmp_path / "update.yaml"
    path.write_text("name: upd\nworkspace: ws\nmailboxes: [mb-u]\nsteps:\n  - variants:\n" + A + B
                    + "  - delay: 1s\n    body: 'two again'\n")
    await update_steps(db, campaign_id, load_campaign_update(path))

    ctx = await ledger.send_context(db, campaign_id, 2, first)
    subject, body = _templates(ctx, SendKey(campaign_id=campaign_id, step=2, prospect_id=first), KEY)
    assert (subject, body) == ("Re: Hi {team} | {{ first_name }}", "two again")
    retired = await db.fetchval("SELECT retired_at IS NOT NULL FROM step_variants WHERE campaign_id = $1"
                                " AND step = 1 AND name = ''", campaign_id)
    assert retired  # the old step 1 takes no new prospect; its sends keep their texts


async def test_the_rule_does_not_overwrite_an_operators_pick(db: asyncpg.Pool, tmp_path: Path) -> None:
    await add_mailbox(db, "mb-u", 2525)
    created = await create_campaign(db, load_campaign_file(write(tmp_path, A + B, n=5)))
    await variants.pick_winner(db, created.id, 1, "a")
    assert not await variants.record_winner(db, created.id, 1, "b", "rule", {"reason": "late"})
    winner = await db.fetchval("SELECT winner FROM steps WHERE campaign_id = $1 AND step = 1", created.id)
    assert winner == "a"
    assert await db.fetchval("SELECT count(*) FROM step_winner_decisions WHERE campaign_id = $1",
                             created.id) == 1
