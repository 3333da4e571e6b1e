"""End-to-end throughput: an N-prospect, 1-step campaign with generous limits.

Everything real and local: a Temporal dev server, PostgreSQL, Redis, a worker
process (`outreach worker`), and the in-process SMTP inbox. Prints, per run,
sends per minute from `campaigns start` to the campaign's completion, and the
Temporal history events per delivered email; then the median over the runs.

    .venv/bin/python -m bench.throughput --prospects 1000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.converter import data_converter
from config.names import SEARCH_ATTRIBUTES
from config.settings import Settings
from inbox.server import Inbox
from store.db import create_pool
from store.migrate import migrate
from tests.factories import add_campaign, add_mailbox

BIN = Path(sys.executable).parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


async def history_events(client: Client, prefix: str) -> int:
    total = 0
    async for wf in client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}-campaign'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        total += len(history.events)
    return total


async def one_run(
    env: WorkflowEnvironment, db_url: str, prospects: int, mailboxes: int
) -> tuple[float, float]:
    prefix = f"bench-{secrets.token_hex(3)}"
    settings = Settings(
        temporal_address=env.client.service_client.config.target_host,
        database_url=db_url, task_queue=prefix,
    )
    pool = await create_pool(db_url)
    async with Inbox() as inbox:
        ids = [f"{prefix}-mb{i}" for i in range(mailboxes)]
        for m in ids:
            await add_mailbox(pool, m, inbox.port, daily_limit=1_000_000)
        emails = [f"p{i}@example.com" for i in range(prospects)]
        campaign_id, _ = await add_campaign(pool, ids, emails, [("Hello {{ first_name }}", "Hi", 0)])
        env_vars = {**os.environ, "OUTREACH_TEMPORAL_ADDRESS": settings.temporal_address,
                    "OUTREACH_DATABASE_URL": db_url, "OUTREACH_TASK_QUEUE": prefix,
                    # generous limits: this measures the engine, not the limits
                    "OUTREACH_MAILBOX_SPACING": "0", "OUTREACH_LIMIT_OTHER_PER_MINUTE": "1000000",
                    "OUTREACH_LIMIT_OTHER_CONNECTIONS": "1000"}
        worker = subprocess.Popen([str(BIN / "outreach"), "worker"], env=env_vars,
                                  stderr=subprocess.DEVNULL)
        client = await OutreachClient.connect(settings)
        try:
            started = time.monotonic()
            await client.start_campaign(campaign_id)
            while (await client.campaign_status(campaign_id))["state"] != "completed":
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
            events = await history_events(env.client, prefix)
        finally:
            await client.close()
            worker.terminate()
            worker.wait(timeout=60)
        delivered = len(inbox.messages)
    await pool.close()
    rate = delivered / elapsed * 60
    per_email = events / delivered
    print(f"  run: {delivered} delivered in {elapsed:.1f}s = {rate:.0f} sends/min;"
          f" {per_email:.1f} history events per email", flush=True)
    return rate, per_email


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prospects", type=int, default=1000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    name = f"outreach_bench_{secrets.token_hex(3)}"
    db_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    await migrate(db_url)
    print(f"{args.prospects} prospects, 1 step, {args.mailboxes} mailboxes, limits non-binding;"
          f" {args.runs} run(s)", flush=True)
    try:
        async with await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter(),
            dev_server_log_level="error", search_attributes=SEARCH_ATTRIBUTES,
        ) as env:
            results = [await one_run(env, db_url, args.prospects, args.mailboxes) for _ in range(args.runs)]
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    rates = [r for r, _ in results]
    events = [e for _, e in results]
    print(f"median: {statistics.median(rates):.0f} sends/min"
          f" (min {min(rates):.0f}, max {max(rates):.0f});"
          f" {statistics.median(events):.1f} history events per email")


if __name__ == "__main__":
    asyncio.run(main())
