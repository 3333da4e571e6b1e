"""Reconciliation: open sends no running step workflow holds get a final state with a reason."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.maintenance_models import ReconcileInput, ReconcileResult
from config.names import campaign_workflow_id, maintenance_task_queue
from config.settings import Settings
from tests.factories import add_campaign, add_mailbox, send_row
from workflows.reconcile import ReconcileWorkflow


async def _campaign_with_open_sends(db: asyncpg.Pool, state: str) -> tuple[str, list[int]]:
    cid, prospects = await add_campaign(db, ["mb"], ["a@x.example", "b@x.example"], [("s", "b", 0)])
    await db.execute("UPDATE campaigns SET state = $2 WHERE id = $1", cid, state)
    # What a worker killed mid-send leaves: one send past "DATA started", one before it.
    await db.executemany(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, state, attempts, message_id,"
        " data_started_at) VALUES ($1, 1, $2::bigint, 'mb', 'sending', 1, 'm' || $2::text,"
        " CASE WHEN $3 THEN now() END)",
        [(cid, prospects[0], True), (cid, prospects[1], False)],
    )
    return cid, prospects


async def _held_by_a_running_workflow(
    env: WorkflowEnvironment, settings: Settings, cid: str
) -> WorkflowHandle[Any, Any]:
    # A workflow under the campaign's id that nothing polls for: running, as far as Temporal knows.
    return await env.client.start_workflow(
        "CampaignWorkflow", id=campaign_workflow_id(settings.task_queue, cid),
        task_queue=f"{settings.task_queue}-nobody", execution_timeout=timedelta(minutes=5),
    )


async def _reconcile(env: WorkflowEnvironment, settings: Settings) -> ReconcileResult:
    return await env.client.execute_workflow(
        ReconcileWorkflow.run, ReconcileInput(timeout=timedelta(seconds=30)),
        id=f"reconcile-{secrets.token_hex(4)}", task_queue=maintenance_task_queue(settings.task_queue),
    )


async def test_send_left_in_sending_by_a_killed_worker_is_resolved_on_the_next_run(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, maintenance_worker: None
) -> None:
    await add_mailbox(db, "mb", 25)
    cid, (started, not_started) = await _campaign_with_open_sends(db, "running")
    handle = await _held_by_a_running_workflow(dev_server, e2e_settings, cid)
    await handle.terminate("the campaign's workflow is gone")

    result = await _reconcile(dev_server, e2e_settings)

    assert result.stuck_campaigns == [cid] and result.ended == {"unknown": 1, "failed": 1}
    row = await send_row(db, cid, 1, started)
    # DATA may have reached the server: never resent, counted as unknown.
    assert row["state"] == "unknown" and row["finished_at"] is not None
    assert row["last_reply"] == "reconciled: campaign workflow terminated"
    assert (await send_row(db, cid, 1, not_started))["state"] == "failed"
    assert (await _reconcile(dev_server, e2e_settings)).stuck_campaigns == []


async def test_open_sends_of_a_running_campaign_workflow_are_left_to_it(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, maintenance_worker: None
) -> None:
    await add_mailbox(db, "mb", 25)
    cid, prospects = await _campaign_with_open_sends(db, "running")
    handle = await _held_by_a_running_workflow(dev_server, e2e_settings, cid)
    try:
        result = await _reconcile(dev_server, e2e_settings)
    finally:
        await handle.terminate("test over")
    assert result.stuck_campaigns == [] and result.open_in_running == 2
    assert [(await send_row(db, cid, 1, p))["state"] for p in prospects] == ["sending", "sending"]


async def test_open_sends_of_finished_or_orphaned_campaigns_get_a_reason(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, maintenance_worker: None
) -> None:
    await add_mailbox(db, "mb", 25)
    cancelled, (_, skipped) = await _campaign_with_open_sends(db, "cancelled")
    orphan, (_, failed) = await _campaign_with_open_sends(db, "paused")  # no workflow at all

    result = await _reconcile(dev_server, e2e_settings)

    assert sorted(result.stuck_campaigns) == sorted([cancelled, orphan])
    assert result.ended == {"unknown": 2, "skipped": 1, "failed": 1}
    assert (await send_row(db, cancelled, 1, skipped))["state"] == "skipped"
    row = await send_row(db, orphan, 1, failed)
    assert (row["state"], row["last_reply"]) == ("failed", "reconciled: campaign workflow not found")
