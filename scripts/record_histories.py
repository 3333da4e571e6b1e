"""Record the workflow histories that tests/workflow/test_replay.py replays (docs/decisions/0025).

    .venv/bin/python scripts/record_histories.py [--out tests/histories] [--replace]

Runs real executions of every workflow type: a Temporal dev server (the venv's
`temporal`), the real send and maintenance workers of workers/registry.py over a
fresh PostgreSQL database (created, then dropped), Redis under a key prefix of
its own, and an in-process SMTP server that bounces and throttles on cue. Each
execution's history is written to OUT/<scenario>.json; a step workflow that
continued as new gets one file per run. Payloads are encrypted as in production,
under the test-only key of tests/histories/__init__.py.

Without --replace it refuses to write into a folder that already holds
histories: from the first release tag on, old histories stay and new ones go
into a folder of their own (see the decision record).

--only records one scenario: a maintenance job, or gate-failed-once (a gate call
that fails, then the send goes after its mailbox's wait: 2 minutes of real time,
so the full recording leaves it out; tests/histories/gate-bounded, decision 0043),
or campaigns (every campaign scenario, plus a campaign that continues as new, a
cancel, a sender problem, the completion check's refusal and a mailbox's
continue-as-new; tests/histories/campaign-continues-as-new, decision 0048),
or campaign-with-bounces (its soft bounces wait in retry workflows of their own;
tests/histories/soft-bounce-hand-off, decision 0049).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import yaml
from aiohttp import web
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.histories: the test-only key

from activities.inbox_models import InboxPollResult, WebhookResult  # noqa: E402
from activities.maintenance_models import (  # noqa: E402
    CleanupResult,
    HealthCheckResult,
    ReconcileResult,
    VariantsResult,
)
from activities.models import GateInput, GateResult, MailboxInput  # noqa: E402
from client.api import OutreachClient  # noqa: E402
from client.schedules import jobs  # noqa: E402
from config.converter import data_converter  # noqa: E402
from config.names import (  # noqa: E402
    GATE_SEND,
    SEARCH_ATTRIBUTES,
    mailbox_workflow_id,
    maintenance_task_queue,
    maintenance_workflow_id,
    send_retry_workflow_id,
    send_task_queue,
    step_workflow_id,
)
from config.secrets import key_ring  # noqa: E402
from config.settings import Settings  # noqa: E402
from limits import LimitStoreUnavailable  # noqa: E402
from localsmtp.server import LocalSmtpServer  # noqa: E402
from specs.loading import load_campaign_file  # noqa: E402
from specs.mailboxes import MailboxSpec  # noqa: E402
from specs.prospects import Prospect  # noqa: E402
from store import campaign_controls  # noqa: E402
from store.db import create_pool  # noqa: E402
from store.importer import create_campaign, import_mailboxes  # noqa: E402
from store.migrate import migrate  # noqa: E402
from telemetry.log_context import ActivityLogContext  # noqa: E402
from tests.histories import HISTORIES_DIR, history_settings  # noqa: E402
from workers.registry import (  # noqa: E402
    WORKFLOWS,
    build_activities,
    build_maintenance_activities,
    build_transport,
    maintenance_workflows,
)
from workflows.mailbox import MailboxWorkflow  # noqa: E402
from workflows.models import MailboxStatus  # noqa: E402

IDENTITY = "history-recorder"  # instead of pid@host in every recorded event
GUARDED = "mb-guarded"  # the mailbox whose password the health check finds wrong, then right
GATE_DOWN = "mb-gate-down"  # the mailbox whose gate fails in gate_failed_once
_ENDINGS = {
    "workflow_execution_completed_event_attributes": "completed",
    "workflow_execution_continued_as_new_event_attributes": "continued-as-new",
    "workflow_execution_canceled_event_attributes": "canceled",
    "workflow_execution_terminated_event_attributes": "terminated",
    "workflow_execution_failed_event_attributes": "failed",
}


_RESULTS: dict[str, type[Any]] = {
    "cleanup": CleanupResult, "health-check": HealthCheckResult, "reconcile": ReconcileResult,
    "inbox-poll": InboxPollResult, "webhook": WebhookResult, "variants": VariantsResult,
}


class RecordingFailed(Exception):
    """A scenario did not go the way its histories' names say."""


