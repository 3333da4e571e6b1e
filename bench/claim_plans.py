"""The claim's query plans at 10k, 100k and 1M prospects, before and after ANALYZE
(docs/decisions/0037): for each size a fresh database seeded like `python -m bench
scale` (bench/scale.py), then EXPLAIN (ANALYZE, BUFFERS) of the claim, the next-due
probe and the open count for both steps, printed as markdown.

    .venv/bin/python -m bench.claim_plans --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench.scale import seeder
from bench.stack import BenchDatabase
from store.open_work import CLAIM, NEXT_DUE, OPEN_COUNT


def _rows_read(node: dict[str, Any]) -> int:
    own = 0
    if "Relation Name" in node:
        read = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        own = read * node.get("Actual Loops", 1)
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


async def _explain(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[str, int, int, float]:
    """(plan text, rows read by scans, shared buffers touched, ms)."""
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    doc = (json.loads(raw) if isinstance(raw, str) else raw)[0]
    lines = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {sql}", *args)
    text = "\n".join(r[0] for r in lines)
    top = doc["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return text, _rows_read(top), buffers, doc["Execution Time"]


async def plans_for(size: int, emails: int) -> list[str]:
    db = BenchDatabase()
    await db.create()
    out = []
    try:
        conn = await asyncpg.connect(db.url)
        try:
            started = time.monotonic()
            seeded = await seeder(size, emails, 20, analyze=False)(conn, "plans", 2525)
            out.append(f"### {size:,} prospects (seeded in {time.monotonic() - started:.0f} s)\n")
            cid, now = seeded.campaign_id, datetime.now(UTC)
            for stats in ("without statistics (just loaded, never analyzed)", "after ANALYZE"):
                if stats == "after ANALYZE":
                    await conn.execute("ANALYZE")
                out.append(f"#### {stats}\n")
                out.append("| query | step | rows read | buffers | ms |\n|---|---|---|---|---|")
                texts = []
                for step in (1, 2):
                    for name, sql, args in (
                        ("claim (3 per mailbox)", CLAIM, (cid, step, now, [], [], 3)),
                        ("next due", NEXT_DUE, (cid, step, now)),
                        ("open count (up to 51)", OPEN_COUNT, (cid, step, 51)),
                    ):
                        text, rows, buffers, ms = await _explain(conn, sql, *args)
                        out.append(f"| {name} | {step} | {rows} | {buffers} | {ms:.2f} |")
                        if name.startswith("claim"):
                            texts.append(f"claim, step {step}:\n```\n{text}\n```")
                out.append("")
                out.extend(texts)
                out.append("")
        finally:
            await conn.close()
    finally:
        await db.drop()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.claim_plans", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--emails", type=int, default=5000, help="prospects due (half step 1, half step 2)")
    args = parser.parse_args()
    for size in (int(n) for n in args.sizes.split(",")):
        print("\n".join(await plans_for(size, args.emails)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
