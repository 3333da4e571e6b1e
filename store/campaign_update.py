"""Changing a running campaign's steps (docs/decisions/0040): subjects, bodies and
delays, for every send not made yet; the number of steps stays."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

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


async def update_steps(pool: asyncpg.Pool, campaign_id: str, loaded: LoadedUpdate) -> StepsUpdated:
    """Store the file's steps, or nothing: refused (SpecError) when the number of steps
    differs, the file names another workspace or other mailboxes, or a template uses
    a field an active prospect lacks (each named); CampaignFinished when finished.

    The campaign's row is locked, so prospects added meanwhile are checked too.
    """
    spec, source = loaded.spec, loaded.source
    async with pool.acquire() as conn, conn.transaction():
        campaign = await conn.fetchrow(
            "SELECT state, workspace_id FROM campaigns WHERE id = $1 FOR UPDATE", campaign_id
        )
        if campaign is None:
            raise UnknownRecord(f"campaign {campaign_id!r} does not exist")
        if campaign["state"] in FINISHED:
            raise CampaignFinished(f"campaign {campaign_id} is {campaign['state']}: nothing left to update")
        stored = await conn.fetch(
            "SELECT step, subject, body, delay_seconds FROM steps WHERE campaign_id = $1 ORDER BY step",
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
        new = [(n, s.subject, s.body, s.delay_seconds) for n, s in enumerate(spec.steps, 1)]
        changed = [row[0] for row, old in zip(new, stored, strict=True) if row != tuple(old)]
        await conn.executemany(
            "UPDATE steps SET subject = $3, body = $4, delay_seconds = $5"
            " WHERE campaign_id = $1 AND step = $2",
            [(campaign_id, *new[n - 1]) for n in changed],
        )
    return StepsUpdated(campaign_id, changed, [s.delay_seconds for s in spec.steps], campaign["state"])


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