@dataclass
class Stack:
    settings: Settings
    temporal: Client
    pool: asyncpg.Pool
    inbox: LocalSmtpServer
    guarded: LocalSmtpServer
    client: OutreachClient
    out: Path
    files: dict[str, int]  # file name -> bytes written
    gate_down: set[str] = field(default_factory=set)  # mailboxes whose gate fails as if Redis were down


# -- saving histories -----------------------------------------------------------


async def save(stack: Stack, name: str, workflow_id: str, run_id: str | None = None) -> str:
    """Write one run's history as OUT/<name>-<how it ended>.json; returns how it ended."""
    history = await stack.temporal.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    ending = _ENDINGS.get(str(history.events[-1].WhichOneof("attributes")), "open")
    text = one_event_a_line(history.to_json())
    path = stack.out / f"{name}-{ending}.json"
    path.write_text(text)
    stack.files[path.name] = len(text)
    return ending


def one_event_a_line(history_json: str) -> str:
    """The history's JSON with each event on a line of its own: a third smaller than the
    SDK's indented form, and still one event per line to read or grep."""
    events = json.loads(history_json)["events"]
    lines = ",\n".join(json.dumps(e, separators=(",", ":")) for e in events)
    return f'{{"events": [\n{lines}\n]}}\n'


async def save_step_runs(stack: Stack, scenario: str, campaign_workflow_id: str, campaign_id: str,
                         steps: int) -> dict[int, list[str]]:
    """Every run of every step of a campaign, oldest first (continued as new, or started
    again); the endings per step."""
    endings: dict[int, list[str]] = {}
    for k in range(1, steps + 1):
        workflow_id = step_workflow_id(stack.settings.task_queue, campaign_id, k)
        endings[k] = []
        for n, run_id in enumerate(await all_runs(stack, workflow_id), start=1):
            endings[k].append(await save(stack, f"{scenario}-step-{k}-run-{n}", workflow_id, run_id))
    return endings


async def save_runs(stack: Stack, name: str, workflow_id: str) -> list[str]:
    """Every run of a workflow id: one file as <name> if it had one run, else <name>-run-N."""
    runs = await all_runs(stack, workflow_id)
    if len(runs) == 1:
        return [await save(stack, name, workflow_id, runs[0])]
    return [await save(stack, f"{name}-run-{n}", workflow_id, run_id) for n, run_id in enumerate(runs, 1)]


async def all_runs(stack: Stack, workflow_id: str) -> list[str]:
    """The run ids of a workflow id, oldest first."""
    listed = stack.temporal.list_workflows(f"WorkflowId = '{workflow_id}'")
    runs = [(w.start_time, w.run_id) async for w in listed]
    return [run_id for _, run_id in sorted(runs)]


# -- waiting ----------------------------------------------------------------------


