"""Changing a running campaign's steps (docs/decisions/0040): subjects, bodies and
delays, for every send not made yet; the number of steps stays."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from specs import Problem, SpecError
from specs.campaign_update import LoadedUpdate
from specs.campaigns import StepSpec, template_problems
from specs.prospects import Prospect
from store import UnknownRecord
from store.campaign_controls import FINISHED, CampaignFinished


@dataclass(frozen=True)
class StepsUpdated:
    campaign_id: str
    changed: list[int]  # step numbers whose subject, body or delay changed
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
        new = [(n, s.subject, s.body, s.delay_seconds, s.delay_business_days)
               for n, s in enumerate(spec.steps, 1)]
        changed = [row[0] for row, old in zip(new, stored, strict=True) if row != tuple(old)]
        await conn.executemany(
            "UPDATE steps SET subject = $3, body = $4, delay_seconds = $5, delay_business_days = $6"
            " WHERE campaign_id = $1 AND step = $2",
            [(campaign_id, *new[n - 1]) for n in changed],
        )
        schedule = spec.schedule.schedule().as_json() if spec.schedule else None
        schedule_changed = schedule != campaign["schedule"]
        if schedule_changed or any(new[n - 1][4] != stored[n - 1]["delay_business_days"] for n in changed):
            await conn.execute("UPDATE campaigns SET schedule = $2 WHERE id = $1", campaign_id, schedule)
            await replan_open_work(conn, campaign_id)
    return StepsUpdated(campaign_id, changed, [s.delay_seconds for s in spec.steps], campaign["state"],
                        schedule_changed)


async def replan_open_work(conn: asyncpg.Connection | PoolConnectionProxy, campaign_id: str) -> int:
    """After the schedule changed: every prospect waiting for a step is due again at its
    plain due time (step 1 at once; a follow-up its delay after the step before), and the
    claim plans it anew under the new schedule (decision 0051); returns how many."""
    status = await conn.execute(
        "UPDATE prospects p SET next_due_at = coalesce(step_due_at(p.campaign_id, p.next_step,"
        " (SELECT s.sent_at FROM sends s WHERE s.campaign_id = p.campaign_id AND s.step = p.next_step - 1"
        "  AND s.prospect_id = p.id)), '-infinity')"
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
