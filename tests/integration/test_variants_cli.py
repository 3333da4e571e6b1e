"""The CLI of issue 24 as an operator runs it: real processes, real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from config.settings import Settings
from store.variant_stats import INTENTS
from tests.factories import add_mailbox
from tests.integration.test_cli import outreach
from tests.integration.test_variant_intents import message
from tests.integration.test_variants import write_campaign
from tests.integration.test_variants_update import claim


async def test_create_prints_combinations_and_status_shows_figures_and_decisions(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-v", 2525)
    created = await outreach(settings, "campaigns", "create", str(write_campaign(tmp_path, 3)))
    assert created.returncode == 0, created.stderr
    assert "step 1 variant 'short': 6 spintax combination(s)" in created.stdout
    assert "step 1 variant 'proof': 2 spintax combination(s)" in created.stdout
    campaign_id = created.stdout.strip().splitlines()[-1]

    picked = await outreach(settings, "campaigns", "variants", campaign_id, "--step", "1", "--pick", "proof")
    assert picked.returncode == 0, picked.stderr
    ran = await outreach(settings, "campaigns", "status", campaign_id, "--by-variant", "--json")
    status = json.loads(ran.stdout)
    assert [(r["step"], r["variant"]) for r in status["variants"]] == [(1, "short"), (1, "proof"), (2, "")]
    assert (status["winners"][0]["winner"], status["winners"][0]["decided_by"]) == ("proof", "operator")
    text = await outreach(settings, "campaigns", "status", campaign_id, "--by-variant")
    assert "winner 'proof' by operator" in text.stdout and " short " in text.stdout

    reset = await outreach(settings, "campaigns", "variants", campaign_id, "--step", "1", "--reset")
    assert reset.returncode == 0, reset.stderr
    status = json.loads((await outreach(settings, "campaigns", "status", campaign_id, "--json")).stdout)
    assert status["winners"][0]["winner"] is None

    unknown = await outreach(settings, "campaigns", "variants", campaign_id, "--step", "1", "--pick", "nope")
    assert unknown.returncode == 2 and "no variant 'nope'" in unknown.stderr

    # `trace` names each send's variant, as the claim recorded it.
    claimed = await claim(db, campaign_id, 3)
    traced = await outreach(settings, "trace", f"{campaign_id}:1:1")
    assert traced.returncode == 0, traced.stderr
    assert f"variant {claimed[0]}" in traced.stdout

    # Replies per intent class, per variant: in the JSON (every class) and the table.
    await db.execute("TRUNCATE inbound_messages")
    await db.execute("UPDATE sends SET state = 'sent', attempts = 1, sent_at = now() WHERE campaign_id = $1",
                     campaign_id)
    await message(db, campaign_id, 1, "reply", "meeting", mailbox="mb-v")
    await message(db, campaign_id, 2, "reply", "not_interested", mailbox="mb-v")
    ran = await outreach(settings, "campaigns", "status", campaign_id, "--by-variant", "--json")
    rows = {r["variant"]: r for r in json.loads(ran.stdout)["variants"] if r["step"] == 1}
    variant_of = {r["prospect_id"]: r["variant"] for r in await db.fetch(
        "SELECT prospect_id, variant FROM sends WHERE campaign_id = $1", campaign_id)}
    one, two = variant_of[1], variant_of[2]
    expected = {v: dict.fromkeys(INTENTS, 0) for v in ("short", "proof")}
    expected[one]["meeting"] += 1
    expected[two]["not_interested"] += 1
    assert {v: rows[v]["reply_classes"] for v in expected} == expected
    assert rows[one]["positive_replied"] == 1
    assert sum(r["positive_replied"] for r in rows.values()) == 1
    text = await outreach(settings, "campaigns", "status", campaign_id, "--by-variant")
    line = next(x for x in text.stdout.splitlines() if x.split()[:2] == ["1", one])
    assert line.endswith("[meeting 1]" if one != two else "[meeting 1, not_interested 1]"), text.stdout


async def test_bad_variants_are_refused_with_their_place_and_nothing_is_created(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-v", 2525)
    path = write_campaign(tmp_path, 3)
    path.write_text(path.read_text().replace("{cut|halved}", "{cut||halved}"))
    ran = await outreach(settings, "campaigns", "create", str(path))
    assert ran.returncode == 2
    assert "steps[1].variants[2].subject (line 11): spintax: empty alternative (line 1, column 24)" \
        in ran.stderr
    assert await db.fetchval("SELECT count(*) FROM campaigns") == 0
