"""Capacity: how fast one worker sends when no limit binds, what each email costs every
process, and how close that comes to a bare aiosmtplib loop (the ceiling).

Each run: a fresh N-prospect, one-step campaign over M mailboxes on the local
provider (inbox.provider), sent by `outreach worker` process(es); then the same
number of messages through `python -m bench.bare` with one connection per
mailbox, as the engine's transport uses.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.engine import EngineRun, campaign_completed, percentile, run_campaign
from bench.report import Figure
from localsmtp.provider import HostBehaviour, Provider

HOST = "mx"
UNCAPPED = 1_000_000

# Limits that do not bind: this measures the engine, not the limits.
NON_BINDING = {
    "OUTREACH_MAILBOX_SPACING": "0",
    "OUTREACH_LIMIT_OTHER_PER_MINUTE": "1000000",
    "OUTREACH_LIMIT_OTHER_CONNECTIONS": "100000",
    "OUTREACH_LIMIT_WORKSPACE_IN_FLIGHT": "100000",
}

ENGINE_FIGURES = [
    Figure("delivered", "emails delivered", 0),
    Figure("sends_per_minute", "sends per minute (campaign start to last acceptance)", 0),
    Figure("due_p50", "due to accepted, p50 (s)", 1),
    Figure("due_p99", "due to accepted, p99 (s)", 1),
    Figure("claimed_p50", "claimed to accepted, p50 (s)", 2),
    Figure("claimed_p99", "claimed to accepted, p99 (s)", 2),
    Figure("events_per_email", "Temporal history events per email", 1),
    Figure("actions_per_email", "Temporal actions per email (from histories)", 2),
    Figure("server_actions_per_email", "Temporal actions per email (server's `action` counter)", 2),
    Figure("redis_per_email", "Redis commands per email (each command a Lua script runs counts)", 1),
    Figure("redis_scripts_per_email", "Redis script calls (EVALSHA) per email", 1),
    Figure("pg_xacts_per_email", "PostgreSQL transactions per email", 1),
    Figure("pg_rows_written_per_email", "PostgreSQL rows written per email", 1),
    Figure("pg_rows_read_per_email", "PostgreSQL rows read per email", 0),
    Figure("worker_rss_mb", "worker peak RSS (MiB, largest worker)", 0),
    Figure("cpu_worker", "CPU s per 1,000 emails: worker(s)", 1),
    Figure("cpu_temporal", "CPU s per 1,000 emails: Temporal server", 1),
    Figure("cpu_redis", "CPU s per 1,000 emails: Redis", 2),
    Figure("cpu_postgres", "CPU s per 1,000 emails: PostgreSQL (bench DB backends)", 1),
    Figure("cpu_bench", "CPU s per 1,000 emails: provider + client (bench process)", 1),
    Figure("duplicates", "duplicate copies seen by the provider", 0),
    Figure("stalled", "campaign workflow not completed 60 s after its last message (1 = stalled)", 0),
]
CEILING_FIGURES = [
    Figure("bare_sends_per_minute", "bare aiosmtplib loop, sends per minute", 0),
    Figure("ceiling_ratio", "engine / bare rate", 3),
]
FIGURES = ENGINE_FIGURES + CEILING_FIGURES


def engine_figures(run: EngineRun, copies: int) -> dict[str, float]:
    n = len(run.delivered)
    per = 1 / n if n else 0.0
    claimed = run.claimed_at
    due = run.latencies(lambda _: run.started_at)  # step 1 is due when the campaign starts
    held = run.latencies(lambda r: claimed.get(r.message_id))
    workers = {k: v for k, v in run.cpu.items() if k.startswith("worker")}
    return {
        "delivered": n,
        "sends_per_minute": run.sends_per_minute,
        "due_p50": percentile(due, 50), "due_p99": percentile(due, 99),
        "claimed_p50": percentile(held, 50), "claimed_p99": percentile(held, 99),
        "events_per_email": run.temporal.events * per,
        "actions_per_email": run.temporal.total_actions * per,
        "server_actions_per_email": (run.server_actions or 0.0) * per,
        "redis_per_email": run.redis.total * per,
        "redis_scripts_per_email": run.redis.scripts * per,
        "pg_xacts_per_email": run.postgres.transactions * per,
        "pg_rows_written_per_email": run.postgres.rows_written * per,
        "pg_rows_read_per_email": run.postgres.rows_read * per,
        "worker_rss_mb": max(v for k, v in run.peak_rss_mb.items() if k.startswith("worker")),
        "cpu_worker": sum(workers.values()) * per * 1000,
        "cpu_temporal": run.cpu["temporal"] * per * 1000,
        "cpu_redis": run.cpu["redis"] * per * 1000,
        "cpu_postgres": run.postgres.cpu_seconds * per * 1000,
        "cpu_bench": run.cpu["bench"] * per * 1000,
        "duplicates": copies,
        "stalled": 0 if run.completed else 1,
    }


def engine_details(run: EngineRun) -> dict[str, Any]:
    return {
        "campaign_id": run.seeded.campaign_id, "workers": run.workers, "elapsed_s": run.elapsed,
        "campaign_completed": run.completed,
        "cpu_seconds": run.cpu, "peak_rss_mb": run.peak_rss_mb,
        "workflow_runs": run.temporal.runs, "history_events": run.temporal.events,
        "actions": dict(run.temporal.actions), "server_actions": run.server_actions,
        "redis_commands": run.redis.calls,
        "postgres": {"transactions": run.postgres.transactions, "rows_written": run.postgres.rows_written,
                     "rows_read": run.postgres.rows_read, "cpu_seconds": run.postgres.cpu_seconds,
                     "rows_read_by_table": run.postgres.table_reads},
    }


async def engine_run(
    prospects: int, mailboxes: int, workers: int, log_dir: Path | None, analyze: bool = True,
) -> tuple[dict[str, float], dict[str, Any]]:
    async with Provider([HostBehaviour(HOST)]) as provider:
        run = await run_campaign(
            provider, HOST, prospects=prospects, daily_limits=[UNCAPPED] * mailboxes,
            workers=workers, settings=NON_BINDING, done=campaign_completed(provider, HOST, prospects),
            within=600 + prospects / 5, log_dir=log_dir, analyze=analyze,
        )
        copies = sum(c - 1 for c in provider.copies().values() if c > 1)
    if len(run.delivered) != prospects:
        print(f"  warning: {len(run.delivered)} of {prospects} delivered", file=sys.stderr)
    if not run.completed:
        print(f"  warning: campaign {run.seeded.campaign_id} had not completed 60 s after its last"
              " message arrived (measured anyway)", file=sys.stderr)
    return engine_figures(run, copies), engine_details(run)


async def bare_rate(prospects: int, mailboxes: int) -> float:
    """Sends per minute of the bare loop, in its own process, to a fresh provider host."""
    async with Provider([HostBehaviour(HOST)]) as provider:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.bare", "--port", str(provider.port(HOST)),
            "--prefix", "bare", "--mailboxes", str(mailboxes), "--messages", str(prospects),
            stdout=subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"bench.bare exited with {proc.returncode}")
        result = json.loads(out.decode().strip().splitlines()[-1])
        delivered = sum(1 for r in provider.accepted if r.acknowledged)
    if delivered != prospects:
        raise RuntimeError(f"bare loop: the provider acknowledged {delivered} of {prospects}")
    return float(result["sent"]) / float(result["seconds"]) * 60


async def one_run(
    prospects: int, mailboxes: int, workers: int, log_dir: Path | None, analyze: bool = True,
) -> tuple[dict[str, float], dict[str, Any]]:
    figures, details = await engine_run(prospects, mailboxes, workers, log_dir, analyze)
    bare = await bare_rate(prospects, mailboxes)
    figures["bare_sends_per_minute"] = bare
    figures["ceiling_ratio"] = figures["sends_per_minute"] / bare
    return figures, details


def summary(figures: dict[str, float]) -> str:
    return (f"{figures['delivered']:.0f} delivered, {figures['sends_per_minute']:.0f}/min"
            f" (bare {figures['bare_sends_per_minute']:.0f}/min, ratio {figures['ceiling_ratio']:.2f});"
            f" {figures['events_per_email']:.1f} events and {figures['actions_per_email']:.2f} actions"
            " per email;"
            f" due->accepted p50 {figures['due_p50']:.1f} s")
