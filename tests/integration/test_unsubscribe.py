"""One-click unsubscribe on the real parts: the worker signs a link into each message, the
local SMTP inbox receives it, and a plain HTTP POST of it, as Gmail sends it, reaches the
real unsubscribe server, which stops the prospect and lists its address
(docs/decisions/0030). Then every way a link can be wrong or abused."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import NamedTuple

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OutreachClient
from client.codec_server import serving
from client.unsubscribe_server import RateLimiter, build_app
from config.names import send_task_queue
from config.secrets import KeyRing, generate_entry, key_ring
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.transport import MailTransport, SmtpTimeouts
from mail.unsubscribe import SendKey, sign, verify
from specs.campaigns import CampaignSpec, resolve_campaign
from specs.mailboxes import MailboxSpec
from store import ledger, retention, sender_identity
from store.importer import create_campaign, import_mailboxes
from store.sender_identity import SenderIdentity
from telemetry.log_context import ActivityLogContext
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from workers.registry import WORKFLOWS, build_activities

ONE_CLICK = {"List-Unsubscribe": "One-Click"}  # aiohttp posts it urlencoded, as Gmail does
URI = re.compile(r"<([^<>]+)>")


class Server(NamedTuple):
    url: str
    ring: KeyRing


def ring() -> KeyRing:
    return key_ring(Settings().secret_keys)


@pytest.fixture
async def server(db: asyncpg.Pool) -> AsyncIterator[Server]:
    limiter = RateLimiter(per_minute=600, burst=50)  # out of the way of the tests that do not test it
    async with serving(build_app(db, ring(), limiter), "127.0.0.1", 0) as url:
        yield Server(url, ring())


@pytest.fixture
async def linked_worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings, server: Server,
) -> AsyncIterator[Settings]:
    """A send worker whose messages link to ``server``."""
    settings = e2e_settings.model_copy(update={"unsubscribe_base_url": server.url})
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    async with Worker(
        dev_server.client, task_queue=send_task_queue(settings.task_queue), workflows=list(WORKFLOWS),
        activities=build_activities(settings, db, redis_client, transport),
        max_concurrent_activities=100, interceptors=[ActivityLogContext()],
    ):
        yield settings
    await transport.close()


def parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


async def state(db: asyncpg.Pool, prospect_id: int) -> tuple[str, list[str]]:
    """(prospect status, the workspace's suppression entries from unsubscribes)."""
    status = await db.fetchval("SELECT status FROM prospects WHERE id = $1", prospect_id)
    entries = await db.fetch(
        "SELECT entry FROM suppressions WHERE workspace_id = 'ws' AND source = 'unsubscribe' ORDER BY entry")
    return status, [r["entry"] for r in entries]


async def post(url: str, data: object = None, **kwargs: object) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=data, **kwargs) as response:  # type: ignore[arg-type]
        return response.status, await response.text()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_the_header_of_a_received_message_unsubscribes_with_gmails_post_and_nothing_more_arrives(
    db: asyncpg.Pool, inbox: LocalSmtpServer, linked_worker: Settings, client: OutreachClient,
    server: Server,
) -> None:
    await add_mailbox(db, "mb-u", inbox.port)
    await db.execute("UPDATE mailboxes SET from_name = 'Jane Dœ', reply_to = 'replies@sender.example.com'"
                     " WHERE id = 'mb-u'")
    campaign_id, (leaver, stayer) = await add_campaign(
        db, ["mb-u"], ["leaver@example.com", "stayer@example.com"],
        [("Hello", "Step one. Opt out: {{ unsubscribe_url }}", 0), ("Re: Hello", "Step two", 8)],
    )
    await db.execute("UPDATE campaigns SET from_name = 'Acme Sales', unsubscribe = 'header_and_footer'"
                     " WHERE id = $1", campaign_id)
    await client.start_campaign(campaign_id)
    await inbox.wait_for(lambda: len(inbox.messages) == 2, timeout=60)

    msg = parsed(inbox.messages_to("leaver@example.com")[0].raw)
    assert str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    url, mailto = URI.findall(str(msg["List-Unsubscribe"]))
    assert url.startswith(f"{server.url}/u/")
    token = url.rsplit("/", 1)[1]
    assert mailto == f"mailto:mb-u@sender.example.com?subject=unsubscribe%20{token}"
    assert "leaver" not in url and "leaver" not in mailto  # the token holds no address
    assert msg["From"].addresses[0].display_name == "Acme Sales"  # the campaign's over the mailbox's
    assert str(msg["Reply-To"]) == "replies@sender.example.com"
    body = msg.get_content()
    assert f"Opt out: {url}" in body and body.rstrip().endswith(url)  # the variable, and the footer

    # A link scanner's GET: a page, and nothing changes.
    status, page = await get(url)
    assert status == 200 and 'method="post"' in page
    assert await state(db, leaver) == ("active", [])

    # Exactly what Gmail sends: a form-urlencoded POST of List-Unsubscribe=One-Click.
    status, _ = await post(url, data="List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    assert await state(db, leaver) == ("unsubscribed", ["leaver@example.com"])

    await wait_for_state(client, campaign_id, "completed", timeout=120)
    received = Counter(m.rcpt_tos[0] for m in inbox.messages)
    assert received == {"leaver@example.com": 1, "stayer@example.com": 2}  # step 2 never reached it
    steps = {r["step"]: r["state"] for r in await db.fetch(
        "SELECT step, state FROM sends WHERE prospect_id = $1", leaver)}
    assert steps.get(1) == "sent" and steps.get(2) in (None, "skipped")
    assert await db.fetchval("SELECT status FROM prospects WHERE id = $1", stayer) == "active"

    # A second campaign in the workspace with the same address: suppressed at import.
    spec = CampaignSpec.model_validate({
        "name": "again", "workspace": "ws", "mailboxes": ["mb-u"], "steps": [{"subject": "Hi", "body": "B"}],
        "prospects": [{"email": "Leaver@Example.com"}, {"email": "new@example.com"}],
    })
    created = await create_campaign(db, resolve_campaign(spec))
    assert created.suppressed == 1


async def test_a_link_that_is_not_ours_gets_400_without_detail_and_changes_nothing(
    db: asyncpg.Pool, server: Server,
) -> None:
    await add_mailbox(db, "mb-t", 2525)
    campaign_id, (pid,) = await add_campaign(db, ["mb-t"], ["t@example.com"], [("Hi", "B", 0)])
    token = sign(server.ring, SendKey("ws", campaign_id, 1, pid))
    foreign = sign(key_ring(generate_entry(server.ring.current_id)), SendKey("ws", campaign_id, 1, pid))
    unknown_key = sign(key_ring(generate_entry("retired")), SendKey("ws", campaign_id, 1, pid))
    tampered = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
    other_prospect = sign(server.ring, SendKey("ws", campaign_id, 1, pid + 1000))
    for bad in (tampered, token[:-4], token[:20], foreign, unknown_key, "x", "%00" * 10):
        answers = (await post(f"{server.url}/u/{bad}", data=ONE_CLICK), await get(f"{server.url}/u/{bad}"))
        for status, text in answers:
            assert status == 400, bad
            assert "tag" not in text and "key" not in text  # no detail
    assert await state(db, pid) == ("active", [])
    # A signed link for a prospect that is not there: accepted, nothing to write.
    assert (await post(f"{server.url}/u/{other_prospect}", data=ONE_CLICK))[0] == 200
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_a_post_without_the_one_click_body_is_refused_and_a_replay_changes_nothing(
    db: asyncpg.Pool, server: Server,
) -> None:
    await add_mailbox(db, "mb-b", 2525)
    campaign_id, (pid,) = await add_campaign(db, ["mb-b"], ["b@example.com"], [("Hi", "B", 0)])
    url = f"{server.url}/u/{sign(server.ring, SendKey('ws', campaign_id, 1, pid))}"
    for data, headers in [
        (None, {}), (b"", {"Content-Type": "application/x-www-form-urlencoded"}),
        ({"List-Unsubscribe": "Yes"}, {}), ({"unsubscribe": "One-Click"}, {}),
        (b"List-Unsubscribe=One-Click", {"Content-Type": "text/plain"}),
    ]:
        status, _ = await post(url, data=data, headers=headers)
        assert status == 400, (data, headers)
    assert await state(db, pid) == ("active", [])
    # multipart/form-data, which RFC 8058 also allows
    form = aiohttp.FormData({"List-Unsubscribe": "One-Click"})
    form.add_field("x", b"1", filename="x")  # forces multipart
    assert (await post(url, data=form))[0] == 200
    for _ in range(3):  # the replay
        assert (await post(url, data=ONE_CLICK))[0] == 200
    assert await state(db, pid) == ("unsubscribed", ["b@example.com"])
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 1


async def test_queued_and_in_flight_sends_of_an_unsubscribed_prospect_never_reach_data(
    db: asyncpg.Pool, server: Server,
) -> None:
    await add_mailbox(db, "mb-q", 2525)
    campaign_id, (queued, in_flight, other) = await add_campaign(
        db, ["mb-q"], ["q1@example.com", "q2@example.com", "q3@example.com"], [("Hi", "B", 0)])
    batch = await ledger.claim_due(db, campaign_id, 1, datetime.now(UTC), 10, 10, [], [],
                                   lambda p, d: f"<{p}.x@{d}>")
    assert len(batch.sends) == 3
    await ledger.begin_attempt(db, campaign_id, 1, in_flight)  # its transaction has begun
    for pid in (queued, in_flight):
        url = f"{server.url}/u/{sign(server.ring, SendKey('ws', campaign_id, 1, pid))}"
        assert (await post(url, data=ONE_CLICK))[0] == 200
    states = {r["prospect_id"]: (r["state"], r["last_reply"]) for r in await db.fetch(
        "SELECT prospect_id, state, last_reply FROM sends WHERE campaign_id = $1", campaign_id)}
    assert states[queued] == ("skipped", "unsubscribed")
    assert states[in_flight][0] == "sending"  # the transaction's own check stops it:
    assert await ledger.mark_data_started(db, campaign_id, 1, in_flight) is not ledger.DataStart.GO
    assert states[other] == ("queued", None)
    await ledger.begin_attempt(db, campaign_id, 1, other)
    assert await ledger.mark_data_started(db, campaign_id, 1, other) is ledger.DataStart.GO


async def test_an_unsubscribe_after_retention_deleted_the_send_still_suppresses(
    db: asyncpg.Pool, server: Server,
) -> None:
    await add_mailbox(db, "mb-r", 2525)
    campaign_id, (pid,) = await add_campaign(db, ["mb-r"], ["old@example.com"], [("Hi", "B", 0)])
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state, sent_at,"
        " finished_at) VALUES ($1, 1, $2, 'mb-r', '<a@b>', 'sent', $3, $3)",
        campaign_id, pid, datetime.now(UTC) - timedelta(days=30))
    await db.execute("UPDATE campaigns SET state = 'completed', finished_at = now() WHERE id = $1",
                     campaign_id)
    rules = retention.retention_rules(timedelta(days=7), timedelta(days=30))
    purged = await retention.purge(db, rules, batch_size=100, budget_seconds=30)
    assert purged.deleted["sent"] == 1
    assert await db.fetchval("SELECT count(*) FROM sends") == 0

    url = f"{server.url}/u/{sign(server.ring, SendKey('ws', campaign_id, 1, pid))}"
    assert (await post(url, data=ONE_CLICK))[0] == 200
    assert await state(db, pid) == ("unsubscribed", ["old@example.com"])


