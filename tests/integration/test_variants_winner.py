"""What issue 24 must show end to end: real dovecot, the send worker, the inbox poll and
variants workflows on the maintenance worker. Two variants; interested replies appended
for one, declines and a question for the other; the variants workflow (what its schedule
runs) declares the first the winner on positive replies once the sends are older than
the reply window; prospects added later all get it; the figures per variant, by intent
class too, equal the SMTP server's messages and the replies appended."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

from activities.maintenance_models import VariantsInput, VariantsResult
from client.api import OutreachClient
from config.names import maintenance_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from specs.loading import load_campaign_file
from store.importer import create_campaign
from tests.factories import add_mailbox, sealed
from tests.imap_server import ImapServer, running_imap
from tests.integration.test_campaign_controls import until
from tests.integration.test_inbox_stops_sequence import AUTHSERV_ID, PASSWORD, SENDER, poll_now, reply_to
from tests.integration.test_variants import body_of
from workflows.variants_judge import VariantsWorkflow

CAMPAIGN = """\
name: winner
workspace: ws
mailboxes: [mb]
open: true
steps:
  - variants:
      - {name: plain, subject: "Hello {{ first_name }}", body: "Plain words. [plain]"}
      - {name: story, subject: "A {story|tale} for {{ first_name }}", body: "Once upon a time. [story]"}
    winner: {metric: positive_reply_rate, min_sends: 30, confidence: 0.95}
prospects_csv: first.csv
"""


@pytest.fixture
def imap() -> Iterator[ImapServer]:
    with running_imap({SENDER: PASSWORD}) as server:
        yield server


def csv(path: Path, start: int, n: int) -> Path:
    path.write_text("email,first_name\n" + "".join(f"p{i}@x{i}.example.org,P{i}\n" for i in range(start, n)))
    return path


async def _sent(db: asyncpg.Pool, campaign_id: str, n: int) -> bool:
    """The ledger has recorded ``n`` sends as sent (the server's 250 comes first)."""
    return await db.fetchval("SELECT count(*) FROM sends WHERE campaign_id = $1 AND state = 'sent'",
                             campaign_id) == n


async def judge(env: WorkflowEnvironment, settings: Settings, window: timedelta) -> VariantsResult:
    return await env.client.execute_workflow(
        VariantsWorkflow.run, VariantsInput(reply_window=window, timeout=timedelta(seconds=60)),
        id=f"variants-{secrets.token_hex(4)}", task_queue=maintenance_task_queue(settings.task_queue))


async def test_replies_choose_the_winner_and_later_prospects_all_get_it(
    db: asyncpg.Pool, inbox: LocalSmtpServer, imap: ImapServer, worker: None, maintenance_worker: None,
    client: OutreachClient, dev_server: WorkflowEnvironment, e2e_settings: Settings, tmp_path: Path,
) -> None:
    await db.execute("TRUNCATE suppressions, inbound_messages, inbox_cursors, sent_messages")
    await add_mailbox(db, "mb", inbox.port, email=SENDER)
    await db.execute(
        "UPDATE mailboxes SET imap_host = $1, imap_port = $2, imap_security = 'none',"
        " imap_username = $3, imap_password = $4, inbox_authserv_id = $5 WHERE id = 'mb'",
        imap.host, imap.port, SENDER, sealed("mb", "imap_password", PASSWORD), AUTHSERV_ID,
    )
    csv(tmp_path / "first.csv", 0, 100)
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN)
    created = await create_campaign(db, load_campaign_file(tmp_path / "campaign.yaml"))
    await client.start_campaign(created.id)
    await inbox.wait_for(lambda: len(inbox.messages) == 100, timeout=90)
    await until(lambda: _sent(db, created.id, 100), "step 1 recorded as sent")

    def variant_of(body: str) -> str:
        return "story" if "[story]" in body else "plain"

    first = {m.rcpt_tos[0]: m for m in inbox.messages}
    story = [m for m in first.values() if variant_of(body_of(m)) == "story"]
    plain = [m for m in first.values() if variant_of(body_of(m)) == "plain"]
    replied = story[: len(story) // 2]  # half the story prospects answer, all interested
    declined, asked = plain[:3], plain[3]  # of plain, three decline and one asks
    for m in replied:
        imap.append(SENDER, reply_to(m, "Tell me more."))
    for m in declined:
        imap.append(SENDER, reply_to(m, "No thanks, we are not interested."))
    imap.append(SENDER, reply_to(asked, "What does it cost?"))
    assert (await poll_now(dev_server, e2e_settings)).found == {"reply": len(replied) + 4}

    # Sends younger than the reply window are not judged: no winner yet.
    assert (await judge(dev_server, e2e_settings, timedelta(days=1))).winners == []
    assert (await judge(dev_server, e2e_settings, timedelta(0))).winners == [f"{created.id}:1:story"]
    status = await client.campaign_status(created.id)
    decision = status["winners"][0]
    assert (decision["winner"], decision["decided_by"]) == ("story", "rule")
    assert decision["figures"]["arms"]["story"]["answered"] == len(replied)
    assert decision["figures"]["arms"]["plain"]["answered"] == 1  # the question; declines are no answer

    await client.add_prospects(created.id, csv(tmp_path / "later.csv", 100, 130))
    await inbox.wait_for(lambda: len(inbox.messages) == 130, timeout=90)
    later = [m for m in inbox.messages if m.rcpt_tos[0] not in first]
    assert {variant_of(body_of(m)) for m in later} == {"story"}

    # The figures per variant: the server's messages and the replies appended, exactly
    # (once the ledger has recorded the last reply from the server, which follows its 250).
    await until(lambda: _sent(db, created.id, 130), "every send recorded as sent")
    at_server = Counter(variant_of(body_of(m)) for m in inbox.messages)
    figures = {r["variant"]: r for r in await client.variant_stats(created.id)}
    for name in ("plain", "story"):
        assert figures[name]["sent"] == figures[name]["delivered"] == at_server[name]
    assert figures["story"]["replied"] == figures["story"]["positive_replied"] == len(replied)
    assert (figures["plain"]["replied"], figures["plain"]["positive_replied"]) == (4, 1)
    # Per intent class, as the reader judged the replies appended.
    assert {k: v for k, v in figures["story"]["reply_classes"].items() if v} == {"interested": len(replied)}
    assert {k: v for k, v in figures["plain"]["reply_classes"].items() if v} == {"not_interested": 3,
                                                                                 "question": 1}
    # What the Grafana panel per campaign reads: the gauge the variants workflow refreshes.
    await judge(dev_server, e2e_settings, timedelta(0))
    for name in ("plain", "story"):
        labels = {"campaign": created.id, "step": "1", "variant": name}
        assert REGISTRY.get_sample_value("outreach_variant_figures", {**labels, "figure": "sent"}) \
            == at_server[name]
    await client.close_campaign(created.id)
