"""A campaign's step variants in PostgreSQL (docs/decisions/0052): written at import and
by updates, read by the claim (which variant a new send gets) and by the operator's
pick and reset of a winner.

A step's variants live in ``step_variants``; a campaign created before them has none,
and its sends are the implicit variant ''. A retired variant takes no new prospects and
keeps its sends and figures; a winner (``steps.winner``) takes every new prospect of
its step while it is not retired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from specs.campaigns import REPLY_PREFIX, StepSpec, threads
from store import StoreError, UnknownRecord
from variants import spintax
from variants.choice import Weighted, choose_variant

Conn = asyncpg.Connection | asyncpg.Pool | PoolConnectionProxy


@dataclass(frozen=True)
class StepChoice:
    """What a claim needs to give a new send its variant."""

    variants: list[Weighted]  # not retired, in the file's order
    winner: str | None  # while not retired

    def choose(self, key: bytes, campaign_id: str, step: int, prospect_id: int) -> str:
        if not self.variants:
            return ""  # a campaign from before variants: the implicit one
        if self.winner is not None:
            return self.winner
        return choose_variant(key, campaign_id, step, prospect_id, self.variants)


async def step_choice(conn: Conn, campaign_id: str, step: int) -> StepChoice:
    rows = await conn.fetch(
        "SELECT v.name, v.weight, st.winner FROM steps st JOIN step_variants v USING (campaign_id, step)"
        " WHERE st.campaign_id = $1 AND st.step = $2 AND v.retired_at IS NULL ORDER BY v.position",
        campaign_id, step,
    )
    names = [r["name"] for r in rows]
    winner = rows[0]["winner"] if rows else None
    return StepChoice([Weighted(r["name"], r["weight"]) for r in rows], winner if winner in names else None)


def _variant_rows(campaign_id: str, steps: Sequence[StepSpec]) -> list[tuple[Any, ...]]:
    return [
        (campaign_id, n, v.name, position, v.weight,
         None if threads(list(steps), n, v) else v.subject, v.body)
        for n, step in enumerate(steps, 1)
        for position, v in enumerate(step.all_variants())
    ]


def legacy_subject_body(steps: Sequence[StepSpec], n: int) -> tuple[str, str]:
    """``steps.subject`` and ``body`` (NOT NULL, read by campaigns from before variants):
    the step's first variant, a threading follow-up as "Re: <step 1's first subject>"."""
    first = steps[n - 1].all_variants()[0]
    if first.subject is not None and not threads(list(steps), n, first):
        return first.subject, first.body
    return REPLY_PREFIX + (steps[0].all_variants()[0].subject or ""), first.body


async def store_variants(conn: Conn, campaign_id: str, steps: Sequence[StepSpec]) -> None:
    """Write every step's variants and winner rule as the file has them: new names added,
    known ones changed (and taken back if they were retired), the rest retired."""
    rows = _variant_rows(campaign_id, steps)
    await conn.executemany(
        "INSERT INTO step_variants (campaign_id, step, name, position, weight, subject, body)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (campaign_id, step, name) DO UPDATE"
        " SET position = $4, weight = $5, subject = $6, body = $7, retired_at = NULL",
        rows,
    )
    await conn.execute(
        "UPDATE step_variants v SET retired_at = now() WHERE campaign_id = $1 AND retired_at IS NULL"
        " AND (step, name) NOT IN (SELECT * FROM unnest($2::int[], $3::text[]))",
        campaign_id, [r[1] for r in rows], [r[2] for r in rows],
    )
    await conn.executemany(
        "UPDATE steps SET winner_metric = $3, winner_min_sends = $4, winner_confidence = $5"
        " WHERE campaign_id = $1 AND step = $2",
        [(campaign_id, n, *((s.winner.metric, s.winner.min_sends, s.winner.confidence) if s.winner
                            else (None, None, None)))
         for n, s in enumerate(steps, 1)],
    )


