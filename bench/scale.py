"""Scale: what one email costs in a campaign of 10k, 100k or 1M prospects (issue 15).

Each size gets a fresh stack and a two-step campaign (step 2 three days after
step 1) seeded in bulk SQL as a months-old campaign looks: most prospects
finished both steps, a tenth wait for their follow-up (not due for days), and
the run's work is the same at every size: `emails / 2` new prospects due for
step 1 and `emails / 2` whose follow-up is due. The run ends when the provider
has all those messages (the campaign itself goes on: its waiting prospects are
not due). The one-off `start_campaign` (it counts the campaign's prospects) is
left out of the PostgreSQL and Redis figures; the claims, sends and ledger
writes are all in.

A flat row from 10k to 1M is what the index of open work (docs/decisions/0037)
is for.

``--zones 24`` spreads the prospects over 24 zones (one per hour of offset, Kolkata's
half hour among them) under a recipient window of 09:00-17:00 every day (decision
0051): only the due prospects whose zone is open now (and for the next half hour) are
sent; the claims move the others to their next opening, and those moves are in the
figures per email.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench.capacity import NON_BINDING, engine_details, engine_figures
from bench.engine import Seeder, run_campaign
from bench.report import Figure
from bench.seed import BODY, SUBJECT, Mailbox, Seeded, mailbox_email
from localsmtp.provider import HostBehaviour, Provider
from worktime.schedule import RECIPIENT, Schedule

HOST = "mx"
# One zone per hour of offset, -10 to +12, and a half-hour one (decision 0051).
ZONES = ["Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver",
         "America/Chicago", "America/New_York", "America/Halifax", "America/Sao_Paulo",
         "Atlantic/South_Georgia", "Atlantic/Azores", "Europe/London", "Europe/Berlin", "Europe/Athens",
         "Europe/Moscow", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata", "Asia/Dhaka", "Asia/Bangkok",
         "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Noumea", "Pacific/Auckland"]
WORKING_HOURS = Schedule(RECIPIENT, frozenset(range(1, 8)), clock(9), clock(17))
FOLLOW_UP_DELAY = 3 * 24 * 3600
UNCAPPED = 1_000_000

FIGURES = [
    Figure("delivered", "emails delivered", 0),
    Figure("sends_per_minute", "sends per minute", 0),
    Figure("pg_rows_read_per_email", "PostgreSQL rows read per email", 1),
    Figure("pg_xacts_per_email", "PostgreSQL transactions per email", 2),
    Figure("pg_rows_written_per_email", "PostgreSQL rows written per email", 1),
    Figure("redis_scripts_per_email", "Redis script calls per email", 1),
    Figure("events_per_email", "Temporal history events per email", 1),
    Figure("cpu_worker", "CPU s per 1,000 emails: worker", 1),
    Figure("cpu_temporal", "CPU s per 1,000 emails: Temporal server", 1),
    Figure("cpu_postgres", "CPU s per 1,000 emails: PostgreSQL", 1),
    Figure("cpu_redis", "CPU s per 1,000 emails: Redis", 2),
    Figure("cpu_engine", "CPU s per 1,000 emails: the four together", 1),
    Figure("seed_seconds", "seeding and ANALYZE (s, not measured)", 0),
]


def open_zones(zones: list[str], margin: timedelta = timedelta(minutes=30)) -> list[str]:
    """The zones whose 09:00-17:00 is open now and still for ``margin``."""
    now = datetime.now(UTC)
    return [z for z in zones
            if all(clock(9) <= t.astimezone(ZoneInfo(z)).time() < clock(17) for t in (now, now + margin))]


def seeder(prospects: int, emails: int, mailboxes: int, analyze: bool, zones: int = 0) -> Seeder:
    """Bulk SQL: prospects in four classes spread over the table by a fixed
    permutation (so the work is not all on the last pages), their ledger and attempt
    rows, and their open-work columns as the sends would have left them (triggers are off
    while loading, as for any bulk load)."""
    fresh, due = emails // 2, emails - emails // 2
    waiting = prospects // 10
    if fresh + due + waiting > prospects:
        raise SystemExit(f"--emails {emails} and a tenth waiting do not fit in {prospects} prospects")

    async def seed(conn: asyncpg.Connection, prefix: str, smtp_port: int) -> Seeded:
        boxes = [Mailbox(f"{prefix}-mb{i}", mailbox_email(f"{prefix}-mb{i}"), UNCAPPED)
                 for i in range(mailboxes)]
        campaign_id = f"cmp-{secrets.token_hex(5)}"
        await conn.execute("SET session_replication_role = replica")
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, daily_limit,"
                " timezone, window_start, window_end, window_days)"
                " VALUES ($1, $2, 'other', '127.0.0.1', $3, 'none', $4, 'UTC', $5, $6, '{1,2,3,4,5,6,7}')",
                [(b.id, b.email, smtp_port, b.daily_limit, clock.min, clock.max) for b in boxes],
            )
            await conn.execute("INSERT INTO workspaces (id) VALUES ('bench') ON CONFLICT DO NOTHING")
            await conn.execute("INSERT INTO campaigns (id, name, workspace_id) VALUES ($1, 'scale', 'bench')",
                               campaign_id)
            await conn.executemany("INSERT INTO campaign_mailboxes (campaign_id, mailbox_id) VALUES ($1, $2)",
                                   [(campaign_id, b.id) for b in boxes])
            await conn.executemany(
                "INSERT INTO steps (campaign_id, step, subject, body, delay_seconds)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(campaign_id, 1, SUBJECT, BODY, 0),
                 (campaign_id, 2, "Re: " + SUBJECT, BODY, FOLLOW_UP_DELAY)],
            )
            # rank: a permutation of 0..N-1 (7919 is prime, coprime with the sizes used);
            # class by rank: fresh, due for step 2, waiting for step 2, finished. Every
            # seeded send is over 48 h old, so the run's fresh Redis has nothing of the
            # seed to rebuild (limits.store.KEEP): a Redis loss costs reads of the
            # mailboxes' last 48 h of sends, whatever the campaign's size.
            await conn.execute(
                """
                INSERT INTO prospects (campaign_id, email, fields, mailbox_id, next_step, next_due_at)
                SELECT $1, 'p' || g || '@example.com', jsonb_build_object('first_name', 'P' || g),
                       ($2::text[])[1 + g % cardinality($2::text[])],
                       CASE WHEN r < $3 THEN 1 WHEN r < $3 + $4 + $5 THEN 2 END,
                       CASE WHEN r < $3 THEN '-infinity'::timestamptz
                            WHEN r < $3 + $4 THEN now() - interval '1 hour' * (1 + r % 24)
                            WHEN r < $3 + $4 + $5 THEN now() + interval '1 minute' * (60 + r % 1380)
                       END
                FROM (SELECT g, (g::bigint * 7919) % $6 AS r FROM generate_series(0, $6 - 1) g) x
                """,
                campaign_id, [b.id for b in boxes], fresh, due, waiting, prospects,
            )
            await conn.execute(
                """
                INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, attempts,
                                   first_attempt_at, sent_at, finished_at)
                SELECT p.campaign_id, k, p.id, p.mailbox_id,
                       '<' || p.campaign_id || '.' || k || '.' || p.id || '@sender.example.com>', 'sent', 1,
                       t, t, t
                FROM prospects p CROSS JOIN generate_series(1, 2) k
                CROSS JOIN LATERAL (SELECT CASE WHEN p.next_step = 2
                                                THEN p.next_due_at - make_interval(secs => $2)
                                                ELSE now() - interval '30 days' END AS t) at
                WHERE p.campaign_id = $1 AND (p.next_step IS NULL OR (p.next_step = 2 AND k = 1))
                """,
                campaign_id, FOLLOW_UP_DELAY,
            )
            # Every send had its attempt: a months-old ledger has as many attempt rows.
            await conn.execute(
                "INSERT INTO send_attempts (campaign_id, step, prospect_id, attempt, started_at, finished_at,"
                " outcome, code, reply)"
                " SELECT campaign_id, step, prospect_id, 1, sent_at, sent_at, 'sent', 250, '250 ok'"
                " FROM sends WHERE campaign_id = $1", campaign_id,
            )
        if zones:
            await conn.execute("UPDATE prospects SET timezone = ($2::text[])[1 + id % $3]"
                               " WHERE campaign_id = $1", campaign_id, ZONES[:zones], zones)
            await conn.execute("UPDATE campaigns SET schedule = $2::jsonb WHERE id = $1", campaign_id,
                               json.dumps(WORKING_HOURS.as_json()))
        await conn.execute("SET session_replication_role = DEFAULT")
        if analyze:
            await conn.execute("ANALYZE")
        return Seeded(campaign_id, boxes, prospects)

    return seed


def delivered(provider: Provider, expected: list[int]) -> Any:
    """Done once ``expected[0]`` messages (known once seeded) were accepted."""
    first = len(provider.accepted)

    async def done(_client: object, _seeded: Seeded) -> bool:
        while sum(1 for r in provider.accepted[first:] if r.host == HOST and r.acknowledged) < expected[0]:
            await asyncio.sleep(0.25)
        return True

    return done


async def one_run(
    prospects: int, emails: int, mailboxes: int, log_dir: Path | None, analyze: bool, zones: int = 0,
) -> tuple[dict[str, float], dict[str, Any]]:
    started = time.monotonic()
    seed = seeder(prospects, emails, mailboxes, analyze, zones)
    expected = [emails]
    seed_seconds = 0.0

    async def timed(conn: asyncpg.Connection, prefix: str, port: int) -> Seeded:
        nonlocal seed_seconds
        result = await seed(conn, prefix, port)
        seed_seconds = time.monotonic() - started
        if zones:  # only the due prospects of the zones open now (and for half an hour) go
            expected[0] = await conn.fetchval(
                "SELECT count(*) FROM prospects WHERE campaign_id = $1 AND next_due_at <= now()"
                " AND timezone = any($2::text[])", result.campaign_id, open_zones(ZONES[:zones]))
            print(f"  {expected[0]} of {emails} due prospects are in the zones open now", flush=True)
        return result

    async with Provider([HostBehaviour(HOST)]) as provider:
        run = await run_campaign(
            provider, HOST, prospects=prospects, daily_limits=[UNCAPPED] * mailboxes, workers=1,
            settings=NON_BINDING, done=delivered(provider, expected), within=600 + emails / 5,
            log_dir=log_dir, analyze=analyze, seed=timed, count_start=False,
        )
        copies = sum(c - 1 for c in provider.copies().values() if c > 1)
    if copies:
        print(f"  warning: {copies} duplicate copies", file=sys.stderr)
    figures = engine_figures(run, copies)
    engine = ("cpu_worker", "cpu_temporal", "cpu_postgres", "cpu_redis")
    figures["cpu_engine"] = sum(figures[k] for k in engine)
    figures["seed_seconds"] = seed_seconds
    return figures, {**engine_details(run), "prospects": prospects}


def table(sizes: list[int], by_size: dict[int, list[dict[str, float]]]) -> str:
    """A column per campaign size (the median of its runs), then largest / smallest."""
    middle = {n: {f.key: statistics.median(r[f.key] for r in by_size[n]) for f in FIGURES} for n in sizes}
    head = ["figure", *(f"{n:,} prospects" for n in sizes), f"{sizes[-1]:,} / {sizes[0]:,}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in FIGURES:
        cells = [f"{middle[n][f.key]:,.{f.digits}f}" for n in sizes]
        low = middle[sizes[0]][f.key]
        ratio = f"{middle[sizes[-1]][f.key] / low:.2f}" if low else "-"
        lines.append(f"| {f.label} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def summary(figures: dict[str, float]) -> str:
    return (f"{figures['delivered']:.0f} delivered, {figures['sends_per_minute']:.0f}/min;"
            f" per email {figures['pg_rows_read_per_email']:.1f} rows read,"
            f" {figures['pg_xacts_per_email']:.2f} transactions;"
            f" CPU {figures['cpu_engine']:.1f} s per 1,000 (seeded in {figures['seed_seconds']:.0f} s)")
