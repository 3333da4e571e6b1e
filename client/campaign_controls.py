"""Part of ``OutreachClient``: what the CLI does beyond starting and pausing, from
Python: create campaigns and import mailboxes (files or models), list campaigns,
progress, trace, and the operator controls on a running campaign (add prospects,
close, stop a prospect, update steps, retire a mailbox, retry sends;
docs/decisions/0039, 0040)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from client import ClientError
from client.trace import holding_urls
from config.names import STEP_HEARS_ADDITIONS_MEMO, STEP_PROSPECTS_ARRIVED_SIGNAL, step_workflow_id
from config.settings import Settings
from specs.added_prospects import LoadedProspects, load_prospects_csv
from specs.campaign_update import load_campaign_update
from specs.campaigns import CampaignSpec, resolve_campaign
from specs.loading import load_campaign_file, load_mailboxes_file
from specs.mailboxes import MailboxSpec
from specs.prospects import Prospect
from store import campaign_controls, campaigns, send_retry, variant_stats, variants
from store.campaign_controls import CampaignSummary, ProspectsAdded, StoppedProspect
from store.campaign_update import StepsUpdated, update_steps
from store.importer import CampaignCreated, create_campaign, import_mailboxes
from store.mailbox_retirement import MailboxRetired, retire
from store.send_retry import SendsRetried
from store.trace import TracedProspect, TracedSend
from store.trace import trace as ledger_trace
from workflows.campaign import CampaignWorkflow


class CampaignControls:
    """Mixed into OutreachClient, which provides these."""

    settings: Settings
    pool: asyncpg.Pool
    temporal: Client

    def _campaign(self, campaign_id: str) -> WorkflowHandle[Any, Any]:
        raise NotImplementedError

    async def start_campaign(self, campaign_id: str, after_completion: bool = False) -> str:
        raise NotImplementedError

    async def create_campaign(
        self, campaign: Path | CampaignSpec, open_for_prospects: bool = False
    ) -> CampaignCreated:
        """Create a campaign from a campaign file, or from a CampaignSpec built in Python
        (a ``prospects_csv`` of a model is read relative to the working directory).
        Checked as ``campaigns create`` checks it: SpecError, nothing written.
        ``open_for_prospects`` is ``campaigns create --open``."""
        if isinstance(campaign, Path):
            loaded = load_campaign_file(campaign)
        else:
            loaded = resolve_campaign(campaign, source="<CampaignSpec>")
        if open_for_prospects:
            loaded = replace(loaded, spec=loaded.spec.model_copy(update={"open": True}))
        return await create_campaign(self.pool, loaded)

    async def import_mailboxes(self, mailboxes: Path | list[MailboxSpec]) -> list[str]:
        """Import or update mailboxes from a mailboxes file or MailboxSpec models (all or
        nothing); returns their ids."""
        specs = load_mailboxes_file(mailboxes) if isinstance(mailboxes, Path) else mailboxes
        return await import_mailboxes(self.pool, specs)

    async def campaign_progress(self, campaign_id: str) -> dict[str, Any]:
        """What ``campaigns status --json`` prints: state, prospects by state, per-step
        ledger counts, and ``progress`` (done per step, rate, estimate of completion)."""
        status = await campaigns.campaign_status(self.pool, campaign_id)
        progress = await campaigns.campaign_progress(self.pool, campaign_id, status["steps"])
        return {**status, "progress": progress}

    async def trace(self, target: str) -> list[TracedProspect]:
        """A prospect's sends, from a prospect id, an address or a send key
        (campaign:step:prospect), as ``outreach trace`` shows them; ``send_urls``
        gives the Web UI addresses of the runs that held a send."""
        return await ledger_trace(self.pool, target)

    async def send_urls(self, send: TracedSend) -> list[str]:
        return await holding_urls(self.temporal, self.settings, send)

    async def list_campaigns(self, state: str | None = None) -> list[CampaignSummary]:
        """Every campaign (or those in ``state``), oldest first, with its progress."""
        return await campaign_controls.list_campaigns(self.pool, state)

    async def read_prospects(self, campaign_id: str, path: Path) -> LoadedProspects:
        """A CSV file checked against the campaign's steps, by the rules of create:
        SpecError lists every problem (row and column); nothing is written."""
        return load_prospects_csv(path, await campaign_controls.stored_steps(self.pool, campaign_id))

    async def add_prospects(
        self, campaign_id: str, prospects: Path | list[Prospect], dedupe: str | None = None
    ) -> ProspectsAdded:
        """Add prospects (a CSV file, or prospects already read) to a campaign that has
        not finished; a running one sends them without a restart. Addresses already
        in the campaign, on the do-not-contact list, or (``dedupe="workspace"``)
        active in another running campaign of the workspace are skipped and counted.
        Raises CampaignFinished for a completed or cancelled campaign."""
        if isinstance(prospects, Path):
            prospects = (await self.read_prospects(campaign_id, prospects)).prospects
        added = await campaign_controls.add_prospects(self.pool, campaign_id, prospects, dedupe)
        if added.added and added.state in ("running", "paused"):
            await self._tell_steps(campaign_id)
        return added

    async def _tell_steps(self, campaign_id: str) -> None:
        """Prospects were added: tell the steps themselves, all at once, so an addition
        costs the campaign's history nothing (decision 0048). Only steps that hear
        additions directly (a campaign that continues as new marks them) are told so,
        and only while every one and the campaign's own workflow run; otherwise the
        campaign is told: it starts ended steps again, or, gone, its refusal reaches
        the caller (steps outlive a campaign terminated out of band, and would send
        what no campaign can complete)."""
        steps = (await campaigns.campaign_info(self.pool, campaign_id)).steps
        prefix = self.settings.task_queue
        handles = [self.temporal.get_workflow_handle(step_workflow_id(prefix, campaign_id, k))
                   for k in range(1, steps + 1)]
        try:
            first, campaign = await asyncio.gather(handles[0].describe(),
                                                   self._campaign(campaign_id).describe())
            direct = (first.status is WorkflowExecutionStatus.RUNNING
                      and campaign.status is WorkflowExecutionStatus.RUNNING
                      and bool((await first.memo()).get(STEP_HEARS_ADDITIONS_MEMO)))
        except RPCError:
            direct = False  # none yet, or the server says no: the campaign decides
        if direct:
            told = await asyncio.gather(*(h.signal(STEP_PROSPECTS_ARRIVED_SIGNAL) for h in handles),
                                        return_exceptions=True)
            if not any(isinstance(t, BaseException) for t in told):
                return
        await self._tell(campaign_id, CampaignWorkflow.prospects_added)

    async def close_campaign(self, campaign_id: str) -> None:
        """An open campaign stops waiting for prospects and completes once they are through."""
        await campaign_controls.close(self.pool, campaign_id)
        await self._tell(campaign_id, CampaignWorkflow.close)

    async def stop_prospect(
        self, campaign_id: str, prospect: str, reason: str | None = None
    ) -> StoppedProspect:
        """End one prospect's sequence (by id or address): 'stopped', queued sends 'skipped'.
        The campaign's steps claim again at once, so one whose last prospect this was
        ends now rather than when that prospect's next step would have been due."""
        stopped = await campaign_controls.stop_prospect(self.pool, campaign_id, prospect, reason)
        await self.claim_again(campaign_id)
        return stopped

    async def claim_again(self, campaign_id: str) -> None:
        """Tell a running campaign's steps to claim again (the ledger changed under
        them); one not started or ended has no workflow to tell. ClientError if the
        Temporal server refuses the signal of a running one."""
        await self._tell(campaign_id, CampaignWorkflow.prospects_added)

    async def retire_mailbox(
        self, mailbox_id: str, reassign: bool = False, force: bool = False
    ) -> MailboxRetired:
        """Retire a mailbox: it sends nothing more (docs/decisions/0040). With
        ``reassign``, its prospects not yet sent step 1 move to their campaign's other
        mailboxes; the rest end (prospect 'stopped', sends 'skipped', reason
        mailbox_retired). LastMailbox if it is an unfinished campaign's last one,
        unless ``force``."""
        retired = await retire(self.pool, mailbox_id, reassign=reassign, force=force)
        for campaign_id in retired.running:  # their steps claim the moved, or see none left
            await self._tell(campaign_id, CampaignWorkflow.prospects_added)
        return retired

    async def count_retryable_sends(self, campaign_id: str, state: str, step: int | None = None) -> int:
        """How many ``state`` ("unknown" or "failed") sends ``retry_sends`` would queue again."""
        return await send_retry.count_retryable(self.pool, campaign_id, state, step)

    async def retry_sends(self, campaign_id: str, state: str, step: int | None = None) -> SendsRetried:
        """Send again the campaign's ``state`` sends (of ``step``): an operator's decision,
        since an ``unknown`` one may already have been delivered. A completed campaign
        runs again; with no worker up, the sends wait for one (each goes once)."""
        retried = await send_retry.retry(self.pool, campaign_id, state, step)
        if retried.count and retried.campaign_state == "completed":
            await self.start_campaign(campaign_id, after_completion=True)
        elif retried.count and retried.campaign_state in ("running", "paused"):
            await self._tell(campaign_id, CampaignWorkflow.prospects_added)
        return retried

    async def update_campaign(self, campaign_id: str, path: Path) -> StepsUpdated:
        """Change the subjects, bodies and delays of a campaign's steps from a campaign
        FILE, for every send not made yet (validated like create: SpecError, nothing
        changed; adding or removing steps is refused). A changed delay moves every
        send of that step not yet claimed."""
        updated = await update_steps(self.pool, campaign_id, load_campaign_update(path))
        # A new schedule re-plans every waiting prospect: the steps claim again at once.
        if (updated.changed or updated.schedule_changed) and updated.state in ("running", "paused"):
            delays = [timedelta(seconds=d) for d in updated.delays]
            await self._tell(campaign_id, CampaignWorkflow.steps_changed, delays)
        return updated

    async def variant_stats(self, campaign_id: str) -> list[dict[str, Any]]:
        """Per step and variant: weight, retired, sent, delivered, hard_bounced, replied,
        positive_replied, unsubscribed, complained, the two reply rates and
        ``reply_classes`` (prospects per intent class: interested, meeting, ...), counted
        from the ledger and the inbound messages (store/variant_stats.py, decision 0052)."""
        await campaigns.campaign_info(self.pool, campaign_id)  # UnknownRecord if there is none
        return await variant_stats.variant_stats(self.pool, campaign_id)

    async def pick_variant(self, campaign_id: str, step: int, name: str | None) -> None:
        """An operator's winner for a step (every new prospect of it gets ``name``), or
        with None the undoing of any winner (the weights and the rule apply again).
        Prospects already sent keep their variant and thread."""
        await variants.pick_winner(self.pool, campaign_id, step, name)

    async def _tell(self, campaign_id: str, signal: Any, *args: Any) -> None:
        """Signal the campaign's workflow about a change already committed in PostgreSQL.
        ClientError when the Temporal server does not take the signal (no such workflow,
        its signal limit, unreachable), naming the campaign, the signal and the reason."""
        try:
            await self._campaign(campaign_id).signal(signal, *args)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND and await self._no_workflow_expected(campaign_id):
                return
            name = getattr(signal, "__name__", str(signal))
            raise ClientError(
                f"campaign {campaign_id}: the Temporal server did not take the {name} signal:"
                f" {exc.message} ({exc.status.name}). The change is saved in PostgreSQL, but the"
                " campaign's workflow has not heard of it."
            ) from exc

    async def _no_workflow_expected(self, campaign_id: str) -> bool:
        """Whether the campaign, as PostgreSQL says after the server found no workflow, has
        none that needs telling. 'created': not started; a start reads the prospects, the
        delays and whether it is open from PostgreSQL, after this change. 'completed': an
        activity found no prospect with a step to go, under the row lock that additions
        take, so it saw this one or the addition was refused. 'cancelled': its sends are
        ended. 'running' or 'paused' with no workflow (terminated out of band, another
        task queue prefix) is a refusal the operator must see."""
        state = (await campaigns.campaign_info(self.pool, campaign_id)).state
        return state in ("created", "completed", "cancelled")
