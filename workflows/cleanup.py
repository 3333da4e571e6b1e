"""Retention cleanup, started by its Temporal schedule: one bounded activity run.

The activity deletes expired ledger rows in short batches and returns before
its timeout; whatever is left goes in the next scheduled run.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import CleanupInput, CleanupResult

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=2)


@workflow.defn
class CleanupWorkflow:
    @workflow.run
    async def run(self, inp: CleanupInput) -> CleanupResult:
        result: CleanupResult = await workflow.execute_activity(
            "cleanup_ledger", inp, result_type=CleanupResult,
            start_to_close_timeout=inp.timeout, heartbeat_timeout=timedelta(seconds=60),
            retry_policy=_RETRY,
        )
        return result
