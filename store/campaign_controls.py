"""What an operator changes on a campaign while it runs: list campaigns, add
prospects, close an open campaign, stop a prospect, and the check that lets a
campaign complete only when nothing is left to send (docs/decisions/0039)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from specs.campaigns import StepSpec
from specs.prospects import Prospect
from specs.variants import VariantSpec
from store import StoreError, UnknownRecord, suppressions
from store.importer import insert_prospects
from store.ledger import FINAL_STATES, OPEN_STATES

FINISHED = ("completed", "cancelled")
_FINAL = "(" + ", ".join(f"'{s}'" for s in FINAL_STATES) + ")"
_OPEN = "(" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"


class CampaignFinished(StoreError):
    """A completed or cancelled campaign: nothing can be added to it."""


@dataclass(frozen=True)
class CampaignSummary:
    id: str
    name: str
    workspace: str
    state: str
    open: bool  # waits for prospects until closed
    prospects: int
    sends_done: int  # sends in a final state
    sends_total: int  # prospects x steps, as `campaigns status` counts progress

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "workspace": self.workspace, "state": self.state,
                "open": self.open, "prospects": self.prospects,
                "progress": {"done": self.sends_done, "total": self.sends_total}}


async def list_campaigns(pool: asyncpg.Pool, state: str | None = None) -> list[CampaignSummary]:
    rows = await pool.fetch(
        f"""
        SELECT c.id, c.name, c.workspace_id, c.state, c.is_open AND c.closed_at IS NULL AS open,
               (SELECT count(*) FROM steps st WHERE st.campaign_id = c.id) AS steps,
               (SELECT count(*) FROM prospects p WHERE p.campaign_id = c.id) AS prospects,
               (SELECT count(*) FROM sends s WHERE s.campaign_id = c.id AND s.state IN {_FINAL}) AS done
        FROM campaigns c WHERE $1::text IS NULL OR c.state = $1 ORDER BY c.created_at, c.id
        """,
        state,
    )
    return [
        CampaignSummary(r["id"], r["name"], r["workspace_id"], r["state"], r["open"], r["prospects"],
                        r["done"], r["prospects"] * r["steps"])
        for r in rows
    ]


async def stored_steps(pool: asyncpg.Pool, campaign_id: str) -> list[StepSpec]:
    """A campaign's steps as stored (validated when it was created or updated), with the
    variants that still take prospects (docs/decisions/0052)."""
    rows = await pool.fetch(
        "SELECT st.step, st.subject, st.body, st.delay_seconds, coalesce(array_agg(v.name ORDER BY"
        " v.position) FILTER (WHERE v.name IS NOT NULL), '{}') AS names, array_agg(v.subject ORDER BY"
        " v.position) AS subjects, array_agg(v.body ORDER BY v.position) AS bodies"
        " FROM steps st LEFT JOIN step_variants v ON v.campaign_id = st.campaign_id AND v.step = st.step"
        " AND v.retired_at IS NULL WHERE st.campaign_id = $1"
        " GROUP BY st.campaign_id, st.step ORDER BY st.step",
        campaign_id,
    )
    if not rows:
        raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
    return [_stored_step(r) for r in rows]


def _stored_step(r: asyncpg.Record) -> StepSpec:
    if not r["names"]:  # a campaign from before variants
        return StepSpec.model_construct(subject=r["subject"], body=r["body"], variants=None,
                                        winner=None, delay_seconds=r["delay_seconds"])
    found = [VariantSpec.model_construct(name=n, weight=1.0, subject=s, body=b)
             for n, s, b in zip(r["names"], r["subjects"], r["bodies"], strict=True)]
    return StepSpec.model_construct(subject=None, body=None, variants=found, winner=None,
                                    delay_seconds=r["delay_seconds"])


@dataclass(frozen=True)
class ProspectsAdded:
    campaign_id: str
    state: str  # the campaign's, when they were added
    added: int
    duplicates: int  # already in the campaign
    active_elsewhere: int  # dedupe workspace: active in another running campaign
    suppressed: int  # on the do-not-contact list: marked 'suppressed', never written to


async def add_prospects(
    pool: asyncpg.Pool, campaign_id: str, prospects: Sequence[Prospect], dedupe: str | None = None
) -> ProspectsAdded:
    """Add prospects to a campaign that has not finished, in one transaction.

    The campaign's row is locked first: concurrent additions take turns (no
    address twice, counts exact), and the check that completes a campaign
    (``finish``) sees these prospects, or this sees the campaign completed.
    ``dedupe`` ("workspace"/"campaign") overrides the campaign file's setting.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, workspace_id, dedupe FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id
        )
        if row is None:
            raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
        if row["state"] in FINISHED:
            raise CampaignFinished(f"campaign {campaign_id} is {row['state']}: no prospect can be added"
                                   " (create a new campaign)")
        mailbox_ids = [r["mailbox_id"] for r in await conn.fetch(
            "SELECT cm.mailbox_id FROM campaign_mailboxes cm JOIN mailboxes m ON m.id = cm.mailbox_id"
            " WHERE cm.campaign_id = $1 AND m.retired_at IS NULL ORDER BY cm.mailbox_id",
            campaign_id,
        )]
        if not mailbox_ids:
            raise StoreError(f"campaign {campaign_id} has no mailbox left (all retired)")
        inserted = await insert_prospects(
            conn, campaign_id, row["workspace_id"], prospects, mailbox_ids,
            dedupe_workspace=(dedupe or row["dedupe"]) == "workspace",
        )
        await suppressions.mark_suppressed_prospects(conn, campaign_id, row["workspace_id"])
        suppressed = await conn.fetchval(  # of those added (earlier ones may have been marked too)
            "SELECT count(*) FROM prospects WHERE campaign_id = $1 AND status = 'suppressed'"
            " AND lower(email) = any($2::text[])",
            campaign_id, inserted.addresses,
        )
    return ProspectsAdded(campaign_id, row["state"], inserted.added, inserted.duplicates,
                          inserted.active_elsewhere, suppressed)