async def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> None:  # noqa: ASYNC109
    """Poll an async or plain predicate until it holds; RecordingFailed after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise RecordingFailed(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def closed(handle: WorkflowHandle[Any, Any], timeout: float = 120.0) -> None:  # noqa: ASYNC109
    """Wait for a workflow to close, whichever way."""
    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout)


async def campaign_state(stack: Stack, campaign_id: str) -> str:
    return str((await stack.client.campaign_status(campaign_id))["state"])


async def mailbox_status(stack: Stack, mailbox_id: str) -> MailboxStatus:
    handle = stack.temporal.get_workflow_handle(mailbox_workflow_id(stack.settings.task_queue, mailbox_id))
    status: MailboxStatus = await handle.query(MailboxWorkflow.status)
    return status


# -- input, written the way an operator writes it ---------------------------------


def mailbox_spec(mailbox_id: str, port: int, password: str = "secret") -> MailboxSpec:
    return MailboxSpec.model_validate({
        "id": mailbox_id, "email": f"{mailbox_id}@sender.example.com", "smtp_host": "127.0.0.1",
        "smtp_port": port, "security": "none", "username": mailbox_id, "password": password,
        "daily_limit": 1000,
    })


async def new_campaign(stack: Stack, mailboxes: list[str], steps: list[dict[str, Any]],
                       emails: list[str]) -> str:
    spec = {
        "name": "Recorded for the replay tests", "workspace": "replay", "mailboxes": mailboxes,
        "steps": steps,
        "prospects": [{"email": e, "first_name": e.split("@")[0].title()} for e in emails],
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campaign.yaml"
        path.write_text(yaml.safe_dump(spec))
        return (await create_campaign(stack.pool, load_campaign_file(path))).id


# -- scenarios ----------------------------------------------------------------------


async def campaign_with_bounces(stack: Stack) -> None:
    """Two steps; a hard bounce, a soft bounce that exhausts its retries, one retried
    once, a throttled host; more sends than one step run takes, so steps continue as new."""
    inbox = stack.inbox
    inbox.script("hard@example.com", [(550, "5.1.1 User unknown")])
    inbox.script("soft@example.com", [(450, "4.2.1 Mailbox busy")] * 4)
    inbox.script("retried@example.com", [(451, "4.3.0 Try again later")])
    inbox.script("throttled@example.com", [(421, "4.7.0 Too many messages, slow down")])
    emails = ["hard@example.com", "soft@example.com", "retried@example.com", "throttled@example.com",
              "ada@example.com", "ben@example.com"]
    cid = await new_campaign(stack, ["mb-a", "mb-b"], [
        {"subject": "Hello {{ first_name }}", "body": "A first note."},
        {"delay": "5s", "body": "A follow-up."},
    ], emails)
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await closed(handle)
    status = await stack.client.campaign_status(cid)
    first = status["steps"][0]
    # The soft bounce that used up its attempts ends as "failed".
    if status["state"] != "completed" or not (first["hard_bounced"] and first["failed"]):
        raise RecordingFailed(f"campaign with bounces: {status}")
    await save(stack, "campaign-with-bounces", handle.id)
    endings = await save_step_runs(stack, "campaign-with-bounces", handle.id, cid, steps=2)
    if "continued-as-new" not in endings[1]:
        raise RecordingFailed(f"step 1 never continued as new: {endings}")
    # The soft-bounced sends waited between attempts in retry workflows of their own
    # (decision 0049): one used up its attempts, one was sent at its second.
    for email, name in (("soft@example.com", "soft"), ("retried@example.com", "retried")):
        prospect = await stack.pool.fetchval(
            "SELECT id FROM prospects WHERE campaign_id = $1 AND email = $2", cid, email)
        await save(stack, f"campaign-with-bounces-send-retry-{name}",
                   send_retry_workflow_id(stack.settings.task_queue, cid, 1, prospect))


async def campaign_with_bounces_alone(stack: Stack) -> None:
    """campaign_with_bounces with the mailboxes it needs, for a new path of the send
    (decision 0049: its soft bounces wait in retry workflows of their own)."""
    await import_mailboxes(stack.pool, [mailbox_spec("mb-a", stack.inbox.port),
                                        mailbox_spec("mb-b", stack.inbox.port)],
                           key_ring(stack.settings.secret_keys))
    await campaign_with_bounces(stack)


async def campaign_paused_and_resumed(stack: Stack) -> None:
    inbox = stack.inbox
    inbox.hang(at="data", seconds=0.3)  # slow sends, so the pause lands mid-campaign
    before = len(inbox.messages)
    cid = await new_campaign(stack, ["mb-b"], [{"subject": "Hi {{ first_name }}", "body": "Hello."}],
                             [f"paused{i}@example.com" for i in range(6)])
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await inbox.wait_for(lambda: len(inbox.messages) > before, timeout=60)
    await stack.client.pause_campaign(cid)
    await until("campaign paused", lambda: _state_is(stack, cid, "paused"))
    await stack.client.resume_campaign(cid)
    inbox.hang(at="data", seconds=0)
    await closed(handle)
    await save(stack, "campaign-paused-resumed", handle.id)
    await save_step_runs(stack, "campaign-paused-resumed", handle.id, cid, steps=1)


async def campaigns_taking_prospects(stack: Stack) -> None:
    """Prospects added to running campaigns (docs/decisions/0039): to one whose step 1
    had ended (started again), and to an open one, whose steps are told, then closed
    after a step's delay was edited."""
    inbox = stack.inbox
    steps = [{"subject": "Hello {{ first_name }}", "body": "A first note."},
             {"delay": "3s", "body": "A follow-up."}]
    cid = await new_campaign(stack, ["mb-a"], steps, ["early@example.com"])
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await inbox.wait_for(lambda: bool(inbox.messages_to("early@example.com")), timeout=60)
    step1 = stack.temporal.get_workflow_handle(step_workflow_id(stack.settings.task_queue, cid, 1))
    await asyncio.wait_for(step1.result(), 60)
    await stack.client.add_prospects(cid, [Prospect("late@example.com", {"first_name": "Late"}, "")])
    await closed(handle)
    if len(inbox.messages_to("late@example.com")) != 2:
        raise RecordingFailed("the prospect added after step 1 ended did not get both steps")
    await save(stack, "campaign-prospects-added", handle.id)
    await save_step_runs(stack, "campaign-prospects-added", handle.id, cid, steps=2)

    cid = await new_campaign(stack, ["mb-b"], steps, ["first@example.com"])
    await stack.pool.execute("UPDATE campaigns SET is_open = true WHERE id = $1", cid)
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await inbox.wait_for(lambda: len(inbox.messages_to("first@example.com")) == 2, timeout=60)
    await stack.client.add_prospects(cid, [Prospect("next@example.com", {"first_name": "Next"}, "")])
    await inbox.wait_for(lambda: len(inbox.messages_to("next@example.com")) == 1, timeout=60)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "campaign.yaml"
        path.write_text(yaml.safe_dump({
            "name": "edited", "workspace": "replay", "mailboxes": ["mb-b"], "prospects": [],
            "steps": [steps[0], {**steps[1], "delay": "1s"}]}))
        await stack.client.update_campaign(cid, path)
    await inbox.wait_for(lambda: len(inbox.messages_to("next@example.com")) == 2, timeout=60)
    await stack.client.close_campaign(cid)
    await closed(handle)
    if await campaign_state(stack, cid) != "completed":
        raise RecordingFailed("the open campaign did not complete once closed")
    await save(stack, "campaign-open-closed", handle.id)
    await save_step_runs(stack, "campaign-open-closed", handle.id, cid, steps=2)