async def keep_what_was_sent(conn: Conn, campaign_id: str) -> None:
    """Before a campaign from before variants takes its first variants: its steps as they
    were, as the implicit variant '' (spintax escaped: they were written without it). Its
    sends (variant '') and the follow-ups that thread on its step 1 then still read the
    texts they went with, whatever the file makes of the steps."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM step_variants WHERE campaign_id = $1)", campaign_id):
        return
    rows = await conn.fetch("SELECT step, subject, body FROM steps WHERE campaign_id = $1", campaign_id)
    await conn.executemany(
        "INSERT INTO step_variants (campaign_id, step, name, position, weight, subject, body)"
        " VALUES ($1, $2, '', 0, 1, $3, $4)",
        [(campaign_id, r["step"], spintax.escape(r["subject"]), spintax.escape(r["body"])) for r in rows],
    )


async def record_winner(
    conn: Conn, campaign_id: str, step: int, winner: str | None, by: str, figures: dict[str, Any],
) -> bool:
    """Set (or with None, clear) a step's winner, and log the decision with its figures.
    The rule's decision lands only on a step still undecided: an operator's pick made
    while the rule was counting stands. Whether it was recorded."""
    recorded: bool = await conn.fetchval(
        "WITH decided AS ("
        " UPDATE steps SET winner = $3, winner_by = CASE WHEN $3::text IS NULL THEN NULL ELSE $4 END,"
        " winner_at = CASE WHEN $3::text IS NULL THEN NULL ELSE now() END,"
        " winner_figures = CASE WHEN $3::text IS NULL THEN NULL ELSE $5::jsonb END"
        " WHERE campaign_id = $1 AND step = $2 AND ($4 <> 'rule' OR winner IS NULL) RETURNING 1),"
        " logged AS (INSERT INTO step_winner_decisions (campaign_id, step, winner, decided_by, figures)"
        " SELECT $1, $2, $3, $4, $5::jsonb FROM decided RETURNING 1)"
        " SELECT EXISTS (SELECT 1 FROM logged)",
        campaign_id, step, winner, by, figures,
    )
    return recorded


async def pick_winner(pool: asyncpg.Pool, campaign_id: str, step: int, name: str | None) -> None:
    """The operator's decision (``name``), or with None the undoing of any decision."""
    async with pool.acquire() as conn, conn.transaction():
        names = await conn.fetch(
            "SELECT v.name, v.retired_at FROM steps st LEFT JOIN step_variants v USING (campaign_id, step)"
            " WHERE st.campaign_id = $1 AND st.step = $2 FOR UPDATE OF st", campaign_id, step)
        if not names:
            raise UnknownRecord(f"campaign {campaign_id!r} has no step {step}")
        active = [r["name"] for r in names if r["name"] is not None and r["retired_at"] is None]
        if name is not None and name not in active:
            raise StoreError(f"step {step} has no variant {name!r} taking prospects"
                             f" (it has: {', '.join(repr(n) for n in active) or 'none'})")
        await record_winner(conn, campaign_id, step, name, "operator", {})


@dataclass(frozen=True)
class RuleToJudge:
    campaign_id: str
    step: int
    metric: str
    min_sends: int
    confidence: float
    variants: list[str]  # taking prospects, in the file's order


async def rules_to_judge(pool: asyncpg.Pool) -> list[RuleToJudge]:
    """Steps of running campaigns with a winner rule and no winner yet."""
    rows = await pool.fetch(
        "SELECT st.campaign_id, st.step, st.winner_metric, st.winner_min_sends, st.winner_confidence,"
        " array_agg(v.name ORDER BY v.position) AS names"
        " FROM steps st JOIN campaigns c ON c.id = st.campaign_id"
        " JOIN step_variants v ON v.campaign_id = st.campaign_id AND v.step = st.step"
        "  AND v.retired_at IS NULL"
        " WHERE c.state = 'running' AND st.winner_metric IS NOT NULL AND st.winner IS NULL"
        " GROUP BY st.campaign_id, st.step ORDER BY st.campaign_id, st.step",
    )
    return [RuleToJudge(r["campaign_id"], r["step"], r["winner_metric"], r["winner_min_sends"],
                        r["winner_confidence"], list(r["names"])) for r in rows]


async def campaigns_with_variants(pool: asyncpg.Pool) -> list[str]:
    """Running or paused campaigns whose steps have named variants (not only the implicit '')."""
    rows = await pool.fetch(
        "SELECT c.id FROM campaigns c WHERE c.state IN ('running', 'paused') AND EXISTS"
        " (SELECT 1 FROM step_variants v WHERE v.campaign_id = c.id AND v.name <> '') ORDER BY c.id")
    return [r["id"] for r in rows]