async def open_for_prospects(pool: asyncpg.Pool, campaign_id: str) -> bool:
    """Whether the campaign waits for prospects (created open, not closed yet)."""
    value = await pool.fetchval(
        "SELECT is_open AND closed_at IS NULL FROM campaigns WHERE id = $1", campaign_id
    )
    if value is None:
        raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
    return bool(value)


async def close(pool: asyncpg.Pool, campaign_id: str) -> None:
    """Close an open campaign: it completes once its prospects are through."""
    row = await pool.fetchrow(
        "UPDATE campaigns SET closed_at = coalesce(closed_at, now()) WHERE id = $1"
        " RETURNING is_open, state",
        campaign_id,
    )
    if row is None:
        raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
    if not row["is_open"]:
        raise StoreError(f"campaign {campaign_id} was not created open: it completes on its own")


# Some active prospect still has a step to go: a send not made (or not final) for
# a step whose step before reached it.
_WORK_LEFT = f"""
SELECT EXISTS (
    SELECT 1 FROM prospects p
    JOIN steps st ON st.campaign_id = p.campaign_id
    LEFT JOIN sends prev ON prev.campaign_id = p.campaign_id AND prev.step = st.step - 1
                        AND prev.prospect_id = p.id
    LEFT JOIN sends cur ON cur.campaign_id = p.campaign_id AND cur.step = st.step
                       AND cur.prospect_id = p.id
    WHERE p.campaign_id = $1 AND p.status = 'active'
      AND (st.step = 1 OR prev.state = 'sent')
      AND (cur.state IS NULL OR cur.state IN {_OPEN})
)
"""


async def finish(pool: asyncpg.Pool, campaign_id: str) -> bool:
    """Mark the campaign completed unless a prospect still has a step to go (added
    while its steps were ending); return whether it is finished.

    Under the campaign's row lock, so an addition committed before is seen here,
    and one that comes after finds the campaign completed.
    """
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchval("SELECT state FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id)
        if state is None:
            raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
        if state in FINISHED:
            return True
        if await conn.fetchval(_WORK_LEFT, campaign_id):
            return False
        await conn.execute(
            "UPDATE campaigns SET state = 'completed', finished_at = now() WHERE id = $1", campaign_id
        )
    return True


@dataclass(frozen=True)
class StoppedProspect:
    prospect_id: int
    email: str
    skipped: int  # its queued sends, now skipped


async def stop_prospect(
    pool: asyncpg.Pool, campaign_id: str, prospect: str, reason: str | None = None
) -> StoppedProspect:
    """End one prospect's sequence: state 'stopped', its queued sends 'skipped'.

    ``prospect`` is its id or its address. A send already in flight stops at the
    check right before DATA (store.ledger.mark_data_started), which sends only
    to active prospects.
    """
    by_id = int(prospect) if prospect.isdigit() else None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT id, email, status FROM prospects WHERE campaign_id = $1"
            " AND (id = $2 OR lower(email) = lower($3)) FOR UPDATE",
            campaign_id, by_id, prospect,
        )
        if row is None:
            raise UnknownRecord(f"campaign {campaign_id!r} has no prospect {prospect!r}")
        if row["status"] != "active":
            raise StoreError(f"prospect {row['email']} is already {row['status']}")
        await conn.execute(
            "UPDATE prospects SET status = 'stopped', stop_reason = $2 WHERE id = $1", row["id"], reason
        )
        status = await conn.execute(
            "UPDATE sends SET state = 'skipped', last_reply = $3, updated_at = now(), finished_at = now()"
            " WHERE campaign_id = $1 AND prospect_id = $2 AND state IN ('queued', 'soft_bounced')"
            " AND data_started_at IS NULL",
            campaign_id, row["id"], f"prospect stopped: {reason}" if reason else "prospect stopped",
        )
    return StoppedProspect(row["id"], row["email"], int(status.rsplit(" ", 1)[1]))
