"""OutreachClient: start, pause, resume and cancel campaigns; pause and resume mailboxes;
read their status; keep the do-not-contact list. The CLI is a thin layer over this."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities.models import MailboxInput
from client import ClientError, InvalidState, replay
from client.campaign_controls import CampaignControls
from client.replay import DEFAULT_LIMIT, Progress, ReplayReport
from config.names import (
    CAMPAIGN_ID_ATTR,
    MAILBOX_IDS_ATTR,
    campaign_workflow_id,
    mailbox_workflow_id,
    send_task_queue,
    step_workflow_id,
)
from config.secrets import key_ring
from config.settings import Settings
from mail.sender_dns import SenderReport, TxtLookup
from specs.suppressions import read_suppressions_csv
from store import (
    StoreError,
    UnknownRecord,
    accounts,
    campaign_controls,
    campaigns,
    erasure,
    sender_dns,
    suppressions,
)
from store.db import create_pool
from store.erasure import Erasure
from store.suppressions import Scope, Suppression
from workers.main import connect_temporal
from workflows.campaign import CampaignWorkflow
from workflows.mailbox import MailboxWorkflow
from workflows.models import CampaignInput, MailboxStatus, StepTuning

# How long a cancel may take before the steps' latest runs are cancelled directly
# (see OutreachClient._cancel_steps_directly).
_STEP_CANCEL_AFTER = 10.0

_ACK_TIMEOUT = 30.0  # how long a pause may take to be in force before we say so


def tuning_from(settings: Settings) -> StepTuning:
    return StepTuning(
        window=settings.step_window,
        sends_per_run=settings.step_sends_per_run,
        per_mailbox=settings.step_per_mailbox,
        send_start_to_close=timedelta(seconds=settings.send_start_to_close_seconds),
        send_schedule_to_close=timedelta(seconds=settings.send_schedule_to_close_seconds),
        send_first_retry=timedelta(seconds=settings.send_first_retry_seconds),
        paused_recheck=timedelta(seconds=settings.paused_recheck_seconds),
        min_sleep=timedelta(seconds=settings.step_min_sleep_seconds),
        stall_check=timedelta(seconds=settings.step_stall_check_seconds),
    )


class OutreachClient(CampaignControls):
    def __init__(self, settings: Settings, temporal: Client, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.temporal = temporal
        self.pool = pool
        self._queue = send_task_queue(settings.task_queue)

    @classmethod
    async def connect(cls, settings: Settings) -> OutreachClient:
        try:
            temporal = await connect_temporal(settings)
        except RuntimeError as exc:  # temporalio reports a failed connect this way
            raise ClientError(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from exc
        pool = await create_pool(settings.database_url, max_size=4)
        return cls(settings, temporal, pool)

    async def close(self) -> None:
        await self.pool.close()

    # Campaigns

    async def start_campaign(self, campaign_id: str, after_completion: bool = False) -> str:
        """Start a campaign's workflow; starting a running campaign again is a no-op.

        ``after_completion``: the campaign was completed and has just been reopened
        (sends retried). Its last run may still be closing (it returns after the
        completion it committed, and with no worker up it waits for one): that run is
        ended, not joined, or the reopened sends would have no workflow."""
        info = await campaigns.campaign_info(self.pool, campaign_id)
        if info.state in ("completed", "cancelled"):
            raise InvalidState(f"campaign {campaign_id} is {info.state}; it cannot start again")
        for mailbox_id in info.mailbox_ids:
            await self._ensure_mailbox_workflow(mailbox_id)
        delays = await self.pool.fetch(
            "SELECT delay_seconds FROM steps WHERE campaign_id = $1 ORDER BY step", campaign_id
        )
        handle = await self.temporal.start_workflow(
            CampaignWorkflow.run,
            CampaignInput(
                id_prefix=self.settings.task_queue, campaign_id=campaign_id,
                delays=[timedelta(seconds=r["delay_seconds"]) for r in delays],
                tuning=tuning_from(self.settings),
                open=await campaign_controls.open_for_prospects(self.pool, campaign_id),
                events_per_run=self.settings.campaign_events_per_run,
                step_check=timedelta(seconds=self.settings.campaign_step_check_seconds),
            ),
            id=campaign_workflow_id(self.settings.task_queue, campaign_id),
            task_queue=self._queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(CAMPAIGN_ID_ATTR, campaign_id)]),
            id_conflict_policy=(WorkflowIDConflictPolicy.TERMINATE_EXISTING if after_completion
                                else WorkflowIDConflictPolicy.USE_EXISTING),
        )
        return handle.id

    def _campaign(self, campaign_id: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.get_workflow_handle(
            campaign_workflow_id(self.settings.task_queue, campaign_id)
        )

    async def _running_campaign(self, campaign_id: str) -> WorkflowHandle[Any, Any]:
        info = await campaigns.campaign_info(self.pool, campaign_id)
        if info.state not in ("running", "paused"):
            raise InvalidState(f"campaign {campaign_id} is {info.state}, not running")
        return self._campaign(campaign_id)

    async def pause_campaign(self, campaign_id: str) -> None:
        """Pause a running campaign. Returns once no new SMTP transaction of it can start:
        the pause is committed where the check before DATA reads it, so claimed sends go
        back to the queue unsent (one already in DATA may finish). Then its steps are
        told to stop claiming (docs/decisions/0044). InvalidState unless running or paused."""
        await self._running_campaign(campaign_id)
        await self._set_paused(campaign_id, True)
        await self._tell(campaign_id, CampaignWorkflow.pause)

    async def resume_campaign(self, campaign_id: str) -> None:
        """Resume a paused campaign: its sends may reach DATA again, and its steps claim."""
        await self._running_campaign(campaign_id)
        await self._set_paused(campaign_id, False)
        await self._tell(campaign_id, CampaignWorkflow.resume)

    async def _set_paused(self, campaign_id: str, paused: bool) -> None:
        try:
            await campaigns.set_paused(self.pool, campaign_id, paused)
        except UnknownRecord:
            raise
        except StoreError as exc:  # it ended since it was read: say so as the read would
            raise InvalidState(str(exc)) from exc

    async def cancel_campaign(self, campaign_id: str, wait: float = 60.0) -> str:
        """Cancel a campaign and wait until every open send has a final state."""
        handle = await self._running_campaign(campaign_id)
        await handle.cancel()
        started = time.monotonic()
        steps_told = False
        while time.monotonic() < started + wait:
            state = (await campaigns.campaign_info(self.pool, campaign_id)).state
            if state == "cancelled":
                return state
            if not steps_told and time.monotonic() > started + _STEP_CANCEL_AFTER:
                await self._cancel_steps_directly(campaign_id)
                steps_told = True
            await asyncio.sleep(0.2)
        raise ClientError(f"campaign {campaign_id}: cancellation requested, not confirmed in {wait}s")

    async def _cancel_steps_directly(self, campaign_id: str) -> None:
        """A campaign run started before the reopenable-steps patch awaits each step's
        first run and cancels that run, which is closed once the step continued as new:
        the cancel is lost and the campaign waits for ever. Cancelling each step's
        latest run (no run id) ends the chain, and the campaign's cancel goes on."""
        info = await campaigns.campaign_info(self.pool, campaign_id)
        for k in range(1, info.steps + 1):
            step = self.temporal.get_workflow_handle(
                step_workflow_id(self.settings.task_queue, campaign_id, k))
            try:
                await step.cancel()
            except RPCError:
                pass  # already closed

    async def campaign_status(self, campaign_id: str) -> dict[str, Any]:
        return await campaigns.campaign_status(self.pool, campaign_id)

    # Mailboxes

    async def _ensure_mailbox_workflow(self, mailbox_id: str) -> WorkflowHandle[Any, Any]:
        record = await accounts.mailbox_record(self.pool, mailbox_id)
        paused_by = await accounts.pause_source(self.pool, mailbox_id)
        return await self.temporal.start_workflow(
            MailboxWorkflow.run,
            MailboxInput(mailbox_id=mailbox_id, paused=record.paused, reason=record.pause_reason,
                         paused_by=paused_by or ""),
            id=mailbox_workflow_id(self.settings.task_queue, mailbox_id),
            task_queue=self._queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(MAILBOX_IDS_ATTR, [mailbox_id])]),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def pause_mailbox(self, mailbox_id: str, reason: str = "") -> MailboxStatus:
        """Pause a mailbox; return once no new SMTP transaction can start from it."""
        handle = await self._ensure_mailbox_workflow(mailbox_id)
        await handle.signal(MailboxWorkflow.pause, reason or "paused by operator")
        return await self._await_applied(handle, paused=True)

    async def resume_mailbox(self, mailbox_id: str) -> MailboxStatus:
        handle = await self._ensure_mailbox_workflow(mailbox_id)
        await handle.signal(MailboxWorkflow.resume)
        return await self._await_applied(handle, paused=False)

    async def _await_applied(self, handle: WorkflowHandle[Any, Any], paused: bool) -> MailboxStatus:
        deadline = time.monotonic() + _ACK_TIMEOUT
        while True:
            try:
                status: MailboxStatus = await handle.query(MailboxWorkflow.status)
            except RPCError as exc:  # e.g. no worker polling yet
                raise ClientError(f"mailbox workflow {handle.id} did not answer: {exc}") from exc
            if status.applied and status.paused == paused:
                return status
            if time.monotonic() > deadline:
                raise ClientError(
                    f"{handle.id}: change requested but not in force after {_ACK_TIMEOUT:.0f}s"
                    " (is a worker running?)"
                )
            await asyncio.sleep(0.1)

    async def mailbox_status(self, mailbox_id: str | None = None) -> list[dict[str, Any]]:
        return await accounts.list_mailboxes(self.pool, mailbox_id)

    # The do-not-contact list (docs/decisions/0026); `outreach suppress ...`

    async def suppress_add(
        self, entry: str, scope: Scope, reason: str | None = None
    ) -> tuple[Suppression, bool]:
        """List an address or ``@domain``; the entry, and whether it was not listed yet."""
        return await suppressions.add(self.pool, scope, entry, reason=reason)

    async def suppress_remove(self, entry: str, scope: Scope) -> Suppression:
        """Take an entry off a scope's list (SuppressionError if it is not on it)."""
        return await suppressions.remove(self.pool, scope, entry)

    async def suppress_list(self, scope: Scope | None = None) -> list[Suppression]:
        """A scope's entries, or every scope's; ``Suppression.as_json()`` is the CLI's JSON."""
        return await suppressions.listed(self.pool, scope)

    async def suppress_import(self, path: Path, scope: Scope) -> tuple[int, int]:
        """Every entry of a CSV file, all or nothing (SpecError names each bad row and
        column); returns (entries read, of which new)."""
        rows = read_suppressions_csv(path)
        return len(rows), await suppressions.add_many(self.pool, scope, rows)

    async def suppress_export(self, out: TextIO, scope: Scope | None = None) -> int:
        """Write a scope's entries (or every scope's) as CSV to ``out``; returns how many."""
        entries = await suppressions.listed(self.pool, scope)
        suppressions.write_csv(out, entries)
        return len(entries)

    # Erasure (docs/decisions/0032); `outreach prospects forget`

    async def forget_prospect(self, email: str, workspace: str | None = None) -> Erasure:
        """Erase a person's address and data in ``workspace`` (every workspace when None),
        keeping only a keyed hash of the address on the do-not-contact list."""
        return await erasure.forget(self.pool, key_ring(self.settings.secret_keys), email, workspace)

    # Sender domain checks; `outreach mailboxes check-dns`

    async def check_dns(self, mailbox_id: str | None = None) -> list[SenderReport]:
        """SPF, DKIM and DMARC of each mailbox's domain (or one's), through
        OUTREACH_DNS_RESOLVER or the system's resolver."""
        return await sender_dns.check_senders(self.pool, TxtLookup(self.settings.dns_resolver), mailbox_id)

    # Replay before a deploy; `outreach workflows replay`

    async def replay_workflows(
        self, query: str | None = None, limit: int = DEFAULT_LIMIT,
        workflows: Sequence[type] | None = None, progress: Progress | None = None,
    ) -> ReplayReport:
        """Replay the histories of the executions ``query`` lists (default: this installation's
        running ones, at most ``limit``) against this code's workflows, or ``workflows``; the
        report names each failing run and the first event it disagrees with (client/replay.py)."""
        return await replay.replay_workflows(self.temporal, self.settings, query=query, limit=limit,
                                            workflows=workflows, progress=progress)
