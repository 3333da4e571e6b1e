"""`outreach workflows replay` (client/replay.py, client/workflows_cli.py) on a Temporal dev
server with a worker: a running campaign's executions replay against this code; a
non-deterministic change to the step workflow fails them with the step's workflow id and
the first event the change disagrees with; an unreachable server and a refused query are
bad input (exit status 2)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from datetime import timedelta

import asyncpg
import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from client.replay import ReplayedRun, describe_failure, registered_workflows, running_query
from config.names import campaign_workflow_id, mailbox_workflow_id, step_workflow_id
from config.secrets import generate_entry
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_cli import outreach
from workflows.campaign_step import CampaignStepWorkflow
from workflows.models import StepInput, StepResult

STEPS = [("Hello {{ first_name }}", "Step one", 0), ("Re: Hello {{ first_name }}", "Step two", 1)]


@workflow.defn(name="CampaignStepWorkflow")
class StepWithAnExtraTimer(CampaignStepWorkflow):
    """The step workflow with a durable timer before its first claim: a change the
    histories of running step executions do not have."""

    @workflow.run
    async def run(self, inp: StepInput) -> StepResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(inp)


async def running_campaign(
    db: asyncpg.Pool, inbox: LocalSmtpServer, client: OutreachClient, dev_server: WorkflowEnvironment,
    settings: Settings,
) -> dict[str, str]:
    """An open campaign past its sends: it and both steps wait for prospects, its mailbox's
    workflow runs for ever. Returns their workflow ids by role, once visibility lists them."""
    await add_mailbox(db, "mb-replay", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-replay"], ["r@example.com"], STEPS)
    await db.execute("UPDATE campaigns SET is_open = true WHERE id = $1", campaign_id)
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages_to("r@example.com")) >= 2, timeout=60)
    prefix = settings.task_queue
    ids = {"campaign": campaign_workflow_id(prefix, campaign_id),
           "step-1": step_workflow_id(prefix, campaign_id, 1),
           "step-2": step_workflow_id(prefix, campaign_id, 2),
           "mailbox": mailbox_workflow_id(prefix, "mb-replay")}
    deadline = time.monotonic() + 30
    query = running_query(settings)
    while {w.id async for w in dev_server.client.list_workflows(query)} != set(ids.values()):
        assert time.monotonic() < deadline, "visibility does not list the campaign's four running workflows"
        await asyncio.sleep(0.2)
    return ids


def event_type_name(core_name: str) -> str:
    """Core's ``ActivityTaskScheduled`` as the API's ``EVENT_TYPE_ACTIVITY_TASK_SCHEDULED``."""
    return "EVENT_TYPE_" + re.sub(r"(?<!^)(?=[A-Z])", "_", core_name).upper()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_running_campaign_replays_against_this_code(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    dev_server: WorkflowEnvironment, e2e_settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await running_campaign(db, inbox, client, dev_server, e2e_settings)

    ran = await outreach(e2e_settings, "workflows", "replay")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.strip().splitlines()[-1] == "replayed 4 workflow(s): 0 failed"
    assert "fetched 4/4 histories" in ran.stderr and "replayed 4/4 histories" in ran.stderr

    ran = await outreach(e2e_settings, "workflows", "replay", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads(ran.stdout)
    # Only this installation's workflows: the dev server holds other tests' too.
    assert {w["workflow_id"] for w in report["workflows"]} == set(ids.values())
    assert report["by_type"] == {"CampaignStepWorkflow": 2, "CampaignWorkflow": 1, "MailboxWorkflow": 1}
    assert (report["replayed"], report["failed"], report["failures"]) == (4, 0, [])

    ran = await outreach(e2e_settings, "workflows", "replay", "--limit", "2", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (json.loads(ran.stdout)["replayed"], json.loads(ran.stdout)["limit_reached"]) == (2, True)
    assert "note: stopped at --limit 2" in ran.stderr

    # Without the keys the payloads are sealed under, nothing decodes: bad input, said once.
    monkeypatch.setenv("OUTREACH_SECRET_KEYS", generate_entry("not-production"))
    ran = await outreach(e2e_settings, "workflows", "replay")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "cannot decode the input of" in ran.stderr and "not in OUTREACH_SECRET_KEYS" in ran.stderr


async def test_a_non_deterministic_step_workflow_fails_naming_the_step_and_its_first_differing_event(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    dev_server: WorkflowEnvironment, e2e_settings: Settings,
) -> None:
    ids = await running_campaign(db, inbox, client, dev_server, e2e_settings)
    changed = [StepWithAnExtraTimer if w is CampaignStepWorkflow else w for w in registered_workflows()]
    stages: set[str] = set()

    report = await client.replay_workflows(
        workflows=changed, progress=lambda stage, done, total: stages.add(f"{stage} {done}/{total}"))

    assert {r.workflow_id for r in report.runs} == set(ids.values())
    assert {"fetched 4/4", "replayed 4/4"} <= stages
    assert sorted(f.workflow_id for f in report.failures) == [ids["step-1"], ids["step-2"]]
    assert report.summary() == "replayed 4 workflow(s): 2 failed"
    for failure in report.failures:
        assert failure.workflow_type == "CampaignStepWorkflow" and "Nondeterminism" in failure.reason
        # The event named is the history's own: where the recorded run did something else
        # than start the new timer.
        assert failure.event_id is not None and failure.event_type is not None
        history = await client.temporal.get_workflow_handle(
            failure.workflow_id, run_id=failure.run_id).fetch_history()
        event = history.events[failure.event_id - 1]
        assert event.event_id == failure.event_id
        assert EventType.Name(event.event_type) == event_type_name(failure.event_type)
        assert failure.line().startswith(
            f"FAILED {failure.workflow_id} run {failure.run_id} (CampaignStepWorkflow):"
            f" event {failure.event_id} ({failure.event_type}): ")


async def test_an_unreachable_server_and_a_refused_query_are_bad_input(e2e_settings: Settings) -> None:
    address = f"127.0.0.1:{free_port()}"
    ran = await outreach(e2e_settings.model_copy(update={"temporal_address": address}), "workflows", "replay")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert f"error: cannot reach Temporal at {address}" in ran.stderr and "Traceback" not in ran.stderr

    ran = await outreach(e2e_settings, "workflows", "replay", "--query", "WorkflowId = ")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "the server refused the query 'WorkflowId = '" in ran.stderr
    assert "invalid query: malformed SQL query" in ran.stderr  # the server's own reason
    assert "Traceback" not in ran.stderr and ran.stdout == ""


def test_a_workflow_that_raises_is_reported_with_its_exception_and_where_it_was_raised() -> None:
    # The replayer's report of a workflow task that raised (core's dump), shortened.
    dump = ('4: Workflow activation completion failed: Failure { failure: Some(Failure { message:'
            ' "boom \\"quoted\\"", source: "", stack_trace: "  File \\"/venv/temporalio/x.py\\", line 5,'
            ' in activate\\n  File \\"/app/workflows/campaign_step.py\\", line 24, in run\\n",'
            ' encoded_attributes: None, cause: None, failure_info: Some(ApplicationFailureInfo('
            'ApplicationFailureInfo { r#type: "RuntimeError", non_retryable: false }) }), force_cause:'
            ' Unspecified }')
    failure = describe_failure(ReplayedRun("wf", "run", "CampaignStepWorkflow"), RuntimeError(dump))
    assert (failure.event_id, failure.event_type) == (None, None)
    assert failure.reason == 'RuntimeError: boom "quoted" (at /app/workflows/campaign_step.py:24 in run)'
    assert failure.line() == f"FAILED wf run run (CampaignStepWorkflow): {failure.reason}"
