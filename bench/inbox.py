"""Inbox benchmark: messages classified per second, and reply-landed-to-sequence-stopped
latency with a 5 s poll interval, on a real dovecot and PostgreSQL.

    python -m bench.inbox [--replies 40] [--interval 5] [--classify 20000]

The latency runs the inbox pass (inbox/poll.py, what the inbox-poll schedule's
activity runs) every ``--interval`` seconds in this process: it leaves out the
schedule's own start of a workflow (tens of milliseconds on a local server).
Replies land at random moments; a reply's latency is from its APPEND returning to
the commit of the transaction that marked its prospect ``replied``. Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from config.secrets import generate_entry, key_ring
from inbox.classify import classify
from inbox.poll import PollLimits, poll_all
from store.db import create_pool
from store.migrate import migrate
from store.secret_values import seal
from tests.imap_server import running_imap

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "inbox"
PG = "postgresql://postgres@127.0.0.1:5432"
SENDER = "bench@sender.example.com"


def corpus() -> list[bytes]:
    """The provider fixtures plus replies, auto-replies and unsubscribes, as a mix."""
    found = []
    for path in sorted(FIXTURES.glob("*.eml")):
        text = path.read_text("utf-8").replace("{recipient}", "p@x.example.org")
        found.append(text.replace("{message_id}", "<m@sender.example.com>").replace("\n", "\r\n").encode())
    for n in range(7):
        found.append(
            f"From: p{n}@x.example.org\r\nSubject: Re: hello\r\nMessage-ID: <r{n}@x>\r\n"
            f"In-Reply-To: <m{n}@sender.example.com>\r\nDate: Mon, 30 Nov 2026 06:00:00 +0000\r\n"
            f"{'Auto-Submitted: auto-replied' if n % 3 == 0 else 'X-Mailer: bench'}\r\n\r\n"
            f"{'unsubscribe' if n == 5 else 'Thanks, not now.'}\r\n\r\n> quoted original\r\n".encode()
        )
    return found


def classify_rate(total: int) -> float:
    messages = corpus()
    start = time.perf_counter()
    for n in range(total):
        classify(messages[n % len(messages)])
    return total / (time.perf_counter() - start)


async def seed(pool: asyncpg.Pool, port: int, replies: int, password: str) -> list[tuple[int, str, str]]:
    ring = key_ring(_keys())
    await pool.execute("INSERT INTO workspaces (id) VALUES ('ws')")
    await pool.execute(
        "INSERT INTO mailboxes (id, email, provider, smtp_host, smtp_port, security, daily_limit, timezone,"
        " window_start, window_end, window_days, imap_host, imap_port, imap_security, imap_username,"
        " imap_password) VALUES ('mb', $1, 'other', '127.0.0.1', 25, 'none', 1000, 'UTC', '00:00',"
        " '23:59', '{1,2,3,4,5,6,7}', '127.0.0.1', $2, 'none', $1, $3)",
        SENDER, port, seal(ring, password, table_column="mailboxes.imap_password", mailbox_id="mb"),
    )
    await pool.execute(
        "INSERT INTO campaigns (id, name, workspace_id, state) VALUES ('c', 'b', 'ws', 'running')")
    await pool.execute("INSERT INTO steps (campaign_id, step, subject, body) VALUES ('c', 1, 's', 'b')")
    out = []
    for n in range(replies):
        email = f"p{n}@x{n}.example.org"
        pid = await pool.fetchval(
            "INSERT INTO prospects (campaign_id, email, mailbox_id) VALUES ('c', $1, 'mb') RETURNING id",
            email)
        mid = f"<c.1.{pid}.{secrets.token_hex(12)}@sender.example.com>"
        await pool.execute(
            "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, sent_at)"
            " VALUES ('c', 1, $1, 'mb', $2, 'sent', now())", pid, mid)
        out.append((pid, email, mid))
    return out


_KEYS = generate_entry("bench")  # this run's own key: the IMAP password is stored sealed


def _keys() -> str:
    return _KEYS


async def latency(replies: int, interval: float) -> list[float]:
    name = f"outreach_bench_inbox_{secrets.token_hex(4)}"
    url = f"{PG}/{name}"
    await migrate(url)
    pool = await create_pool(url, max_size=5)
    landed: dict[int, float] = {}
    try:
        with running_imap({SENDER: "pw"}) as imap:
            prospects = await seed(pool, imap.port, replies, "pw")
            limits = PollLimits(match_window=timedelta(days=90), timeout=10)
            ring = key_ring(_keys())
            stop = asyncio.Event()

            async def poller() -> None:
                while not stop.is_set():
                    await poll_all(pool, ring, limits)
                    try:
                        await asyncio.wait_for(stop.wait(), interval)
                    except TimeoutError:
                        pass

            async def replier() -> None:
                for pid, email, mid in prospects:
                    await asyncio.sleep(random.uniform(0, 2 * interval / 3))
                    raw = (f"From: {email}\r\nSubject: Re: hi\r\nMessage-ID: <r{pid}@x>\r\n"
                           f"In-Reply-To: {mid}\r\n\r\nno thanks\r\n").encode()
                    await asyncio.to_thread(imap.append, SENDER, raw)
                    landed[pid] = time.time()

            task = asyncio.create_task(poller())
            await replier()
            deadline = time.monotonic() + 4 * interval + 30
            while time.monotonic() < deadline:
                done = await pool.fetchval("SELECT count(*) FROM prospects WHERE status = 'replied'")
                if done == replies:
                    break
                await asyncio.sleep(0.2)
            stop.set()
            await task
            rows = await pool.fetch(
                "SELECT prospect_id, extract(epoch FROM recorded_at) AS at FROM inbound_messages"
                " WHERE class = 'reply'")
            return sorted(max(0.0, float(r["at"]) - landed[r["prospect_id"]]) for r in rows)
    finally:
        await pool.close()
        admin = await asyncpg.connect(f"{PG}/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replies", type=int, default=40)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--classify", type=int, default=20_000)
    args = parser.parse_args()
    rate = classify_rate(args.classify)
    print(f"classified: {rate:,.0f} messages/s ({args.classify} messages, one core)")
    waits = asyncio.run(latency(args.replies, args.interval))
    print(f"reply landed -> sequence stopped, poll every {args.interval:g} s, {len(waits)}/{args.replies}"
          f" replies: p50 {statistics.median(waits):.2f} s, p99 {percentile(waits, 0.99):.2f} s,"
          f" max {max(waits):.2f} s ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")


if __name__ == "__main__":
    main()
