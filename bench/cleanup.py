"""Retention cleanup against a large ledger: seed N rows, run one cleanup pass, measure.

Seeds its own database (default `outreach_bench`, dropped first) with N ledger
rows over 100 campaigns (completed, cancelled and running, finished up to 60
days ago), then prints:
- the scheduler's hot queries (store.ledger's due-sends query and the next-due
  query) under EXPLAIN ANALYZE, before and after the pass;
- the pass: rows deleted per rule, batches, seconds; whether exactly the
  expired rows went (counts per campaign state, ledger state and expiry);
- the latency of single-row INSERTs another connection makes throughout the
  pass (max, p99, how many over 100 ms): what the cleanup's locks cost a send.

It prints figures and asserts nothing.

    .venv/bin/python -m bench.cleanup --rows 5000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from store.db import create_pool
from store.migrate import migrate
from store.open_work import DUE, NEXT_DUE
from store.retention import purge, retention_rules

ADMIN_URL = os.environ.get("OUTREACH_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
CAMPAIGNS = 100
STEPS = 3
MAILBOXES = 50
SENT_DAYS, FAILED_DAYS = 7.0, 30.0


def campaign_state(i: int) -> str:
    return "completed" if i % 2 == 0 else ("cancelled" if i % 10 == 1 else "running")


async def seed(conn: asyncpg.Connection, rows: int) -> None:
    """N ledger rows: per campaign, prospects x 3 steps, states and ages spread out."""
    await conn.execute("SET session_replication_role = replica")  # no FK triggers while loading
    await conn.execute("SELECT setseed(0.42)")
    await conn.execute("INSERT INTO workspaces (id) VALUES ('bench')")
    await conn.execute(
        "INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, daily_limit,"
        " timezone, window_start, window_end, window_days)"
        " SELECT 'mb-' || g, 'mb' || g || '@bench.example', 'other', '127.0.0.1', 25, 'none', 40,"
        " 'UTC', '00:00', '24:00', '{1,2,3,4,5,6,7}' FROM generate_series(0, $1 - 1) g",
        MAILBOXES,
    )
    per_campaign = max(1, rows // (CAMPAIGNS * STEPS))
    for i in range(CAMPAIGNS):
        await _seed_campaign(conn, i, per_campaign)
    await conn.execute("SET session_replication_role = DEFAULT")
    await conn.execute("ANALYZE")


async def _seed_campaign(conn: asyncpg.Connection, i: int, prospects: int) -> None:
    cid, state = f"bench-{i:03d}", campaign_state(i)
    ended_days = (i * 1.3) % 60 if state != "running" else 0.0  # when the campaign finished
    await conn.execute(
        "INSERT INTO campaigns (id, name, workspace_id, state, started_at, finished_at)"
        " VALUES ($1, $1, 'bench', $2, now() - make_interval(days => 90),"
        " CASE WHEN $2 IN ('completed', 'cancelled') THEN now() - make_interval(secs => $3) END)",
        cid, state, ended_days * 86400,
    )
    await conn.executemany(
        "INSERT INTO steps (campaign_id, step, subject, body, delay_seconds)"
        " VALUES ($1, $2, 's', 'b', 86400)",
        [(cid, k) for k in range(1, STEPS + 1)],
    )
    lo, hi = await conn.fetchrow(
        "WITH ins AS (INSERT INTO prospects (campaign_id, email, mailbox_id)"
        " SELECT $1, 'p' || g || '@' || $1 || '.example', 'mb-' || (g % $3)"
        " FROM generate_series(1, $2) g RETURNING id) SELECT min(id), max(id) FROM ins",
        cid, prospects, MAILBOXES,
    )
    # Rows finished over the 30 days before the campaign ended; a running
    # campaign's rows over the last 60 days, a few still open.
    await conn.execute(
        """
        INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, state, attempts, message_id,
                           created_at, updated_at, first_attempt_at, sent_at, finished_at)
        SELECT $1, st, p, 'mb-' || (p % $6), x.state, 1, '<' || p || '.' || st || '@bench>',
               x.t, x.t, x.t, CASE WHEN x.state = 'sent' THEN x.t END,
               CASE WHEN x.state NOT IN ('queued', 'sending', 'soft_bounced') THEN x.t END
        FROM generate_series($2::bigint, $3::bigint) p, generate_series(1, $7) st,
        LATERAL (SELECT r, now() - make_interval(secs => $5 * 86400 + r2 * $8 * 86400) AS t,
                        CASE WHEN $4 AND r < 0.03 THEN 'queued' WHEN r < 0.85 THEN 'sent'
                             WHEN r < 0.90 THEN 'failed' WHEN r < 0.93 THEN 'hard_bounced'
                             WHEN r < 0.98 THEN 'skipped' ELSE 'unknown' END AS state
                 FROM (SELECT random() + 0 * p AS r, random() + 0 * st AS r2) rr) x
        """,
        cid, lo, hi, state == "running", ended_days, MAILBOXES, STEPS,
        60.0 if state == "running" else 30.0,
    )


def expired_sql(at: str) -> str:
    """The expiry rule as of the instant ``at`` (SQL), restated apart from store.retention."""
    return (
        "(c.state IN ('completed', 'cancelled') AND ("
        f" (s.state IN ('sent', 'skipped') AND s.finished_at < {at} - interval '{SENT_DAYS} days')"
        f" OR (s.state IN ('failed', 'hard_bounced', 'unknown')"
        f"     AND s.finished_at < {at} - interval '{FAILED_DAYS} days')"
        " OR (c.state = 'cancelled' AND s.state = 'skipped')))"
    )


async def census(conn: asyncpg.Connection, as_of: datetime) -> dict[tuple[str, str, str], int]:
    """Row counts per (campaign state, ledger state, expiry as of ``as_of``).

    Expiry is 'expired' (already at as_of), 'kept' (still not 10 minutes later)
    or 'edge' (expires during a pass): rows age while the pass runs.
    """
    soon = "$1::timestamptz + interval '10 minutes'"
    rows = await conn.fetch(
        f"SELECT c.state AS cs, s.state AS ss,"
        f" CASE WHEN {expired_sql('$1::timestamptz')} THEN 'expired'"
        f"      WHEN {expired_sql(soon)} THEN 'edge'"
        f"      ELSE 'kept' END AS expiry, count(*) AS n"
        " FROM sends s JOIN campaigns c ON c.id = s.campaign_id GROUP BY 1, 2, 3",
        as_of,
    )
    return {(r["cs"], r["ss"], r["expiry"]): r["n"] for r in rows}


async def hot_queries(conn: asyncpg.Connection) -> dict[str, float]:
    """EXPLAIN ANALYZE execution times (ms) of the step scheduler's queries, running campaign."""
    cid = "bench-001" if campaign_state(1) == "running" else "bench-003"
    due = f"SELECT * FROM ({DUE}) d ORDER BY due_at, prospect_id LIMIT 50"
    out = {}
    for name, sql, args in (
        ("due_sends", due, [cid, 3, _now(), [], [], 3]),
        ("next_due", NEXT_DUE, [cid, 3, _now()]),
    ):
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        out[name] = _plan_ms(plan)
    return out