async def _state_is(stack: Stack, campaign_id: str, state: str) -> bool:
    return await campaign_state(stack, campaign_id) == state


async def mailbox_paused_by_operator(stack: Stack) -> None:
    await stack.client.pause_mailbox("mb-a", reason="recorded pause")
    await stack.client.resume_mailbox("mb-a")


async def health_checks(stack: Stack) -> None:
    """A wrong password pauses the guarded mailbox (signal-with-start), the right one resumes it."""
    paused: HealthCheckResult = await run_maintenance(stack, "health-check", "health-check-pauses-a-mailbox")
    if paused.paused != [GUARDED]:
        raise RecordingFailed(f"health check did not pause {GUARDED}: {paused}")
    await until("health pause applied", lambda: _applied(stack, GUARDED, paused=True))
    ring = key_ring(stack.settings.secret_keys)
    await import_mailboxes(stack.pool, [mailbox_spec(GUARDED, stack.guarded.port)], ring)
    resumed: HealthCheckResult = await run_maintenance(
        stack, "health-check", "health-check-resumes-a-mailbox"
    )
    if resumed.resumed != [GUARDED]:
        raise RecordingFailed(f"health check did not resume {GUARDED}: {resumed}")
    await until("health resume applied", lambda: _applied(stack, GUARDED, paused=False))


async def _applied(stack: Stack, mailbox_id: str, paused: bool) -> bool:
    status = await mailbox_status(stack, mailbox_id)
    return status.applied and status.paused == paused


