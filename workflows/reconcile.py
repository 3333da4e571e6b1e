"""Reconciliation of stuck sends, started by its Temporal schedule: one bounded activity run.

Open sends that no running step workflow holds get a final state with a reason
(docs/decisions/0011); the counts go to the logs and metrics.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import ReconcileInput, ReconcileResult
    from config.names import RECONCILE_SENDS
    from workflows.maintenance import run_bounded


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileResult:
        return await run_bounded(RECONCILE_SENDS, inp, ReconcileResult)
