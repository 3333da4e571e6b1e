"""`outreach suppress ...` and what the do-not-contact list changes in `campaigns create`
and `campaigns status`, as an operator runs them: real processes, real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from config.settings import Settings
from tests.integration.test_cli import outreach

PROSPECT_STATES = {"active", "replied", "hard_bounced", "unsubscribed", "suppressed", "stopped"}


async def test_add_list_export_import_and_remove(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    added = await outreach(settings, "suppress", "add", "Jörn.Ü@example.com", "--workspace", "acme")
    assert added.returncode == 2 and "not a valid address" in added.stderr  # SMTPUTF8 local part
    added = await outreach(settings, "suppress", "add", "JOE@BÜCHER.de", "--workspace", "acme",
                           "--reason", "asked by phone")
    assert added.returncode == 0, added.stderr
    assert "added joe@bücher.de (workspace:acme, manual, asked by phone)" in added.stdout
    again = await outreach(settings, "suppress", "add", "joe@xn--bcher-kva.DE", "--workspace", "acme")
    assert again.returncode == 0 and "already listed: joe@bücher.de" in again.stdout
    assert (await outreach(settings, "suppress", "add", "@Rival.IO", "--global")).returncode == 0

    listed = await outreach(settings, "suppress", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert [{k: v for k, v in e.items() if k != "created_at"} for e in entries] == [
        {"domain": "rival.io", "scope": "global", "workspace": None, "source": "manual", "reason": None},
        {"address": "joe@bücher.de", "scope": "workspace:acme", "workspace": "acme", "source": "manual",
         "reason": "asked by phone"},
    ]
    assert all(e["created_at"] for e in entries)
    only_global = json.loads((await outreach(settings, "suppress", "list", "--global", "--json")).stdout)
    assert [e.get("domain") for e in only_global] == ["rival.io"]
    human = await outreach(settings, "suppress", "list", "--workspace", "acme")
    assert "joe@bücher.de" in human.stdout and "asked by phone" in human.stdout
    assert "rival" not in human.stdout

    exported = await outreach(settings, "suppress", "export", "--workspace", "acme")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.splitlines()[0] == "address,reason,source,scope,created_at"
    (tmp_path / "acme.csv").write_text(exported.stdout, encoding="utf-8")
    imported = await outreach(settings, "suppress", "import", str(tmp_path / "acme.csv"),
                              "--workspace", "beta")
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 entry into the workspace:beta list: 1 new" in imported.stdout

    removed = await outreach(settings, "suppress", "remove", "Joe@Bücher.de", "--workspace", "acme")
    assert removed.returncode == 0 and "removed joe@bücher.de" in removed.stdout
    gone = await outreach(settings, "suppress", "remove", "joe@bücher.de", "--workspace", "acme")
    assert gone.returncode == 2 and "not on the workspace:acme list" in gone.stderr
    rows = await db.fetch(
        "SELECT workspace_id, entry, source FROM suppressions ORDER BY workspace_id NULLS FIRST")
    assert [tuple(r) for r in rows] == [(None, "@rival.io", "manual"), ("beta", "joe@bücher.de", "import")]


async def test_a_written_scope_must_be_named_once(db: asyncpg.Pool, settings: Settings) -> None:
    neither = await outreach(settings, "suppress", "add", "a@example.com")
    assert neither.returncode == 2 and "--workspace W or --global" in neither.stderr
    both = await outreach(settings, "suppress", "remove", "a@example.com", "--workspace", "w", "--global")
    assert both.returncode == 2 and "not both" in both.stderr
    bad = await outreach(settings, "suppress", "add", "a@example.com", "--workspace", "no spaces")
    assert bad.returncode == 2 and "is not an id" in bad.stderr
    assert "Traceback" not in neither.stderr + both.stderr + bad.stderr
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_a_bad_import_row_names_row_and_column_and_imports_nothing(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("address,reason\nok@example.com,fine\n@rival.io,competitor\nnobody,typo\n",
                    encoding="utf-8")
    ran = await outreach(settings, "suppress", "import", str(path), "--global")
    assert ran.returncode == 2
    assert f"{path}: row 4, column address: not a valid address" in ran.stderr
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_create_skips_listed_prospects_and_status_counts_prospects_by_state(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    assert (await outreach(settings, "mailboxes", "import", "examples/mailboxes.yaml")).returncode == 0
    listed = await outreach(settings, "suppress", "add", "ann@example.com", "--workspace", "acme")
    assert listed.returncode == 0, listed.stderr
    assert (await outreach(settings, "suppress", "add", "@rival.io", "--global")).returncode == 0
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        "name: C\nworkspace: acme\nmailboxes: [demo-1]\nsteps:\n  - {subject: Hi, body: x}\n"
        "prospects:\n  - {email: Ann@Example.com}\n  - {email: bob@rival.io}\n  - {email: cy@example.com}\n"
    )
    created = await outreach(settings, "campaigns", "create", str(campaign))
    assert created.returncode == 0, created.stderr
    assert "created campaign with 3 prospect(s), 2 suppressed" in created.stdout
    campaign_id = created.stdout.strip().splitlines()[-1]

    status = json.loads((await outreach(settings, "campaigns", "status", campaign_id, "--json")).stdout)
    assert set(status["prospects"]) == PROSPECT_STATES
    assert status["prospects"] == {**dict.fromkeys(PROSPECT_STATES, 0), "active": 1, "suppressed": 2}
    human = await outreach(settings, "campaigns", "status", campaign_id)
    assert "3 prospects" in human.stdout and "prospects: active 1, suppressed 2" in human.stdout
