"""What a run cost Temporal: history events and billable actions, counted from the
histories of every workflow run of the run (ids start with its prefix), and the
server's own `action` counter as a cross-check.

Actions as Temporal Cloud bills them (docs.temporal.io/cloud/actions), per event:
workflow started (client start, continue-as-new, child) 1; start child workflow
initiated 1 more (Cloud bills a child start as 2); search-attribute upsert 1;
workflow options updated 1; activity scheduled 1, and 1 per retry (attempt - 1 on
its started event); local activities 1 per workflow task that recorded markers,
plus their retries; timer started 1; signal received 1 (counted where it lands,
not where it was sent from); update accepted 1. Queries and heartbeats leave no
event and are not counted (the send path has neither).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

_ONE_ACTION = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "workflow_started",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: "child_workflow_initiated",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search_attributes_upserted",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED: "workflow_options_updated",
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity_scheduled",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer_started",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal_received",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "update_accepted",
    EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED: "nexus_operation_scheduled",
}


@dataclass
class TemporalCost:
    runs: int = 0
    events: int = 0
    actions: Counter[str] = field(default_factory=Counter)

    @property
    def total_actions(self) -> int:
        return sum(self.actions.values())


def count_actions(events: list[HistoryEvent]) -> Counter[str]:
    actions: Counter[str] = Counter()
    marker_tasks: set[int] = set()
    for event in events:
        kind = _ONE_ACTION.get(event.event_type)
        if kind is not None:
            actions[kind] += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            actions["activity_retried"] += max(0, event.activity_task_started_event_attributes.attempt - 1)
        elif event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker_tasks.add(event.marker_recorded_event_attributes.workflow_task_completed_event_id)
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            meta = event.workflow_task_completed_event_attributes.metering_metadata
            actions["local_activity_retried"] += meta.nonfirst_local_activity_execution_attempts
    actions["local_activities"] += len(marker_tasks)
    return +actions  # drop zero counts


async def run_cost(client: Client, prefix: str) -> TemporalCost:
    """Events and actions of every workflow run whose id starts with `prefix`-."""
    cost = TemporalCost()
    async for wf in client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}-'"):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        cost.runs += 1
        cost.events += len(history.events)
        cost.actions += count_actions(list(history.events))
    return cost


async def server_actions(metrics_port: int) -> float | None:
    """The dev server's own `action` counter (all namespaces), or None if it has none."""

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            body: bytes = r.read()
        return body.decode()

    total, seen = 0.0, False
    for line in (await asyncio.to_thread(scrape)).splitlines():
        if line.startswith("action{") or line.startswith("action "):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None
