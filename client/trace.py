"""Where a send lives in Temporal: the step-workflow run(s) that held it, as Web UI addresses.

Each step run lists the prospect ids it held in a search attribute, so a
visibility query finds the run (continue-as-new makes several runs per step).
"""

from __future__ import annotations

from urllib.parse import quote

from temporalio.client import Client

from config.names import PROSPECT_IDS_ATTR, step_workflow_id
from config.settings import Settings
from store.trace import TracedSend


def execution_url(settings: Settings, workflow_id: str, run_id: str | None = None) -> str:
    """The Web UI (2.x) page of a workflow execution; without a run id, its latest run."""
    base = f"{settings.ui_url.rstrip('/')}/namespaces/{quote(settings.temporal_namespace)}"
    url = f"{base}/workflows/{quote(workflow_id, safe='')}"
    return f"{url}/{quote(run_id, safe='')}/history" if run_id else url


def holding_query(workflow_id: str, prospect_id: int) -> str:
    """The visibility query for the runs of ``workflow_id`` that held the prospect's send."""
    return f'WorkflowId = "{workflow_id}" AND {PROSPECT_IDS_ATTR.name} = "{prospect_id}"'


async def holding_urls(temporal: Client, settings: Settings, send: TracedSend) -> list[str]:
    """Web UI addresses of the runs that held ``send``, oldest first."""
    workflow_id = step_workflow_id(settings.task_queue, send.campaign_id, send.step)
    runs = [
        (wf.start_time, wf.run_id)
        async for wf in temporal.list_workflows(holding_query(workflow_id, send.prospect_id))
    ]
    return [execution_url(settings, workflow_id, run_id) for _, run_id in sorted(runs)]
