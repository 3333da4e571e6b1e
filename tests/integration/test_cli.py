"""The outreach CLI as an operator runs it: real processes, real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OUTREACH = str(Path(sys.executable).parent / "outreach")


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def outreach(settings: Settings, *args: str) -> Ran:
    """Run the CLI without blocking the loop (an in-process worker may need to answer it)."""
    env = {**os.environ, "OUTREACH_DATABASE_URL": settings.database_url,
           "OUTREACH_REDIS_URL": settings.redis_url, "OUTREACH_TASK_QUEUE": settings.task_queue,
           "OUTREACH_TEMPORAL_ADDRESS": settings.temporal_address,
           "OUTREACH_MAILBOX_SPACING": "0"}
    proc = await asyncio.create_subprocess_exec(
        OUTREACH, *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    tables = ["workspaces", "mailboxes", "campaigns", "steps", "prospects", "sends"]
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in tables}


async def test_db_migrate_is_idempotent(db: asyncpg.Pool, settings: Settings) -> None:
    first = await outreach(settings, "db", "migrate")
    second = await outreach(settings, "db", "migrate")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "up to date" in second.stdout


async def test_import_create_and_status_json(db: asyncpg.Pool, settings: Settings) -> None:
    imported = await outreach(settings, "mailboxes", "import", "examples/mailboxes.yaml")
    assert imported.returncode == 0, imported.stderr
    created = await outreach(settings, "campaigns", "create", "examples/campaign.yaml")
    assert created.returncode == 0, created.stderr
    campaign_id = created.stdout.strip().splitlines()[-1]
    assert campaign_id.startswith("cmp-")

    status = await outreach(settings, "campaigns", "status", campaign_id, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["state"] == "created"
    assert [s["step"] for s in data["steps"]] == [1, 2, 3]
    assert all(s["sent"] == 0 and s["queued"] == 0 for s in data["steps"])

    boxes = json.loads((await outreach(settings, "mailboxes", "status", "--json")).stdout)
    assert {b["id"] for b in boxes} == {"demo-1", "demo-2"}
    assert not any(b["paused"] for b in boxes)


async def test_bad_campaign_file_names_the_problem_and_changes_nothing(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    assert (await outreach(settings, "mailboxes", "import", "examples/mailboxes.yaml")).returncode == 0
    before = await row_counts(db)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: Bad\nworkspace: w\nmailboxes: [demo-1]\n"
        "steps:\n  - subject: \"Hi {{ first_name }}\"\n    body: x\n"
        "prospects:\n  - {email: ok@example.com, first_name: Ok}\n  - {email: not-an-address}\n"
    )
    result = await outreach(settings, "campaigns", "create", str(bad))
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr and "prospects[2].email" in result.stderr
    assert "not a valid address" in result.stderr
    assert await row_counts(db) == before


async def test_unknown_campaign_is_a_clear_error(db: asyncpg.Pool, settings: Settings) -> None:
    result = await outreach(settings, "campaigns", "status", "cmp-nope")
    assert result.returncode == 2
    assert "cmp-nope" in result.stderr and "Traceback" not in result.stderr


async def test_pause_and_resume_a_mailbox_from_the_cli(
    db: asyncpg.Pool, e2e_settings: Settings, worker: None
) -> None:
    assert (await outreach(e2e_settings, "mailboxes", "import", "examples/mailboxes.yaml")).returncode == 0
    paused = await outreach(e2e_settings, "mailboxes", "pause", "demo-1", "--reason", "bounce spike")
    assert paused.returncode == 0, paused.stderr
    status = json.loads((await outreach(e2e_settings, "mailboxes", "status", "demo-1", "--json")).stdout)
    assert status["paused"] is True and status["pause_reason"] == "bounce spike"

    resumed = await outreach(e2e_settings, "mailboxes", "resume", "demo-1")
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads((await outreach(e2e_settings, "mailboxes", "status", "demo-1", "--json")).stdout)
    assert status["paused"] is False


async def test_version_names_the_installed_distribution(settings: Settings) -> None:
    from importlib.metadata import version

    ran = await outreach(settings, "--version")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"outreach {version('outreach')}"
