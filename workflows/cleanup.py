"""Retention cleanup, started by its Temporal schedule: one bounded activity run.

The activity deletes expired ledger rows in short batches and returns before
its timeout; whatever is left goes in the next scheduled run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import CleanupInput, CleanupResult
    from config.names import CLEANUP_LEDGER
    from workflows.maintenance import run_bounded

_HEARTBEAT = timedelta(seconds=60)  # the activity heartbeats per batch


@workflow.defn
class CleanupWorkflow:
    @workflow.run
    async def run(self, inp: CleanupInput) -> CleanupResult:
        return await run_bounded(CLEANUP_LEDGER, inp, CleanupResult, heartbeat_timeout=_HEARTBEAT)
