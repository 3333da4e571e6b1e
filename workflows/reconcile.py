"""Reconciliation of stuck sends, started by its Temporal schedule: one bounded activity run.

Open sends that no running step workflow holds get a final state with a reason
(docs/decisions/0011); the counts go to the logs and metrics.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import ReconcileInput, ReconcileResult

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=2)


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileResult:
        result: ReconcileResult = await workflow.execute_activity(
            "reconcile_sends", inp, result_type=ReconcileResult,
            start_to_close_timeout=inp.timeout, retry_policy=_RETRY,
        )
        return result
