"""Mailbox health checks, started by their Temporal schedule: one bounded activity run.

The activity probes every active mailbox and pauses or resumes it through its
MailboxWorkflow (signals ``health_pause`` / ``health_resume``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.maintenance_models import HealthCheckInput, HealthCheckResult

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=2)


@workflow.defn
class HealthCheckWorkflow:
    @workflow.run
    async def run(self, inp: HealthCheckInput) -> HealthCheckResult:
        result: HealthCheckResult = await workflow.execute_activity(
            "check_mailboxes", inp, result_type=HealthCheckResult,
            start_to_close_timeout=inp.timeout, retry_policy=_RETRY,
        )
        return result
