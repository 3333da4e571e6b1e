"""Maintenance schedules on the Temporal dev server (the time-skipping test server does
not run schedules): idempotent apply, firing at their intervals, overlapping runs skipped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import activity
from temporalio.client import Client, ScheduleActionStartWorkflow, ScheduleDescription
from temporalio.testing import WorkflowEnvironment

from activities.maintenance_models import (
    CleanupInput,
    CleanupResult,
    HealthCheckInput,
    HealthCheckResult,
    ReconcileInput,
    ReconcileResult,
)
from client.schedules import apply_schedules, describe_schedules, set_namespace_retention
from config.codec import KEY_ID
from config.converter import data_converter
from config.names import schedule_id
from config.secrets import generate_entry
from config.settings import Settings
from tests.integration.conftest import MaintenanceWorkerFactory, temporal_address


class FakeMaintenance:
    """The maintenance activities under their real names; cleanup can be held running."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"cleanup": 0, "health": 0, "reconcile": 0}
        self.hold_cleanup = asyncio.Event()
        self.hold_cleanup.set()

    @activity.defn(name="cleanup_ledger")
    async def cleanup_ledger(self, inp: CleanupInput) -> CleanupResult:
        self.calls["cleanup"] += 1
        await self.hold_cleanup.wait()
        return CleanupResult(deleted={}, batches=0, complete=True)

    @activity.defn(name="check_mailboxes")
    async def check_mailboxes(self, inp: HealthCheckInput) -> HealthCheckResult:
        self.calls["health"] += 1
        return HealthCheckResult(checked=0, healthy=0)

    @activity.defn(name="reconcile_sends")
    async def reconcile_sends(self, inp: ReconcileInput) -> ReconcileResult:
        self.calls["reconcile"] += 1
        return ReconcileResult(campaigns_with_open_sends=0, stuck_campaigns=[], ended={}, open_in_running=0)

    def activities(self) -> list[Callable[..., Awaitable[object]]]:
        return [self.cleanup_ledger, self.check_mailboxes, self.reconcile_sends]


def _fast(settings: Settings, **changes: float) -> Settings:
    update = {"cleanup_interval_seconds": 1.0, "health_check_interval_seconds": 2.0,
              "reconcile_interval_seconds": 3.0, "maintenance_timeout_seconds": 30.0, **changes}
    return settings.model_copy(update=update)


async def _describe(client: Client, settings: Settings, job: str) -> ScheduleDescription:
    return await client.get_schedule_handle(schedule_id(settings.task_queue, job)).describe()


async def _until(
    client: Client, settings: Settings, job: str, ok: Callable[[ScheduleDescription], bool]
) -> ScheduleDescription:
    deadline = time.monotonic() + 30.0
    while not ok(d := await _describe(client, settings, job)):
        assert time.monotonic() < deadline, f"{job}: {d.info}"
        await asyncio.sleep(0.2)
    return d


async def test_apply_creates_then_changes_nothing_then_updates_what_changed(
    dev_server: WorkflowEnvironment, e2e_settings: Settings, drop_schedules: None
) -> None:
    client, settings = dev_server.client, e2e_settings
    first = await apply_schedules(client, settings)
    assert set(first.values()) == {"created"} and len(first) == 5  # with variants (decision 0052)
    await client.get_schedule_handle(schedule_id(settings.task_queue, "cleanup")).pause(note="operator")

    assert set((await apply_schedules(client, settings)).values()) == {"unchanged"}
    changed = await apply_schedules(client, settings.model_copy(update={"retention_sent_days": 3.0}))
    assert changed[schedule_id(settings.task_queue, "cleanup")] == "updated"
    assert sorted(changed.values()) == ["unchanged", "unchanged", "unchanged", "unchanged", "updated"]

    cleanup = await _describe(client, settings, "cleanup")
    assert cleanup.schedule.state.paused  # the operator's pause survives an update
    rows = {r["id"]: r for r in await describe_schedules(client, settings)}
    assert rows[schedule_id(settings.task_queue, "reconcile")]["every_seconds"] == 600


async def test_apply_after_a_key_rotation_rewrites_the_schedules_under_the_new_key(
    dev_server: WorkflowEnvironment, e2e_settings: Settings, drop_schedules: None
) -> None:
    client, settings = dev_server.client, e2e_settings
    await apply_schedules(client, settings)
    rotated = settings.model_copy(
        update={"secret_keys": f"{generate_entry('rotated')},{settings.secret_keys}"}
    )
    new_client = await Client.connect(
        temporal_address(dev_server), data_converter=data_converter(rotated)
    )
    changed = await apply_schedules(new_client, rotated)
    assert set(changed.values()) == {"updated"}
    assert set((await apply_schedules(new_client, rotated)).values()) == {"unchanged"}
    memo = (await _describe(new_client, settings, "cleanup")).schedule.action
    assert isinstance(memo, ScheduleActionStartWorkflow)
    assert all(p.metadata[KEY_ID] == b"rotated" for p in memo.args)


async def test_schedules_fire_at_their_intervals(
    dev_server: WorkflowEnvironment, e2e_settings: Settings, drop_schedules: None,
    maintenance_worker_factory: MaintenanceWorkerFactory,
) -> None:
    client, settings = dev_server.client, _fast(e2e_settings)
    fake = FakeMaintenance()
    async with maintenance_worker_factory(settings, fake.activities()):
        await apply_schedules(client, settings)
        for job, every in (("cleanup", 1), ("health-check", 2), ("reconcile", 3)):
            d = await _until(client, settings, job, lambda d: len(d.info.recent_actions) >= 3)
            times = [a.scheduled_at for a in d.info.recent_actions]
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            # Aligned to the interval; on a loaded machine a beat may be late, never early.
            assert all(g % timedelta(seconds=every) == timedelta(0) and g for g in gaps), gaps
            assert timedelta(seconds=every) in gaps
        # A recorded action is a started workflow; its activity may not have run yet.
        deadline = time.monotonic() + 30.0
        while min(fake.calls.values()) < 3:
            assert time.monotonic() < deadline, fake.calls
            await asyncio.sleep(0.1)


async def test_a_run_that_overlaps_the_next_interval_makes_it_skip_not_queue(
    dev_server: WorkflowEnvironment, e2e_settings: Settings, drop_schedules: None,
    maintenance_worker_factory: MaintenanceWorkerFactory,
) -> None:
    client, settings = dev_server.client, _fast(e2e_settings, health_check_interval_seconds=3600.0,
                                                reconcile_interval_seconds=3600.0)
    fake = FakeMaintenance()
    fake.hold_cleanup.clear()  # the first cleanup run stays running
    async with maintenance_worker_factory(settings, fake.activities()):
        await apply_schedules(client, settings)
        d = await _until(client, settings, "cleanup", lambda d: d.info.num_actions_skipped_overlap >= 3)
        assert d.info.num_actions == 1 and len(d.info.running_actions) == 1
        assert fake.calls["cleanup"] == 1
        fake.hold_cleanup.set()
        await _until(client, settings, "cleanup", lambda d: d.info.num_actions >= 2)


async def test_namespace_retention_is_set_once(dev_server: WorkflowEnvironment) -> None:
    first = await set_namespace_retention(dev_server.client, "default", 30)
    assert first in ("updated", "unchanged")
    assert await set_namespace_retention(dev_server.client, "default", 30) == "unchanged"
