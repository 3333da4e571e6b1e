"""Ledger maintenance activities: retention cleanup and reconciliation of stuck sends.

Both touch PostgreSQL; reconciliation also asks Temporal whether a campaign's
workflow is running. Counts go to the logs and to Temporal's metric meter
(exported to Prometheus with the worker's runtime).
"""

from __future__ import annotations

import asyncpg
import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.maintenance_models import (
    CleanupInput,
    CleanupResult,
    ReconcileInput,
    ReconcileResult,
)
from config.names import CLEANUP_LEDGER, RECONCILE_SENDS, campaign_workflow_id
from store import reconcile, retention
from store.reconcile import OpenSends

log = structlog.get_logger(__name__)
_SLACK = 0.8  # of the activity's timeout: stop starting batches after this much


class LedgerMaintenance:
    def __init__(self, pool: asyncpg.Pool, temporal: Client, id_prefix: str) -> None:
        self._pool = pool
        self._temporal = temporal
        self._prefix = id_prefix

    @activity.defn(name=CLEANUP_LEDGER)
    async def cleanup_ledger(self, inp: CleanupInput) -> CleanupResult:
        rules = retention.retention_rules(inp.sent_retention, inp.failed_retention)
        done = await retention.purge(
            self._pool, rules, inp.batch_size, inp.timeout.total_seconds() * _SLACK,
            on_batch=lambda n: activity.heartbeat(n),
        )
        deleted = activity.metric_meter().create_counter(
            "outreach_cleanup_deleted_sends", "ledger rows deleted by retention cleanup"
        )
        for rule, n in done.deleted.items():
            deleted.add(n, {"rule": rule})
        log.info("ledger_cleaned", deleted=done.deleted, batches=done.batches, complete=done.complete)
        return CleanupResult(deleted=done.deleted, batches=done.batches, complete=done.complete)

    @activity.defn(name=RECONCILE_SENDS)
    async def reconcile_sends(self, inp: ReconcileInput) -> ReconcileResult:
        found = await reconcile.open_sends_by_campaign(self._pool)
        result = ReconcileResult(
            campaigns_with_open_sends=len(found), stuck_campaigns=[], ended={}, open_in_running=0
        )
        for group in found:
            reason = await self._stuck_reason(group)
            if reason is None:
                result.open_in_running += group.count
                continue
            final = "skipped" if group.campaign_state == "cancelled" else "failed"
            ended = await reconcile.end_open_sends(
                self._pool, group.campaign_id, final, f"reconciled: {reason}"
            )
            log.warning("stuck_sends_ended", campaign_id=group.campaign_id, reason=reason, ended=ended)
            result.stuck_campaigns.append(group.campaign_id)
            for state, n in ended.items():
                result.ended[state] = result.ended.get(state, 0) + n
        self._record(result)
        return result

    async def _stuck_reason(self, group: OpenSends) -> str | None:
        """Why no step workflow holds this campaign's open sends; None if one does."""
        if group.campaign_state in retention.FINISHED_CAMPAIGNS:
            return f"campaign {group.campaign_state} with the send still open"
        handle = self._temporal.get_workflow_handle(campaign_workflow_id(self._prefix, group.campaign_id))
        try:
            status = (await handle.describe()).status
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise  # Temporal unreachable: decide nothing, retry
            return "campaign workflow not found"
        if status == WorkflowExecutionStatus.RUNNING:
            return None
        return f"campaign workflow {status.name.lower() if status else 'in an unknown state'}"

    @staticmethod
    def _record(result: ReconcileResult) -> None:
        meter = activity.metric_meter()
        stuck = meter.create_counter("outreach_reconcile_stuck_sends", "open sends no workflow held")
        for state, n in result.ended.items():
            stuck.add(n, {"state": state})
        meter.create_gauge(
            "outreach_reconcile_open_sends", "open sends held by running step workflows"
        ).set(result.open_in_running)
        log.info("sends_reconciled", campaigns=result.campaigns_with_open_sends,
                 stuck_campaigns=len(result.stuck_campaigns), ended=result.ended,
                 open_in_running=result.open_in_running)
