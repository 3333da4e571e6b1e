"""Changing a running campaign's steps (docs/decisions/0040): subjects, bodies, delays,
variants and winner rules (docs/decisions/0052), for every send not made yet; the
number of steps stays. A variant the file no longer has is retired: it takes no new
prospect, and its sends and figures stay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from specs import Problem, SpecError
from specs.campaign_update import LoadedUpdate
from specs.campaigns import StepSpec, template_problems
from specs.prospects import Prospect
from store import UnknownRecord, variants
from store.campaign_controls import FINISHED, CampaignFinished


@dataclass(frozen=True)
class StepsUpdated:
    campaign_id: str
    changed: list[int]  # step numbers whose delay, variants (subject, body, weight) or rule changed
    delays: list[int]  # every step's delay in seconds, as now stored
    state: str  # the campaign's
    schedule_changed: bool = False  # the recipient's window (decision 0051)


async def update_steps(pool: asyncpg.Pool, campaign_id: str, loaded: LoadedUpdate) -> StepsUpdated:
    """Store the file's steps, or nothing: refused (SpecError) when the number of steps
    differs, the file names another workspace or other mailboxes, or a template uses
    a field an active prospect lacks (each named); CampaignFinished when finished.

    The campaign's row is locked, so prospects added meanwhile are checked too.
    """
    spec, source = loaded.spec, loaded.source
    async with pool.acquire() as conn, conn.transaction():
        campaign = await conn.fetchrow(
            "SELECT state, workspace_id, schedule FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id
        )
        if campaign is None:
            raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
        if campaign["state"] in FINISHED:
            raise CampaignFinished(f"campaign {campaign_id} is {campaign['state']}: nothing left to update")
        stored = await conn.fetch(
            "SELECT step, subject, body, delay_seconds, delay_business_days FROM steps"
            " WHERE campaign_id = $1 ORDER BY step",
            campaign_id,
        )
        mailboxes = {r["mailbox_id"] for r in await conn.fetch(
            "SELECT mailbox_id FROM campaign_mailboxes WHERE campaign_id = $1", campaign_id)}
        problems = _shape_problems(spec.steps, stored, spec.workspace, campaign["workspace_id"],
                                   set(spec.mailboxes), mailboxes, source)
        if problems:
            raise SpecError(problems)
        prospects = [
            Prospect(r["email"], dict(r["fields"]), f"prospect {r['email']} (id {r['id']})")
            for r in await conn.fetch(
                "SELECT id, email, fields FROM prospects WHERE campaign_id = $1 AND status = 'active'"
                " ORDER BY id", campaign_id,
            )
        ]
        problems = template_problems(spec.steps, prospects, None, "", source, loaded.bounds)
        if problems:
            raise SpecError(problems)
        before = await _signatures(conn, campaign_id)
        await variants.keep_what_was_sent(conn, campaign_id)
        await conn.executemany(
            "UPDATE steps SET subject = $3, body = $4, delay_seconds = $5, delay_business_days = $6"
            " WHERE campaign_id = $1 AND step = $2",
            [(campaign_id, n, *variants.legacy_subject_body(spec.steps, n), s.delay_seconds,
              s.delay_business_days) for n, s in enumerate(spec.steps, 1)],
        )
        await variants.store_variants(conn, campaign_id, spec.steps)
        await _forget_retired_winners(conn, campaign_id)
        after = await _signatures(conn, campaign_id)
        changed = [n for n in sorted(after) if after[n] != before.get(n)]
        schedule = spec.schedule.schedule().as_json() if spec.schedule else None
        schedule_changed = schedule != campaign["schedule"]
        business_days_changed = any(s.delay_business_days != old["delay_business_days"]
                                    for s, old in zip(spec.steps, stored, strict=True))
        if schedule_changed or business_days_changed:
            await conn.execute("UPDATE campaigns SET schedule = $2 WHERE id = $1", campaign_id, schedule)
            await replan_open_work(conn, campaign_id)
    return StepsUpdated(campaign_id, changed, [s.delay_seconds for s in spec.steps], campaign["state"],
                        schedule_changed)


async def replan_open_work(conn: asyncpg.Connection | PoolConnectionProxy, campaign_id: str) -> int:
    """After the schedule changed: every prospect waiting for a step is due again at its
    plain due time (step 1 at once; a follow-up its delay after the step before), or at
    the latest postponement of that step by an out-of-office reply if later (decision
    0053), and the claim plans it anew under the new schedule (decision 0051); returns
    how many."""
    status = await conn.execute(
        "UPDATE prospects p SET next_due_at = greatest(coalesce(step_due_at(p.campaign_id, p.next_step,"
        " (SELECT s.sent_at FROM sends s WHERE s.campaign_id = p.campaign_id AND s.step = p.next_step - 1"
        "  AND s.prospect_id = p.id)), '-infinity'),"
        " (SELECT max(pp.due_after) FROM postponements pp WHERE pp.prospect_id = p.id"
        "  AND pp.step = p.next_step AND pp.due_after < 'infinity'))"
        " WHERE p.campaign_id = $1 AND p.status = 'active' AND p.next_step IS NOT NULL", campaign_id)
    return int(status.rsplit(" ", 1)[1])


def _shape_problems(
    steps: list[StepSpec], stored: list[asyncpg.Record], workspace: str, stored_workspace: str,
    mailboxes: set[str], stored_mailboxes: set[str], source: str,
) -> list[Problem]:
    problems = []
    if len(steps) != len(stored):
        problems.append(Problem(source, "steps", f"has {len(steps)} step(s), the campaign {len(stored)}:"
                                " steps cannot be added or removed once a campaign exists"))
    if workspace != stored_workspace:
        problems.append(Problem(source, "workspace", f"is {workspace!r}, the campaign's is"
                                f" {stored_workspace!r}: an update changes only the steps"))
    if mailboxes != stored_mailboxes:
        problems.append(Problem(source, "mailboxes", f"{', '.join(sorted(mailboxes))} differ from the"
                                f" campaign's {', '.join(sorted(stored_mailboxes))}: an update changes"
                                " only the steps"))
    return problems


async def _signatures(conn: variants.Conn, campaign_id: str) -> dict[int, tuple[Any, ...]]:
    """Per step, what a send of it depends on: delay, winner rule, the variants taking
    prospects. A campaign from before variants is its steps' own subject and body."""
    steps = await conn.fetch(
        "SELECT step, subject, body, delay_seconds, delay_business_days, winner_metric, winner_min_sends,"
        " winner_confidence FROM steps WHERE campaign_id = $1", campaign_id)
    # A threading subject (NULL) reads as the "Re: ..." its step row holds, as a step
    # stored before variants did: the same send either way.
    rows = await conn.fetch(
        "SELECT v.step, v.name, v.weight, coalesce(v.subject, st.subject) AS subject, v.body"
        " FROM step_variants v JOIN steps st ON st.campaign_id = v.campaign_id AND st.step = v.step"
        " WHERE v.campaign_id = $1 AND v.retired_at IS NULL ORDER BY v.step, v.position", campaign_id)
    found: dict[int, list[tuple[Any, ...]]] = {}
    for r in rows:
        found.setdefault(r["step"], []).append(tuple(r)[1:])
    rule = ("winner_metric", "winner_min_sends", "winner_confidence")
    return {
        st["step"]: (st["delay_seconds"], st["delay_business_days"], *(st[k] for k in rule),
                     tuple(found.get(st["step"], [("", 1.0, st["subject"], st["body"])])))
        for st in steps
    }


async def _forget_retired_winners(conn: variants.Conn, campaign_id: str) -> None:
    """A winner the file retired takes no prospects: its step goes back to its weights
    and its rule (logged as a reset, with why)."""
    for r in await conn.fetch(
        "SELECT st.step, st.winner FROM steps st JOIN step_variants v ON v.campaign_id = st.campaign_id"
        " AND v.step = st.step AND v.name = st.winner WHERE st.campaign_id = $1 AND v.retired_at IS NOT NULL",
        campaign_id,
    ):
        await variants.record_winner(conn, campaign_id, r["step"], None, "operator",
                                     {"reason": f"winner {r['winner']!r} retired by campaigns update"})
