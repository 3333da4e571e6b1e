"""Temporal schedules of the maintenance workflows: build them from settings, apply, list.

``apply_schedules`` is idempotent: each schedule's action carries a fingerprint
of what it should be in its memo (not in the note, which a pause overwrites); a
schedule whose fingerprint matches is left alone,
one that differs is updated in place (keeping an operator's pause), a missing
one is created. Settings travel in the scheduled workflows' arguments, so a
change takes effect at the next run without restarting any worker.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.inbox_models import InboxPollInput, WebhookInput
from activities.maintenance_models import CleanupInput, HealthCheckInput, ReconcileInput, VariantsInput
from client import ClientError
from config.codec import KEY_ID, PayloadEncryption
from config.names import maintenance_task_queue, maintenance_workflow_id, schedule_id
from config.settings import Settings
from inbox.webhook import WebhookMisconfigured, check_config

JOBS = ("cleanup", "health-check", "reconcile", "inbox-poll", "variants")
_FINGERPRINT = "outreach_config"


@dataclass(frozen=True)
class Job:
    name: str
    workflow: str
    arg: BaseModel
    every: timedelta


def jobs(settings: Settings) -> list[Job]:
    timeout = timedelta(seconds=settings.maintenance_timeout_seconds)
    return [
        Job("cleanup", "CleanupWorkflow", CleanupInput(
            sent_retention=timedelta(days=settings.retention_sent_days),
            failed_retention=timedelta(days=settings.retention_failed_days),
            batch_size=settings.cleanup_batch_size, timeout=timeout,
        ), timedelta(seconds=settings.cleanup_interval_seconds)),
        Job("health-check", "HealthCheckWorkflow",
            HealthCheckInput(concurrency=settings.health_check_concurrency, timeout=timeout),
            timedelta(seconds=settings.health_check_interval_seconds)),
        Job("reconcile", "ReconcileWorkflow", ReconcileInput(timeout=timeout),
            timedelta(seconds=settings.reconcile_interval_seconds)),
        Job("inbox-poll", "InboxPollWorkflow", InboxPollInput(
            max_message_bytes=settings.inbox_max_message_bytes,
            match_window=timedelta(days=settings.reply_match_days),
            imap_timeout_seconds=settings.imap_timeout_seconds, timeout=timeout,
        ), timedelta(seconds=settings.inbox_poll_seconds)),
        Job("variants", "VariantsWorkflow", VariantsInput(
            reply_window=timedelta(days=settings.variants_reply_window_days), timeout=timeout,
        ), timedelta(seconds=settings.variants_interval_seconds)),
    ] + ([Job("webhook", "WebhookWorkflow", WebhookInput(timeout=timeout),
              timedelta(seconds=settings.inbox_poll_seconds))] if settings.webhook_url else [])


def build_schedule(settings: Settings, job: Job) -> Schedule:
    timeout = timedelta(seconds=settings.maintenance_timeout_seconds)
    queue = maintenance_task_queue(settings.task_queue)
    fingerprint = hashlib.sha256(json.dumps(
        [job.workflow, job.arg.model_dump(mode="json"), job.every.total_seconds(),
         timeout.total_seconds(), queue, "skip"], sort_keys=True,
    ).encode()).hexdigest()[:16]
    return Schedule(
        action=ScheduleActionStartWorkflow(
            job.workflow, job.arg, id=maintenance_workflow_id(settings.task_queue, job.name),
            task_queue=queue, memo={_FINGERPRINT: fingerprint},
            # The run's bound: a stuck run ends, and the next interval starts a new one.
            execution_timeout=timeout,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=job.every)]),
        # An interval that comes while the previous run still goes is skipped, not queued.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="managed by `outreach schedules apply`"),
    )


def check_webhook(settings: Settings) -> None:
    """The webhook schedule starts only with a URL that is one and a secret to sign with
    (docs/decisions/0047); ClientError naming the setting otherwise."""
    if not settings.webhook_url:
        return
    try:
        check_config(settings.webhook_url, settings.webhook_secret)
    except WebhookMisconfigured as exc:
        raise ClientError(f"{exc} No schedule was applied.") from None


async def apply_schedules(client: Client, settings: Settings) -> dict[str, str]:
    """Create or update every maintenance schedule; per schedule id: created|updated|unchanged.
    A webhook that cannot be started refuses them all, before any is touched."""
    check_webhook(settings)
    results = {}
    for job in jobs(settings):
        sid = schedule_id(settings.task_queue, job.name)
        results[sid] = await _apply(client, sid, build_schedule(settings, job))
    return results


async def _apply(client: Client, sid: str, wanted: Schedule) -> str:
    handle = client.get_schedule_handle(sid)
    try:
        current = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        await client.create_schedule(sid, wanted)
        return "created"
    if await _fingerprint(client, current.schedule) == await _fingerprint(client, wanted):
        return "unchanged"

    def update(inp: ScheduleUpdateInput) -> ScheduleUpdate:
        state = inp.description.schedule.state
        if state.paused:  # an operator's pause (and its note) stays
            wanted.state = ScheduleState(note=state.note, paused=True)
        return ScheduleUpdate(schedule=wanted)

    await handle.update(update)
    return "updated"


async def _fingerprint(client: Client, schedule: Schedule) -> str | None:
    action = schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return None
    value = action.memo.get(_FINGERPRINT)
    if isinstance(value, Payload):  # as described by the server: encrypted, so through the codec
        # The key id is part of the fingerprint: after a key rotation the
        # schedule is rewritten, so its arguments are re-encrypted under the
        # new key before the old one is retired.
        key_id = value.metadata.get(KEY_ID, b"").decode(errors="replace")
        return f"{key_id}|{(await client.data_converter.decode([value], [str]))[0]}"
    if value is None:
        return None
    codec = client.data_converter.payload_codec
    key_id = codec.ring.current_id if isinstance(codec, PayloadEncryption) else ""
    return f"{key_id}|{value}"


async def describe_schedules(client: Client, settings: Settings) -> list[dict[str, Any]]:
    """What ``outreach schedules list`` prints, one entry per maintenance schedule."""
    rows: list[dict[str, Any]] = []
    for job in [j.name for j in jobs(settings)]:  # "webhook" only when a URL is set
        sid = schedule_id(settings.task_queue, job)
        try:
            d = await client.get_schedule_handle(sid).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            rows.append({"id": sid, "state": "missing (run `outreach schedules apply`)"})
            continue
        every = [i.every.total_seconds() for i in d.schedule.spec.intervals]
        recent = d.info.recent_actions
        rows.append({
            "id": sid, "state": "paused" if d.schedule.state.paused else "active",
            "every_seconds": every[0] if every else None,
            "runs": d.info.num_actions, "skipped_overlap": d.info.num_actions_skipped_overlap,
            "running": len(d.info.running_actions),
            "last_run": _iso(recent[-1].started_at) if recent else None,
            "next_run": _iso(d.info.next_action_times[0]) if d.info.next_action_times else None,
        })
    return rows


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


async def set_namespace_retention(client: Client, namespace: str, days: int) -> str:
    """Temporal's retention of closed workflows: 'unchanged', 'updated', or why it was not set."""
    want = timedelta(days=days)
    service = client.workflow_service
    described = await service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    if described.config.workflow_execution_retention_ttl.ToTimedelta() == want:
        return "unchanged"
    ttl = Duration()
    ttl.FromTimedelta(want)
    try:
        await service.update_namespace(UpdateNamespaceRequest(
            namespace=namespace, config=NamespaceConfig(workflow_execution_retention_ttl=ttl),
        ))
    except RPCError as exc:  # e.g. not permitted for this client: see README
        return f"not set ({exc.message})"
    return "updated"