def _now() -> datetime:
    return datetime.now(UTC)


def _plan_ms(plan: object) -> float:
    import json

    doc = json.loads(plan) if isinstance(plan, str) else plan
    assert isinstance(doc, list)
    return float(doc[0]["Execution Time"])


@dataclass
class InsertProbe:
    """Single-row inserts into the ledger, back to back, timed one by one."""

    latencies: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    lock_timeouts: int = 0

    async def run(self, conn: asyncpg.Connection, prospect_id: int) -> None:
        # An insert that waits longer than this for any lock fails and is counted:
        # a direct measure of "a lock that blocks an insert for more than 100 ms".
        await conn.execute("SET lock_timeout = '100ms'")
        step = 1000
        while not self.stop.is_set():
            step += 1
            started = time.perf_counter()
            try:
                await conn.execute(
                    "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id)"
                    " VALUES ('bench-001', $1, $2, 'mb-0', 'probe')", step, prospect_id,
                )
            except asyncpg.LockNotAvailableError:
                self.lock_timeouts += 1  # waited more than 100 ms for a lock
            self.latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.005)

    def summary(self) -> str:
        if not self.latencies:
            return "no inserts"
        ordered = sorted(self.latencies)
        p99 = ordered[int(len(ordered) * 0.99) - 1]
        over = sum(1 for v in ordered if v > 100)
        return (f"{len(ordered)} inserts, median {statistics.median(ordered):.2f} ms,"
                f" p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms, over 100 ms: {over};"
                f" lock waits over 100 ms (lock_timeout): {self.lock_timeouts}")


@dataclass
class PassReport:
    deleted: dict[str, int]
    batches: int
    seconds: float
    inserts: str
    exact: bool
    kept_changed: dict[tuple[str, str, str], tuple[int, int]]


async def cleanup_pass(url: str, batch_size: int = 2000) -> PassReport:
    """One cleanup pass with the insert probe running beside it."""
    pool = await create_pool(url, max_size=4)
    probe_conn = await asyncpg.connect(url)
    try:
        as_of = await probe_conn.fetchval("SELECT now()")
        before = await census(probe_conn, as_of)
        prospect = await probe_conn.fetchval("SELECT min(id) FROM prospects WHERE campaign_id = 'bench-001'")
        probe = InsertProbe()
        probe_task = asyncio.create_task(probe.run(probe_conn, prospect))
        started = time.perf_counter()
        rules = retention_rules(timedelta(days=SENT_DAYS), timedelta(days=FAILED_DAYS))
        result = await purge(pool, rules, batch_size, budget_seconds=3600)
        seconds = time.perf_counter() - started
        probe.stop.set()
        await probe_task
        await probe_conn.execute("DELETE FROM sends WHERE message_id = 'probe'")
        after = await census(probe_conn, as_of)
    finally:
        await probe_conn.close()
        await pool.close()
    changed = {k: (v, after.get(k, 0)) for k, v in before.items()
               if k[2] == "kept" and after.get(k, 0) != v}
    exact = not changed and not any(k[2] == "expired" and n for k, n in after.items())
    return PassReport(result.deleted, result.batches, seconds, probe.summary(), exact, changed)


async def fresh_database(name: str) -> str:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    await migrate(url)
    return url


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--database", default="outreach_bench")
    args = parser.parse_args()

    url = await fresh_database(args.database)
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    await seed(conn, args.rows)
    total = await conn.fetchval("SELECT count(*) FROM sends")
    print(f"seeded {total} ledger rows in {time.perf_counter() - started:.1f} s")
    print(f"hot queries before (ms): {await hot_queries(conn)}")
    await conn.close()

    report = await cleanup_pass(url, args.batch)
    print(f"cleanup pass: deleted {report.deleted} in {report.batches} batches, {report.seconds:.1f} s")
    print(f"exactly the expired rows deleted: {report.exact} {report.kept_changed or ''}")
    print(f"concurrent inserts during the pass: {report.inserts}")

    conn = await asyncpg.connect(url)
    print(f"hot queries after (ms, at once): {await hot_queries(conn)}")
    await conn.execute("VACUUM ANALYZE sends")
    print(f"hot queries after (ms, after VACUUM ANALYZE): {await hot_queries(conn)}")
    print(f"rows left: {await conn.fetchval('SELECT count(*) FROM sends')}")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