async def test_ten_thousand_posts_from_one_address_are_rate_limited_and_others_still_get_through(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb-l", 2525)
    campaign_id, pids = await add_campaign(db, ["mb-l"], ["l1@example.com", "l2@example.com"],
                                           [("Hi", "B", 0)])
    r = ring()
    urls = [sign(r, SendKey("ws", campaign_id, 1, pid)) for pid in pids]
    # The defaults' shape (a burst, then a trickle), with a trickle slow enough that a
    # loaded machine's minutes cannot refill much of it.
    limiter = RateLimiter(per_minute=6, burst=10)
    async with serving(build_app(db, r, limiter), "127.0.0.1", 0) as base:
        statuses: Counter[int] = Counter()
        connector = aiohttp.TCPConnector(limit=20)  # the connections one client may hold at once
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with aiohttp.ClientSession(connector=connector) as http:
            async def one() -> None:
                async with http.post(f"{base}/u/{urls[0]}", data=ONE_CLICK) as response:
                    statuses[response.status] += 1
                    if response.status == 429:
                        assert int(response.headers["Retry-After"]) >= 1

            for _ in range(100):  # 100 rounds of 100
                await asyncio.gather(*(one() for _ in range(100)))
        minutes = (loop.time() - started) / 60
        assert sum(statuses.values()) == 10_000 and set(statuses) == {200, 429}
        assert statuses[200] <= 10 + 6 * minutes + 1
        assert statuses[429] >= 10_000 - (10 + 6 * minutes + 1)
        # Another client address is not held back by the first one's bucket.
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as http, \
                http.post(f"{base}/u/{urls[1]}", data=ONE_CLICK) as response:
            assert response.status == 200
    assert await db.fetchval("SELECT count(*) FROM prospects WHERE status = 'unsubscribed'") == 2


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket_and_others_cannot_spoof(
    db: asyncpg.Pool,
) -> None:
    await add_mailbox(db, "mb-p", 2525)
    campaign_id, (pid,) = await add_campaign(db, ["mb-p"], ["p@example.com"], [("Hi", "B", 0)])
    path = f"/u/{sign(ring(), SendKey('ws', campaign_id, 1, pid))}"

    async def statuses(base: str, forwarded_for: str, n: int) -> list[int]:
        headers = {"X-Forwarded-For": forwarded_for}
        return [(await post(base + path, data=ONE_CLICK, headers=headers))[0] for _ in range(n)]

    proxy = [ipaddress.ip_network("127.0.0.1/32")]
    async with serving(build_app(db, ring(), RateLimiter(1, 2), proxy), "127.0.0.1", 0) as base:
        assert await statuses(base, "203.0.113.9", 3) == [200, 200, 429]
        # The chain's left part is the client's to write; the proxy's own entry is the last.
        assert await statuses(base, "203.0.113.9, 198.51.100.7", 2) == [200, 200]
    async with serving(build_app(db, ring(), RateLimiter(1, 2)), "127.0.0.1", 0) as base:
        # No trusted proxy: the header is ignored, so changing it gains nothing.
        first, second = await statuses(base, "192.0.2.1", 2), await statuses(base, "192.0.2.2", 1)
        assert [*first, *second] == [200, 200, 429]


async def test_without_a_base_url_messages_carry_the_mailto_form_only(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb-m", inbox.port)
    await db.execute("UPDATE mailboxes SET unsubscribe_mailto = 'optout@sender.example.com'"
                     " WHERE id = 'mb-m'")
    campaign_id, (pid,) = await add_campaign(db, ["mb-m"], ["m@example.com"],
                                             [("Hi", "{{ unsubscribe_url }}", 0)])
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=60)
    msg = parsed(inbox.messages_to("m@example.com")[0].raw)
    (mailto,) = URI.findall(str(msg["List-Unsubscribe"]))
    assert mailto.startswith("mailto:optout@sender.example.com?subject=unsubscribe%20")
    assert msg["List-Unsubscribe-Post"] is None  # one-click needs an http(s) URI
    assert msg.get_content().strip() == mailto  # the template's {{ unsubscribe_url }}
    assert msg["Reply-To"] is None and msg["From"].addresses[0].display_name == ""
    token = mailto.rsplit("%20", 1)[1]
    assert verify(ring(), token) == SendKey("ws", campaign_id, 1, pid)  # what the inbox reader will do


async def test_identity_fields_are_imported_and_the_campaign_name_wins(db: asyncpg.Pool) -> None:
    base = {"id": "mb-i", "email": "i@sender.example.com", "smtp_host": "127.0.0.1",
            "security": "none", "password_env": "NOPE"}
    await import_mailboxes(db, [MailboxSpec.model_validate(
        {**base, "from_name": "Ida", "reply_to": "r@sender.example.com"})])
    steps = [{"subject": "Hi", "body": "B"}]
    plain = await create_campaign(db, resolve_campaign(CampaignSpec.model_validate(
        {"name": "a", "workspace": "ws", "mailboxes": ["mb-i"], "steps": steps,
         "prospects": [{"email": "x@example.com"}]})))
    named = await create_campaign(db, resolve_campaign(CampaignSpec.model_validate(
        {"name": "b", "workspace": "ws", "mailboxes": ["mb-i"], "steps": steps, "from_name": "Team",
         "unsubscribe": "header_and_footer", "prospects": [{"email": "x@example.com"}]})))
    assert await sender_identity.for_send(db, plain.id, "mb-i") == SenderIdentity(
        "Ida", "r@sender.example.com", "i@sender.example.com", footer=False)
    assert await sender_identity.for_send(db, named.id, "mb-i") == SenderIdentity(
        "Team", "r@sender.example.com", "i@sender.example.com", footer=True)
    await import_mailboxes(db, [MailboxSpec.model_validate(base)])  # left out: cleared
    assert await sender_identity.for_send(db, plain.id, "mb-i") == SenderIdentity(
        None, None, "i@sender.example.com", footer=False)
