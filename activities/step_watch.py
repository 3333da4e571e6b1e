"""Which step workflows are still running: the campaign's fallback for a step that
can no longer report its end (terminated, timed out; decision 0048)."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from config.names import STEPS_RUNNING

log = structlog.get_logger(__name__)


class StepWatchActivities:
    def __init__(self, temporal: Client | None = None) -> None:
        # None (a worker built without a client, as in some tests): nothing can be
        # told, and every step counts as running until it reports.
        self._temporal = temporal

    @activity.defn(name=STEPS_RUNNING)
    async def steps_running(self, workflow_ids: list[str]) -> list[bool | None]:
        """Per workflow id, whether its latest run is running; None where it cannot be told."""
        if self._temporal is None:
            return [None] * len(workflow_ids)
        answers: list[bool | None] = []
        for workflow_id in workflow_ids:
            try:
                described = await self._temporal.get_workflow_handle(workflow_id).describe()
            except RPCError as exc:
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    raise  # the server is unwell: the campaign asks again later
                answers.append(False)
                continue
            answers.append(described.status is WorkflowExecutionStatus.RUNNING)
        log.info("steps_running", workflow_ids=workflow_ids, running=answers)
        return answers