async def run_maintenance(stack: Stack, job: str, name: str) -> Any:
    """Run a maintenance workflow with the argument its schedule gives it; save its history."""
    (spec,) = [j for j in jobs(stack.settings) if j.name == job]
    workflow_id = f"{maintenance_workflow_id(stack.settings.task_queue, job)}-{name}"
    result = await stack.temporal.execute_workflow(
        spec.workflow, spec.arg, id=workflow_id, result_type=_RESULTS[job],
        task_queue=maintenance_task_queue(stack.settings.task_queue),
    )
    await save(stack, name, workflow_id)
    return result


async def mailboxes_ended(stack: Stack) -> None:
    """Mailbox workflows run for the mailbox's life: end them, then save them."""
    for mailbox_id, name in (("mb-a", "mailbox-operator-pause-resume"),
                             (GUARDED, "mailbox-health-pause-resume")):
        workflow_id = mailbox_workflow_id(stack.settings.task_queue, mailbox_id)
        await stack.temporal.get_workflow_handle(workflow_id).terminate("history recorded")
        await save(stack, name, workflow_id)
    await stack.temporal.get_workflow_handle(
        mailbox_workflow_id(stack.settings.task_queue, "mb-b")
    ).terminate("history recorded")


async def record(stack: Stack) -> None:
    ring = key_ring(stack.settings.secret_keys)
    await import_mailboxes(stack.pool, [
        mailbox_spec("mb-a", stack.inbox.port), mailbox_spec("mb-b", stack.inbox.port),
        mailbox_spec(GUARDED, stack.guarded.port, password="wrong"),
    ], ring)
    await campaign_with_bounces(stack)
    await campaign_paused_and_resumed(stack)
    await campaigns_taking_prospects(stack)
    await mailbox_paused_by_operator(stack)
    await health_checks(stack)
    await run_maintenance(stack, "reconcile", "reconcile")
    await run_maintenance(stack, "cleanup", "cleanup")
    await run_maintenance(stack, "inbox-poll", "inbox-poll")
    webhook: WebhookResult = await run_maintenance(stack, "webhook", "webhook")
    if webhook.delivered == 0:
        raise RecordingFailed("the webhook run delivered no event (each send is one, decision 0053)")
    await run_maintenance(stack, "variants", "variants")
    await mailboxes_ended(stack)


async def gate_failed_once(stack: Stack) -> None:
    """A step whose gate call fails (Redis refusing every attempt of the bounded call,
    decision 0043): the send goes back to the queue, its mailbox waits on a durable
    timer (2 min), then the gate answers and the send goes."""
    ring = key_ring(stack.settings.secret_keys)
    await import_mailboxes(stack.pool, [mailbox_spec(GATE_DOWN, stack.inbox.port)], ring)
    stack.gate_down.add(GATE_DOWN)
    cid = await new_campaign(stack, [GATE_DOWN], [{"subject": "Hi {{ first_name }}", "body": "Hello."}],
                             ["later@example.com"])
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    step = stack.temporal.get_workflow_handle(step_workflow_id(stack.settings.task_queue, cid, 1))
    await until("the gate failed and the mailbox waits on a timer", lambda: _waits_on_timer(step))
    stack.gate_down.discard(GATE_DOWN)
    await closed(handle, timeout=300)
    if (len(stack.inbox.messages_to("later@example.com")) != 1
            or await campaign_state(stack, cid) != "completed"):
        raise RecordingFailed("the send the failed gate held back did not go once after the wait")
    await save(stack, "campaign-gate-failed-once", handle.id)
    await save_step_runs(stack, "campaign-gate-failed-once", handle.id, cid, steps=1)
    await stack.temporal.get_workflow_handle(
        mailbox_workflow_id(stack.settings.task_queue, GATE_DOWN)
    ).terminate("history recorded")


