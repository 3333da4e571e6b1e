"""Webhook delivery, started by its Temporal schedule (only when OUTREACH_WEBHOOK_URL is
set): one activity, retried with backoff until the run's bound. Apart from the inbox
poll, so a slow or failing receiver never holds the reading back."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.inbox_models import WebhookInput, WebhookResult
    from config.names import DELIVER_WEBHOOK

_BACKOFF = RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0,
                       maximum_interval=timedelta(seconds=60))


@workflow.defn
class WebhookWorkflow:
    @workflow.run
    async def run(self, inp: WebhookInput) -> WebhookResult:
        result: WebhookResult = await workflow.execute_activity(
            DELIVER_WEBHOOK, inp, result_type=WebhookResult,
            start_to_close_timeout=timedelta(seconds=60), schedule_to_close_timeout=inp.timeout,
            heartbeat_timeout=timedelta(seconds=30), retry_policy=_BACKOFF,
        )
        return result
