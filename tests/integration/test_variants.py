"""Step variants end to end (issue 24): real PostgreSQL, Redis, a Temporal dev server and
an in-process SMTP server. Each prospect's variant and spintax words are what the keyed
hash says, recorded on the send and in the claim's result; a follow-up threads on the
subject the prospect received; the figures per variant equal what the server got."""

from __future__ import annotations

import email
from collections import Counter
from email.message import Message
from email.policy import default
from pathlib import Path

import asyncpg
import pytest
from temporalio.worker import Replayer

from client.api import OutreachClient
from config.names import step_workflow_id
from config.secrets import key_ring
from config.settings import Settings
from localsmtp.server import AcceptedMessage, LocalSmtpServer
from specs.loading import load_campaign_file
from specs.templates import render
from store.importer import create_campaign
from store.variant_stats import variant_stats
from tests.conftest import TEST_SECRET_KEYS
from tests.factories import add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from variants import spintax
from variants.choice import KEY_PURPOSE, Weighted, choose_variant, spin_pick
from workers.registry import WORKFLOWS

CAMPAIGN = """\
name: variants
workspace: ws
mailboxes: [mb-v]
steps:
  - variants:
      - name: short
        subject: "{Quick|Short} question, {{ first_name }}"
        body: "Hi {{ first_name }}, {one|two|three} lines. short-body"
      - name: proof
        weight: 3
        subject: "How {{ company }} {cut|halved} onboarding"
        body: "Proof for {{ company }}. proof-body"
    winner: {metric: positive_reply_rate, min_sends: 30, confidence: 0.95}
  - delay: 1s
    body: "Following up, {{ first_name }}. {Thanks|Cheers}"
prospects_csv: prospects.csv
"""


def write_campaign(tmp_path: Path, n: int) -> Path:
    rows = "\n".join(f"p{i}@example.com,P{i},Co{i}" for i in range(n))
    (tmp_path / "prospects.csv").write_text(f"email,first_name,company\n{rows}\n")
    path = tmp_path / "campaign.yaml"
    path.write_text(CAMPAIGN)
    return path


async def claimed_variants(client: OutreachClient, workflow_id: str) -> dict[int, str]:
    """prospect -> variant, from the claim results in every run of a step's history."""
    found: dict[int, str] = {}
    converter = client.temporal.data_converter
    description = await client.temporal.get_workflow_handle(workflow_id).describe()
    run_id: str | None = description.raw_description.workflow_execution_info.first_run_id
    while True:
        history = await client.temporal.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        for event in history.events:
            if event.HasField("activity_task_completed_event_attributes"):
                payloads = event.activity_task_completed_event_attributes.result.payloads
                for result in await converter.decode(payloads):
                    for send in result.get("sends", []) if isinstance(result, dict) else []:
                        found[send["prospect_id"]] = send["variant"]
        last = history.events[-1]
        if not last.HasField("workflow_execution_continued_as_new_event_attributes"):
            return found
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


def body_of(message: AcceptedMessage) -> str:
    parsed: Message = email.message_from_bytes(message.raw, policy=default)
    part = parsed.get_body(("plain",)) if parsed.is_multipart() else parsed
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


async def test_import_stores_variants_rule_and_a_threading_follow_up(
    db: asyncpg.Pool, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb-v", 2525)
    created = await create_campaign(db, load_campaign_file(write_campaign(tmp_path, 3)))
    rows = await db.fetch("SELECT step, name, position, weight, subject FROM step_variants"
                          " WHERE campaign_id = $1 ORDER BY step, position", created.id)
    assert [(r["step"], r["name"], r["weight"]) for r in rows] == [
        (1, "short", 1.0), (1, "proof", 3.0), (2, "", 1.0)]
    assert rows[2]["subject"] is None  # threads on what step 1 sent
    rule = await db.fetchrow("SELECT winner_metric, winner_min_sends, winner_confidence FROM steps"
                             " WHERE campaign_id = $1 AND step = 1", created.id)
    assert tuple(rule) == ("positive_reply_rate", 30, 0.95)


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    """Step runs continue as new every 8 sends; a soft bounce is retried at once."""
    return e2e_settings.model_copy(update={"step_sends_per_run": 8, "send_first_retry_seconds": 0.05})


def expected_subject(
    key: bytes, campaign_id: str, prospect_id: int, variant: str, fields: dict[str, str],
) -> str:
    """Step 1's subject as the keyed hash resolves it, computed apart from the send path."""
    template = {"short": "{Quick|Short} question, {{ first_name }}",
                "proof": "How {{ company }} {cut|halved} onboarding"}[variant]
    words = spintax.resolve(spintax.parse(template), spin_pick(key, campaign_id, 1, prospect_id, variant,
                                                              "subject"))
    return render(words, fields)


async def test_each_prospect_gets_its_keyed_variant_and_words_on_retries_and_new_runs(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient, tmp_path: Path,
    e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb-v", inbox.port)
    created = await create_campaign(db, load_campaign_file(write_campaign(tmp_path, 40)))
    for n in (3, 17):  # soft bounces: their retries must send the same words
        inbox.script(f"p{n}@example.com", replies=[(451, "4.2.1 mailbox busy, try later")])
    await client.start_campaign(created.id)
    await wait_for_state(client, created.id, "completed", timeout=120)

    key = key_ring(TEST_SECRET_KEYS).derived_key(KEY_PURPOSE)
    weights = [Weighted("short", 1.0), Weighted("proof", 3.0)]
    sends = await db.fetch("SELECT s.step, s.prospect_id, s.variant, s.message_id, s.attempts, p.email,"
                           " p.fields FROM sends s JOIN prospects p ON p.id = s.prospect_id"
                           " WHERE s.campaign_id = $1", created.id)
    assert sum(1 for s in sends if s["attempts"] > 1) == 2
    by_id = {m.message_id: m for m in inbox.messages}
    assert len(by_id) == len(inbox.messages) == len(sends) == 80
    first_subject: dict[int, str] = {}
    for s in sorted(sends, key=lambda r: r["step"]):
        message = by_id[s["message_id"]]
        if s["step"] == 1:
            assert s["variant"] == choose_variant(key, created.id, 1, s["prospect_id"], weights)
            assert f"{s['variant']}-body" in body_of(message)
            assert message.subject == expected_subject(key, created.id, s["prospect_id"], s["variant"],
                                                       dict(s["fields"]))
            first_subject[s["prospect_id"]] = message.subject or ""
        else:
            assert s["variant"] == ""
            assert message.subject == "Re: " + first_subject[s["prospect_id"]]
    assert {v for v in Counter(r["variant"] for r in sends if r["step"] == 1)} == {"short", "proof"}

    # The claim's result names each send's variant: it is in the step's Event History,
    # across its runs (continue-as-new every 8 sends), and every run replays.
    step_1 = step_workflow_id(e2e_settings.task_queue, created.id, 1)
    in_history = await claimed_variants(client, step_1)
    assert in_history == {s["prospect_id"]: s["variant"] for s in sends if s["step"] == 1}
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=client.temporal.data_converter)
    runs = 0
    async for history in client.temporal.list_workflows(f"WorkflowId = '{step_1}'").map_histories():
        assert (await replayer.replay_workflow(history)).replay_failure is None
        runs += 1
    assert runs >= 5

    stats = {(r["step"], r["variant"]): r for r in await variant_stats(db, created.id)}
    for (step, variant), row in stats.items():
        expected = sum(1 for s in sends if s["step"] == step and s["variant"] == variant)
        assert (row["sent"], row["delivered"]) == (expected, expected)
