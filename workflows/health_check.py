"""Mailbox health checks, started by their Temporal schedule: one bounded activity run.

The activity probes every active mailbox and pauses or resumes it through its
MailboxWorkflow (signals ``health_pause`` / ``health_resume``).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import HealthCheckInput, HealthCheckResult
    from config.names import CHECK_MAILBOXES
    from workflows.maintenance import run_bounded


@workflow.defn
class HealthCheckWorkflow:
    @workflow.run
    async def run(self, inp: HealthCheckInput) -> HealthCheckResult:
        return await run_bounded(CHECK_MAILBOXES, inp, HealthCheckResult)
