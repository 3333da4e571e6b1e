"""Operator controls on a running campaign (issue 15; docs/decisions/0039): list, add
prospects to a running or open campaign, close, workspace dedupe, stop a prospect.

Against the real stack: PostgreSQL, Redis, the Temporal dev server with a worker, and
an in-process SMTP server; the CLI runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from config.names import step_workflow_id
from config.settings import Settings
from localsmtp.server import AcceptedMessage, LocalSmtpServer
from specs import SpecError
from specs.campaigns import CampaignSpec
from specs.mailboxes import MailboxSpec
from specs.prospects import Prospect
from store import campaign_controls, ledger
from store.campaign_controls import CampaignFinished
from store.ledger import DataStart
from store.suppressions import Scope
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from tests.integration.test_cli import outreach, row_counts

STEPS = [("Hello {{ first_name }}", "Step one", 0), ("Re: Hello {{ first_name }}", "Step two", 1)]


def csv_file(tmp_path: Path, name: str, rows: list[str], header: str = "email,first_name") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n", "utf-8")
    return path


def people(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}@example.com,{prefix.title()}{i}" for i in range(n)]


async def sent_to(inbox: LocalSmtpServer, address: str, steps: int) -> None:
    await inbox.wait_for(lambda: len(inbox.messages_to(address)) >= steps, timeout=60)


async def test_list_shows_state_workspace_and_progress_and_filters_by_state(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-list", inbox.port)
    done_id, _ = await add_campaign(db, ["mb-list"], ["a@example.com", "b@example.com"], STEPS[:1])
    idle_id, _ = await add_campaign(db, ["mb-list"], ["c@example.com"], STEPS, workspace="other")
    await client.start_campaign(done_id)
    await wait_for_state(client, done_id, "completed", timeout=120)

    ran = await outreach(e2e_settings, "campaigns", "list", "--json")
    assert ran.returncode == 0, ran.stderr
    listed = {c["id"]: c for c in json.loads(ran.stdout)}
    assert listed[done_id] == {"id": done_id, "name": "test", "workspace": "ws", "state": "completed",
                               "open": False, "prospects": 2, "progress": {"done": 2, "total": 2}}
    assert listed[idle_id]["state"] == "created" and listed[idle_id]["workspace"] == "other"
    assert listed[idle_id]["progress"] == {"done": 0, "total": 2}

    only = await outreach(e2e_settings, "campaigns", "list", "--state", "created")
    assert only.returncode == 0, only.stderr
    assert idle_id in only.stdout and done_id not in only.stdout
    bad = await outreach(e2e_settings, "campaigns", "list", "--state", "finished")
    assert bad.returncode == 2 and "finished" in bad.stderr


async def test_prospects_added_to_a_running_campaign_reach_every_step_after_step_one_ended(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-add", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-add"], ["first@example.com"],
                                        [STEPS[0], ("Re: Hello {{ first_name }}", "Step two", 30)])
    await client.start_campaign(campaign_id)
    await sent_to(inbox, "first@example.com", 1)
    # Step 1 has ended (nothing left); step 2 waits 30 s for its one prospect.
    step1 = dev_server.client.get_workflow_handle(step_workflow_id(e2e_settings.task_queue, campaign_id, 1))
    await step1.result()
    await client.suppress_add("blocked@example.com", scope=Scope.workspace("ws"))

    added = await client.add_prospects(campaign_id, csv_file(tmp_path, "more.csv", [
        *people("new", 3), "first@example.com,Again", "blocked@example.com,Blocked"]))
    assert (added.added, added.duplicates, added.suppressed) == (4, 1, 1)
    for i in range(3):
        await sent_to(inbox, f"new{i}@example.com", 2)
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert [s["sent"] for s in status["steps"]] == [4, 4]
    assert status["prospects"]["suppressed"] == 1
    assert not inbox.messages_to("blocked@example.com")
    assert len(inbox.messages_to("first@example.com")) == 2
    # The step 1 workflow that had ended was started again.
    runs = [w async for w in dev_server.client.list_workflows(f"WorkflowId = '{step1.id}'")]
    assert len(runs) == 2


async def test_open_campaign_waits_for_prospects_until_closed(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-open", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-open"], ["o@example.com"], STEPS)
    await db.execute("UPDATE campaigns SET is_open = true WHERE id = $1", campaign_id)
    await client.start_campaign(campaign_id)
    await sent_to(inbox, "o@example.com", 2)
    # Nothing left to send, and still running: it waits for prospects.
    await asyncio.sleep(2)
    assert (await client.campaign_status(campaign_id))["state"] == "running"

    ran = await outreach(e2e_settings, "campaigns", "add-prospects", campaign_id,
                         str(csv_file(tmp_path, "late.csv", people("late", 2))))
    assert ran.returncode == 0, ran.stderr
    assert "added 2 prospect(s)" in ran.stdout
    await sent_to(inbox, "late0@example.com", 2)
    await sent_to(inbox, "late1@example.com", 2)
    assert (await client.campaign_status(campaign_id))["state"] == "running"

    closed = await outreach(e2e_settings, "campaigns", "close", campaign_id)
    assert closed.returncode == 0, closed.stderr
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert [s["sent"] for s in status["steps"]] == [3, 3]
    assert len(inbox.messages) == 6


async def test_add_prospects_refuses_a_finished_campaign_and_a_bad_file_changing_nothing(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-bad", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-bad"], ["x@example.com"], STEPS)
    bad = csv_file(tmp_path, "bad.csv", ["ok@example.com,Ok", "not-an-address,Nope", "y@example.com,"])
    with pytest.raises(SpecError) as caught:
        await client.add_prospects(campaign_id, bad)
    assert "bad.csv line 3, column email" in str(caught.value)
    lacking = csv_file(tmp_path, "lacking.csv", ["z@example.com"], header="email")
    before = await row_counts(db)
    ran = await outreach(e2e_settings, "campaigns", "add-prospects", campaign_id, str(lacking))
    assert ran.returncode == 2
    assert "lacking.csv line 1 (header)" in ran.stderr and "first_name" in ran.stderr
    assert await row_counts(db) == before

    good = csv_file(tmp_path, "good.csv", people("g", 1))
    await db.execute("UPDATE campaigns SET state = 'completed' WHERE id = $1", campaign_id)
    with pytest.raises(CampaignFinished, match="is completed"):
        await client.add_prospects(campaign_id, good)
    await db.execute("UPDATE campaigns SET state = 'cancelled' WHERE id = $1", campaign_id)
    with pytest.raises(CampaignFinished, match="is cancelled"):
        await client.add_prospects(campaign_id, good)
    ran = await outreach(e2e_settings, "campaigns", "add-prospects", campaign_id, str(good))
    assert ran.returncode == 2 and f"campaign {campaign_id} is cancelled" in ran.stderr
    assert await row_counts(db) == before


async def test_concurrent_add_prospects_from_two_shells_adds_each_address_once(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-race", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-race"], ["seed@example.com"], STEPS)
    shared = people("both", 200)
    one = csv_file(tmp_path, "one.csv", [*shared, *people("one", 50)])
    two = csv_file(tmp_path, "two.csv", [*people("two", 50), *shared])
    first, second = await asyncio.gather(
        outreach(e2e_settings, "campaigns", "add-prospects", campaign_id, str(one)),
        outreach(e2e_settings, "campaigns", "add-prospects", campaign_id, str(two)),
    )
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    total = await db.fetchval("SELECT count(*) FROM prospects WHERE campaign_id = $1", campaign_id)
    assert total == 1 + 200 + 50 + 50
    outputs = first.stdout + second.stdout
    # One shell added the shared 200; the other found them there.
    assert "skipped 200 already in the campaign" in outputs and "skipped 0 already" in outputs


async def test_workspace_dedupe_skips_prospects_active_in_another_running_campaign(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-dd", inbox.port)
    running_id, _ = await add_campaign(db, ["mb-dd"], ["busy@example.com", "done@example.com"], STEPS)
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", running_id)
    await db.execute("UPDATE prospects SET status = 'replied' WHERE email = 'done@example.com'")
    other_ws, _ = await add_campaign(db, ["mb-dd"], ["elsewhere@example.com"], STEPS, workspace="ws2")
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", other_ws)
    (tmp_path / "p.csv").write_text(
        "email,first_name\nBusy@example.com,B\ndone@example.com,D\nelsewhere@example.com,E\nfree@example.com,F\n"
    )
    (tmp_path / "c.yaml").write_text(
        "name: second\nworkspace: ws\nmailboxes: [mb-dd]\ndedupe: workspace\nprospects_csv: p.csv\n"
        "steps:\n  - subject: 'Hi {{ first_name }}'\n    body: Hello\n"
    )
    created = await outreach(e2e_settings, "campaigns", "create", str(tmp_path / "c.yaml"))
    assert created.returncode == 0, created.stderr
    assert "created campaign with 3 prospect(s)" in created.stdout
    assert "1 skipped (active in another running campaign)" in created.stdout
    new_id = created.stdout.strip().splitlines()[-1]
    rows = await db.fetch("SELECT email FROM prospects WHERE campaign_id = $1", new_id)
    emails = {r["email"] for r in rows}
    assert emails == {"done@example.com", "elsewhere@example.com", "free@example.com"}

    # add-prospects: --dedupe workspace on a campaign created without it.
    plain_id, _ = await add_campaign(db, ["mb-dd"], ["seed@example.com"], STEPS)
    more = csv_file(tmp_path, "more.csv", ["busy@example.com,B", "fresh@example.com,F"])
    ran = await outreach(e2e_settings, "campaigns", "add-prospects", plain_id, str(more),
                         "--dedupe", "workspace")
    assert ran.returncode == 0, ran.stderr
    assert "added 1 prospect(s)" in ran.stdout and "1 active in another running campaign" in ran.stdout


async def test_stopped_prospect_gets_nothing_more_and_its_queued_send_is_skipped(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-stop", inbox.port)
    campaign_id, ids = await add_campaign(db, ["mb-stop"], ["s0@example.com", "s1@example.com",
                                                            "s2@example.com"], STEPS)
    # s1: a queued step 1 send (claimed, not yet sent). s2: a send already in flight.
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state)"
        " VALUES ($1, 1, $2, 'mb-stop', '<q@x>', 'queued'), ($1, 1, $3, 'mb-stop', '<s@x>', 'queued')",
        campaign_id, ids[1], ids[2],
    )
    await ledger.begin_attempt(db, campaign_id, 1, ids[2])

    ran = await outreach(e2e_settings, "prospects", "stop", campaign_id, "S1@example.com",
                         "--reason", "asked by phone")
    assert ran.returncode == 0, ran.stderr
    assert "1 queued send(s) skipped" in ran.stdout
    stopped = await client.stop_prospect(campaign_id, str(ids[2]))
    assert stopped.email == "s2@example.com" and stopped.skipped == 0  # in flight: not queued
    # The in-flight send meets the check right before DATA.
    assert await ledger.mark_data_started(db, campaign_id, 1, ids[2]) is DataStart.PROSPECT_STOPPED
    row = await db.fetchrow("SELECT status, stop_reason FROM prospects WHERE id = $1", ids[1])
    assert dict(row) == {"status": "stopped", "stop_reason": "asked by phone"}
    again = await outreach(e2e_settings, "prospects", "stop", campaign_id, "s1@example.com")
    assert again.returncode == 2 and "already stopped" in again.stderr
    unknown = await outreach(e2e_settings, "prospects", "stop", campaign_id, "nobody@example.com")
    assert unknown.returncode == 2 and "no prospect 'nobody@example.com'" in unknown.stderr

    await db.execute("UPDATE sends SET state = 'skipped' WHERE prospect_id = $1", ids[2])
    await client.start_campaign(campaign_id)
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert [m.rcpt_tos[0] for m in inbox.messages] == ["s0@example.com", "s0@example.com"]
    assert status["prospects"]["stopped"] == 2
    assert status["steps"][0]["skipped"] == 2


async def test_retiring_a_paused_mailbox_with_reassign_lets_the_campaign_complete(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-dead", inbox.port)
    await add_mailbox(db, "mb-live", inbox.port)
    emails = [f"r{i}@example.com" for i in range(6)]  # round-robin: r0, r2, r4 on mb-dead
    campaign_id, ids = await add_campaign(db, ["mb-dead", "mb-live"], emails, STEPS)
    # r0 is mid-sequence on mb-dead: step 1 went out before the mailbox died.
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, sent_at,"
        " finished_at) VALUES ($1, 1, $2, 'mb-dead', '<r0@sender.example.com>', 'sent', now(), now())",
        campaign_id, ids[0],
    )
    await client.pause_mailbox("mb-dead", reason="account suspended")
    await client.start_campaign(campaign_id)
    for i in (1, 3, 5):
        await sent_to(inbox, f"r{i}@example.com", 2)
    await asyncio.sleep(1)
    assert (await client.campaign_status(campaign_id))["state"] == "running"  # stuck on mb-dead

    ran = await outreach(e2e_settings, "mailboxes", "retire", "mb-dead", "--reassign")
    assert ran.returncode == 0, ran.stderr
    assert "2 prospect(s) moved" in ran.stdout and "1 ended" in ran.stdout

    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert {m.mail_from for m in inbox.messages} == {"mb-live@sender.example.com"}
    for i in (2, 4):
        assert len(inbox.messages_to(f"r{i}@example.com")) == 2
    assert not inbox.messages_to("r0@example.com")
    r0 = await db.fetchrow("SELECT status, stop_reason FROM prospects WHERE id = $1", ids[0])
    assert dict(r0) == {"status": "stopped", "stop_reason": "mailbox_retired"}
    # r0's step 2 was never claimed: a paused mailbox's prospects are not (decision 0046).
    assert status["steps"][1]["skipped"] == 0
    assert not await db.fetchval("SELECT count(*) FROM sends WHERE prospect_id = $1 AND step = 2", ids[0])
    assert [s["sent"] for s in status["steps"]] == [6, 5]


async def test_retiring_the_last_mailbox_is_refused_unless_forced(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-only", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-only"], ["l0@example.com", "l1@example.com"], STEPS)
    await client.pause_mailbox("mb-only", reason="blocked")
    await client.start_campaign(campaign_id)

    refused = await outreach(e2e_settings, "mailboxes", "retire", "mb-only", "--reassign")
    assert refused.returncode == 2
    assert f"last one of campaign(s) {campaign_id}" in refused.stderr and "--force" in refused.stderr
    assert await db.fetchval("SELECT retired_at FROM mailboxes WHERE id = 'mb-only'") is None
    assert await db.fetchval("SELECT count(*) FROM prospects WHERE status = 'active'") == 2

    forced = await outreach(e2e_settings, "mailboxes", "retire", "mb-only", "--force")
    assert forced.returncode == 0, forced.stderr
    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert status["prospects"]["stopped"] == 2 and not inbox.messages
    await client.resume_mailbox("mb-only")  # unpaused, and still retired: no capacity counted
    assert (await client.campaign_progress(campaign_id))["progress"]["limit_per_minute"] == 0
    again = await outreach(e2e_settings, "mailboxes", "retire", "mb-only")
    assert again.returncode == 2 and "already retired" in again.stderr
    (tmp_path / "p.csv").write_text("email,first_name\nn@example.com,N\n")
    (tmp_path / "c.yaml").write_text(
        "name: n\nworkspace: ws\nmailboxes: [mb-only]\nprospects_csv: p.csv\n"
        "steps:\n  - subject: 'Hi {{ first_name }}'\n    body: Hello\n"
    )
    created = await outreach(e2e_settings, "campaigns", "create", str(tmp_path / "c.yaml"))
    assert created.returncode == 2 and "retired mailbox(es): mb-only" in created.stderr


def body_of(message: AcceptedMessage) -> str:
    parsed = email.message_from_bytes(message.raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).strip()


def campaign_yaml(tmp_path: Path, steps: str, mailboxes: str = "[mb-up]", workspace: str = "ws") -> Path:
    path = tmp_path / "update.yaml"
    path.write_text(f"name: test\nworkspace: {workspace}\nmailboxes: {mailboxes}\n"
                    f"prospects_csv: gone.csv\nsteps:\n{steps}", "utf-8")
    return path


UPDATED = ("  - subject: 'Hello {{ first_name }}'\n    body: Step one\n"
           "  - body: 'New step two for {{ first_name }}'\n    delay: 1s\n")


async def test_update_changes_a_running_campaigns_unsent_step_and_moves_its_due_time(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-up", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-up"], ["e0@example.com", "e1@example.com"],
                                        [STEPS[0], ("Re: Hello {{ first_name }}", "Old step two", 3600)])
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) == 2, timeout=60)  # step 1; step 2 is 1 h away

    ran = await outreach(e2e_settings, "campaigns", "update", campaign_id,
                         str(campaign_yaml(tmp_path, UPDATED)))
    assert ran.returncode == 0, ran.stderr
    assert "step(s) 2 updated" in ran.stdout
    # Due in 1 s now, not 1 h: the step's timer was computed anew.
    status = await wait_for_state(client, campaign_id, "completed", timeout=60)
    assert [s["sent"] for s in status["steps"]] == [2, 2]
    follow_ups = [m for m in inbox.messages if m.in_reply_to]
    assert len(follow_ups) == 2
    assert sorted(body_of(m) for m in follow_ups) == ["New step two for P0", "New step two for P1"]


async def test_update_is_refused_before_anything_changes(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, tmp_path: Path,
    client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-up", inbox.port)
    campaign_id, ids = await add_campaign(db, ["mb-up"], ["k0@example.com", "k1@example.com"], STEPS)
    await db.execute("UPDATE prospects SET fields = fields || $2 WHERE id = $1", ids[0], {"company": "Acme"})
    steps = "SELECT * FROM steps WHERE campaign_id = $1 ORDER BY step"
    before = await db.fetch(steps, campaign_id)

    async def refused(path: Path, *expected: str) -> None:
        ran = await outreach(e2e_settings, "campaigns", "update", campaign_id, str(path))
        assert ran.returncode == 2, ran.stdout
        for text in expected:
            assert text in ran.stderr
        assert await db.fetch(steps, campaign_id) == before

    lacking = UPDATED.replace("New step two for", "{{ company }} news for")
    await refused(campaign_yaml(tmp_path, lacking),
                  "prospect k1@example.com (id", "step 2 body uses {{ company }}, which this prospect lacks")
    await refused(campaign_yaml(tmp_path, UPDATED + "  - body: Three\n    delay: 2d\n"),
                  "has 3 step(s), the campaign 2: steps cannot be added or removed")
    await refused(campaign_yaml(tmp_path, "  - subject: Hi\n    body: One\n"),
                  "has 1 step(s), the campaign 2")
    await refused(campaign_yaml(tmp_path, UPDATED, workspace="elsewhere"), "workspace: is 'elsewhere'")
    await refused(campaign_yaml(tmp_path, UPDATED.replace("1s", "soon")), "steps[2].delay", "not a delay")
    await refused(campaign_yaml(tmp_path, UPDATED, mailboxes="[mb-up, mb-other]"),
                  "mailboxes: mb-other, mb-up differ")

    await db.execute("UPDATE campaigns SET state = 'completed' WHERE id = $1", campaign_id)
    await refused(campaign_yaml(tmp_path, UPDATED), f"campaign {campaign_id} is completed")


async def test_campaign_does_not_complete_over_prospects_whose_signal_never_came(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment,
) -> None:
    """The completion check, not the signal, is what keeps a prospect from being left
    behind: prospects written with no signal at all (as if it were lost, or came after
    the steps ended) are still sent every step before the campaign completes."""
    await add_mailbox(db, "mb-late", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-late"], ["early@example.com"],
                                        [STEPS[0], ("Re: Hello {{ first_name }}", "Step two", 2)])
    await client.start_campaign(campaign_id)
    await sent_to(inbox, "early@example.com", 1)
    step1 = dev_server.client.get_workflow_handle(step_workflow_id(e2e_settings.task_queue, campaign_id, 1))
    await step1.result()  # step 1 has ended; step 2 waits for early@ and then ends
    prospect = Prospect("late@example.com", {"first_name": "Late"}, "test")
    added = await campaign_controls.add_prospects(db, campaign_id, [prospect])  # the store only: no signal
    assert added.added == 1

    status = await wait_for_state(client, campaign_id, "completed", timeout=120)
    assert [s["sent"] for s in status["steps"]] == [2, 2]
    assert len(inbox.messages_to("late@example.com")) == 2


async def test_the_client_creates_from_models_and_reports_progress_and_traces(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient,
) -> None:
    mailbox = MailboxSpec.model_validate({
        "id": "mb-model", "email": "mb-model@sender.example.com", "smtp_host": "127.0.0.1",
        "smtp_port": inbox.port, "security": "none", "username": "mb-model", "password": "secret",
        "daily_limit": 1000,
    })
    assert await client.import_mailboxes([mailbox]) == ["mb-model"]
    spec = CampaignSpec.model_validate({
        "name": "from a model", "workspace": "ws", "mailboxes": ["mb-model"],
        "steps": [{"subject": "Hi {{ first_name }}", "body": "Hello"}],
        "prospects": [{"email": "m0@example.com", "first_name": "M"}, {"email": "m1@example.com"}],
    })
    with pytest.raises(SpecError, match=r"prospects\[2\].*first_name"):
        await client.create_campaign(spec)
    spec.prospects = spec.prospects[:1] if spec.prospects else None
    created = await client.create_campaign(spec, open_for_prospects=True)
    assert created.prospects == 1
    assert [(c.id, c.open) for c in await client.list_campaigns()] == [(created.id, True)]

    await client.start_campaign(created.id)
    await sent_to(inbox, "m0@example.com", 1)
    await client.close_campaign(created.id)
    await wait_for_state(client, created.id, "completed", timeout=60)
    progress = await client.campaign_progress(created.id)
    assert progress["progress"]["steps"] == [{"step": 1, "done": 1, "total": 1}]
    assert progress["progress"]["remaining"] == 0
    [traced] = await client.trace("m0@example.com")
    assert [(s.step, s.state, s.mailbox_id) for s in traced.sends] == [(1, "sent", "mb-model")]
    for _ in range(100):  # visibility is indexed a moment after the run
        if urls := await client.send_urls(traced.sends[0]):
            break
        await asyncio.sleep(0.1)
    assert urls and all(created.id in url and "/history" in url for url in urls)


async def test_open_from_the_campaign_file_or_the_create_flag(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-flag", inbox.port)
    (tmp_path / "p.csv").write_text("email\nq@example.com\n")
    base = ("name: n\nworkspace: ws\nmailboxes: [mb-flag]\nprospects_csv: p.csv\n"
            "steps:\n  - subject: Hi\n    body: B\n")
    made: dict[str, str] = {}
    for name, text, flags in (("plain", base, []), ("file", base + "open: true\n", []),
                              ("flag", base, ["--open"])):
        (tmp_path / f"{name}.yaml").write_text(text)
        ran = await outreach(e2e_settings, "campaigns", "create", str(tmp_path / f"{name}.yaml"), *flags)
        assert ran.returncode == 0, ran.stderr
        made[name] = ran.stdout.strip().splitlines()[-1]
    listed = {c["id"]: c["open"] for c in json.loads(
        (await outreach(e2e_settings, "campaigns", "list", "--json")).stdout)}
    assert listed == {made["plain"]: False, made["file"]: True, made["flag"]: True}
    (tmp_path / "bad.yaml").write_text(base + "open: sometimes\ndedupe: everywhere\n")
    bad = await outreach(e2e_settings, "campaigns", "create", str(tmp_path / "bad.yaml"))
    assert bad.returncode == 2 and "open (line 8)" in bad.stderr and "dedupe (line 9)" in bad.stderr
    closed = await outreach(e2e_settings, "campaigns", "close", made["plain"])
    assert closed.returncode == 2 and "was not created open" in closed.stderr


async def test_an_open_campaign_with_prospects_added_cancels_with_all_its_steps(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment,
) -> None:
    await add_mailbox(db, "mb-cancel", inbox.port)
    campaign_id, _ = await add_campaign(db, ["mb-cancel"], ["c0@example.com"],
                                        [STEPS[0], ("Re: Hello {{ first_name }}", "Step two", 3600)])
    await db.execute("UPDATE campaigns SET is_open = true WHERE id = $1", campaign_id)
    await client.start_campaign(campaign_id)
    await sent_to(inbox, "c0@example.com", 1)
    await client.add_prospects(campaign_id, [Prospect("c1@example.com", {"first_name": "C"}, "")])
    await sent_to(inbox, "c1@example.com", 1)  # step 2 is an hour away for both

    assert await client.cancel_campaign(campaign_id) == "cancelled"
    for k in (1, 2):
        step_id = step_workflow_id(e2e_settings.task_queue, campaign_id, k)
        step = dev_server.client.get_workflow_handle(step_id)
        assert (await step.describe()).status == WorkflowExecutionStatus.CANCELED
    status = await client.campaign_status(campaign_id)
    assert status["steps"][1]["sent"] == 0 and len(inbox.messages) == 2


async def test_stopping_the_prospects_a_step_waits_for_lets_the_campaign_complete_at_once(
    db: asyncpg.Pool, e2e_settings: Settings, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-wake", inbox.port)
    hour_later = [("Hello {{ first_name }}", "Step one", 0), ("Re: Hello", "Step two", 3600)]
    campaign_id, ids = await add_campaign(db, ["mb-wake"], ["w0@example.com", "w1@example.com"],
                                          hour_later)
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) >= 2, timeout=60)
    await wait_for_state(client, campaign_id, "running", timeout=10)
    # Step 2 sleeps on a timer an hour away; stopping both prospects wakes it.
    ran = await outreach(e2e_settings, "prospects", "stop", campaign_id, "w0@example.com")
    assert ran.returncode == 0 and not ran.stderr, ran.stderr
    await client.stop_prospect(campaign_id, str(ids[1]))
    status = await wait_for_state(client, campaign_id, "completed", timeout=60)
    assert status["prospects"]["stopped"] == 2 and len(inbox.messages) == 2