async def _waits_on_timer(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        async for event in handle.fetch_history_events():
            if event.HasField("timer_started_event_attributes"):
                return True
    except RPCError:  # the step is not started yet
        pass
    return False


async def campaign_continued_as_new(stack: Stack) -> None:
    """An open two-step campaign whose workflow continues as new (its smallest history
    budget) while prospects are added, and it is paused and resumed; then closed
    (decision 0048). Its steps run on across the campaign's runs."""
    client = OutreachClient(stack.settings.model_copy(update={"campaign_events_per_run": 100}),
                            stack.temporal, stack.pool)
    steps = [{"subject": "Hello {{ first_name }}", "body": "A first note."},
             {"delay": "1s", "body": "A follow-up."}]
    cid = await new_campaign(stack, ["mb-a"], steps, ["lasting0@example.com"])
    await stack.pool.execute("UPDATE campaigns SET is_open = true WHERE id = $1", cid)
    handle = stack.temporal.get_workflow_handle(await client.start_campaign(cid))
    await until("campaign running", lambda: _state_is(stack, cid, "running"))
    for i in range(1, 7):
        await client.add_prospects(cid, [Prospect(f"lasting{i}@example.com", {"first_name": "L"}, "")])
        await client.pause_campaign(cid)
        await client.resume_campaign(cid)
    await client.close_campaign(cid)
    await closed(handle)
    if await campaign_state(stack, cid) != "completed" or any(
            len(stack.inbox.messages_to(f"lasting{i}@example.com")) != 2 for i in range(7)):
        raise RecordingFailed("the campaign that continued as new did not send each step once")
    if len(await save_runs(stack, "campaign-continued-as-new", handle.id)) < 2:
        raise RecordingFailed("the campaign never continued as new")
    await save_step_runs(stack, "campaign-continued-as-new", handle.id, cid, steps=2)


async def campaign_cancelled(stack: Stack) -> None:
    """A campaign cancelled while its steps send (slow sends): every step's latest run is
    cancelled and every open send gets its final state."""
    inbox = stack.inbox
    inbox.hang(at="data", seconds=0.3)
    before = len(inbox.messages)
    cid = await new_campaign(stack, ["mb-b"], [{"subject": "Hi {{ first_name }}", "body": "Hello."},
                                               {"delay": "1s", "body": "Again."}],
                             [f"cancelled{i}@example.com" for i in range(8)])
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await inbox.wait_for(lambda: len(inbox.messages) > before, timeout=60)
    await stack.client.cancel_campaign(cid)
    inbox.hang(at="data", seconds=0)
    await closed(handle)
    if await campaign_state(stack, cid) != "cancelled":
        raise RecordingFailed("the campaign did not end cancelled")
    await save_runs(stack, "campaign-cancelled", handle.id)
    await save_step_runs(stack, "campaign-cancelled", handle.id, cid, steps=2)


async def campaign_with_a_sender_problem(stack: Stack) -> None:
    """A send refused at login (wrong password): the step pauses its mailbox (a signal to
    MailboxWorkflow) and waits; the campaign is then cancelled."""
    ring = key_ring(stack.settings.secret_keys)
    await import_mailboxes(stack.pool, [mailbox_spec(GUARDED, stack.guarded.port, password="wrong")], ring)
    cid = await new_campaign(stack, [GUARDED], [{"subject": "Hi {{ first_name }}", "body": "Hello."}],
                             ["refused@example.com"])
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await until("the sender problem paused the mailbox", lambda: _applied(stack, GUARDED, paused=True))
    await stack.client.cancel_campaign(cid)
    await closed(handle)
    await save_runs(stack, "campaign-sender-problem", handle.id)
    await save_step_runs(stack, "campaign-sender-problem", handle.id, cid, steps=1)
    mailbox = stack.temporal.get_workflow_handle(mailbox_workflow_id(stack.settings.task_queue, GUARDED))
    await mailbox.terminate("history recorded")
    await save(stack, "mailbox-sender-problem-paused", mailbox.id)


async def campaign_refused_then_completed(stack: Stack) -> None:
    """Prospects written with no signal after step 1 ended: the completion check refuses,
    the steps run again, then the campaign completes (the refusal loop)."""
    inbox = stack.inbox
    cid = await new_campaign(stack, ["mb-a"], [{"subject": "Hi {{ first_name }}", "body": "Hello."},
                                               {"delay": "2s", "body": "Again."}],
                             ["before@example.com"])
    handle = stack.temporal.get_workflow_handle(await stack.client.start_campaign(cid))
    await inbox.wait_for(lambda: bool(inbox.messages_to("before@example.com")), timeout=60)
    step1 = stack.temporal.get_workflow_handle(step_workflow_id(stack.settings.task_queue, cid, 1))
    await asyncio.wait_for(step1.result(), 60)
    unheard = Prospect("unheard@example.com", {"first_name": "U"}, "")
    await campaign_controls.add_prospects(stack.pool, cid, [unheard])
    await closed(handle)
    if len(inbox.messages_to("unheard@example.com")) != 2 or await campaign_state(stack, cid) != "completed":
        raise RecordingFailed("the prospects no signal announced were not sent both steps")
    await save_runs(stack, "campaign-refused-then-completed", handle.id)
    await save_step_runs(stack, "campaign-refused-then-completed", handle.id, cid, steps=2)


async def mailbox_continued_as_new(stack: Stack) -> None:
    """A mailbox workflow that continues as new after its changes per run (here 2)."""
    ring = key_ring(stack.settings.secret_keys)
    await import_mailboxes(stack.pool, [mailbox_spec("mb-c", stack.inbox.port)], ring)
    workflow_id = mailbox_workflow_id(stack.settings.task_queue, "mb-c")
    await stack.temporal.start_workflow(
        MailboxWorkflow.run, MailboxInput(mailbox_id="mb-c", changes_per_run=2), id=workflow_id,
        task_queue=send_task_queue(stack.settings.task_queue))
    for _ in range(2):
        await stack.client.pause_mailbox("mb-c", reason="recorded pause")
        await stack.client.resume_mailbox("mb-c")
    if len(await all_runs(stack, workflow_id)) < 2:
        raise RecordingFailed("the mailbox workflow never continued as new")
    await stack.temporal.get_workflow_handle(workflow_id).terminate("history recorded")
    await save_runs(stack, "mailbox-continued-as-new", workflow_id)


async def campaigns(stack: Stack) -> None:
    """The campaign scenarios alone, as code of today runs them (decision 0048), and the
    paths issue 21 listed: cancel, a sender problem, the refusal loop, a mailbox's
    continue-as-new."""
    ring = key_ring(stack.settings.secret_keys)
    await import_mailboxes(stack.pool, [
        mailbox_spec("mb-a", stack.inbox.port), mailbox_spec("mb-b", stack.inbox.port),
    ], ring)
    await campaign_with_bounces(stack)
    await campaign_paused_and_resumed(stack)
    await campaigns_taking_prospects(stack)
    await campaign_continued_as_new(stack)
    await campaign_cancelled(stack)
    await campaign_with_a_sender_problem(stack)
    await campaign_refused_then_completed(stack)
    await mailbox_continued_as_new(stack)


# Scenarios that --only records alone, besides the maintenance jobs.
_ALONE = {"gate-failed-once": gate_failed_once, "campaigns": campaigns,
          "campaign-with-bounces": campaign_with_bounces_alone}


async def record_only(stack: Stack, jobs_: list[str]) -> None:
    """Only these scenarios' histories: maintenance jobs (a new workflow type after the
    first recording: its history goes into a folder of its own, decision 0025) or _ALONE."""
    for job in jobs_:
        if job in _ALONE:
            await _ALONE[job](stack)
        else:
            await run_maintenance(stack, job, job)


# -- the stack ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str) -> AsyncIterator[str]:
    name = f"outreach_histories_{secrets.token_hex(4)}"
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    await migrate(url)  # creates the database, then the schema
    try:
        yield url
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def redis_under(url: str, prefix: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.from_url(url)
    try:
        yield redis
    finally:
        keys = [k async for k in redis.scan_iter(f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A local receiver that takes every POST (its URL, and the bodies it got): the
    recorded campaigns' sends are webhook events (decision 0053), delivered for real."""
    bodies: list[bytes] = []

    async def take(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/outreach-webhook", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/outreach-webhook", bodies
    finally:
        await runner.cleanup()


def recording_settings(database_url: str, redis_url: str, prefix: str, webhook_url: str) -> Settings:
    """Fast and small: no spacing, short retries, four sends per step run."""
    return history_settings(
        database_url=database_url, redis_url=redis_url, task_queue=prefix, metrics_port=0,
        mailbox_spacing=0.0, limit_other_per_minute=100_000, limit_other_connections=100,
        step_min_sleep_seconds=0.5, paused_recheck_seconds=0.5, send_first_retry_seconds=0.2,
        limit_throttle_jitter_seconds=1.0, step_sends_per_run=4,
        retention_sent_days=0.0, retention_failed_days=0.0, maintenance_timeout_seconds=60.0,
        webhook_url=webhook_url,  # turns the webhook schedule on
        webhook_secret="recording-only-webhook-secret",  # no webhook starts without one (0047)
    )


def with_gate_outage(activities: list[Callable[..., Any]], down: set[str]) -> list[Callable[..., Any]]:
    """The send worker's activities, the gate (same name) failing as it does while Redis
    is down for the mailboxes in ``down``, and the real gate for every other."""
    (real,) = [a for a in activities if getattr(a, "__name__", "") == GATE_SEND]

    @activity.defn(name=GATE_SEND)
    async def gate_send(inp: GateInput) -> GateResult:
        if inp.mailbox_id in down:
            raise LimitStoreUnavailable("redis: Error 111 connecting. Connection refused. (recorded)")
        result: GateResult = await real(inp)
        return result

    return [gate_send if a is real else a for a in activities]


def workers(stack: Stack, redis: aioredis.Redis) -> tuple[Worker, Worker, Any]:
    settings = stack.settings
    transport = build_transport(settings, redis)
    activities = with_gate_outage(build_activities(settings, stack.pool, redis, transport), stack.gate_down)
    sends = Worker(
        stack.temporal, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=activities, identity=IDENTITY,
        max_concurrent_activities=100, interceptors=[ActivityLogContext()],
    )
    maintenance = Worker(
        stack.temporal, task_queue=maintenance_task_queue(settings.task_queue),
        workflows=maintenance_workflows(), identity=IDENTITY,
        activities=build_maintenance_activities(settings, stack.pool, stack.temporal),
    )
    return sends, maintenance, transport


async def main(out: Path, pg_admin_url: str, redis_url: str, only: list[str] | None = None) -> dict[str, int]:
    prefix = f"histories-{secrets.token_hex(4)}"
    async with (
        fresh_database(pg_admin_url) as database_url,
        redis_under(redis_url, prefix) as redis,
        LocalSmtpServer() as inbox,
        LocalSmtpServer(credentials={GUARDED: "secret"}) as guarded,
        webhook_receiver() as (webhook_url, _),
    ):
        settings = recording_settings(database_url, redis_url, prefix, webhook_url)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
            data_converter=data_converter(settings), identity=IDENTITY,
            dev_server_log_level="error", search_attributes=SEARCH_ATTRIBUTES,
        )
        pool = await create_pool(database_url, max_size=20)
        stack = Stack(settings, env.client, pool, inbox, guarded,
                      OutreachClient(settings, env.client, pool), out, {})
        sends, maintenance, transport = workers(stack, redis)
        try:
            async with sends, maintenance:
                await (record_only(stack, only) if only else record(stack))
        finally:
            await transport.close()
            await pool.close()
            await env.shutdown()
    return stack.files


def prepare(out: Path, replace: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    old = sorted(out.glob("*.json"))
    if old and not replace:
        sys.exit(f"{out} already holds {len(old)} histories; --replace overwrites them (only before the"
                 " first release tag: docs/decisions/0025), or record into a new folder with --out")
    for path in old:
        path.unlink()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=HISTORIES_DIR)
    parser.add_argument("--replace", action="store_true", help="delete OUT's histories first")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", action="append", choices=sorted([*_RESULTS, *_ALONE]),
                        help="record only this maintenance job's or scenario's histories (repeatable)")
    args = parser.parse_args()
    # The bounces are on purpose: the SDK's warning with a stack trace for each is noise here.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    prepare(args.out, args.replace)
    files = asyncio.run(main(args.out, args.pg_admin_url, args.redis_url, args.only))
    for name, size in sorted(files.items()):
        print(f"{size:>8}  {args.out / name}")
    print(f"{sum(files.values()):>8}  bytes in {len(files)} histories")


if __name__ == "__main__":
    cli()
