"""The webhook trusts only a 2xx from the configured address (docs/decisions/0047): a
redirect is a failure, retried, never followed; no webhook starts without a secret;
errors show the URL without its userinfo, query or fragment. Real receivers on
loopback ports (aiohttp), a real Temporal dev server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiohttp import web
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.inbox import InboxActivities
from activities.inbox_models import WebhookInput
from config.names import schedule_id
from config.settings import Settings
from inbox.webhook import WebhookRefused, post_events
from tests.factories import settings_ring
from tests.integration.conftest import MaintenanceWorkerFactory
from tests.integration.test_cli import OUTREACH, ROOT, Ran
from tests.integration.test_inbox_webhook import SECRET, add_events, deliver


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    signature: str | None


@dataclass
class Server:
    """One loopback HTTP server: what it was sent, and what it answers next."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # then 204
    location: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.method, request.path, await request.read(),
                              request.headers.get("X-Outreach-Signature")))
        status = self.answers.pop(0) if self.answers else 204
        headers = {"Location": self.location} if 300 <= status < 400 else {}
        return web.Response(status=status, headers=headers, text="welcome" if status == 200 else "")


async def serve(server: Server, path: str) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", path, server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}{path}"
    return runner


@pytest.fixture
async def servers() -> AsyncIterator[tuple[Server, Server]]:
    """The receiver, and another host its redirects point at (a landing page that answers
    200 to anything, as a login page or a moved site does)."""
    receiver, elsewhere = Server(), Server(answers=[200] * 10)
    runners = [await serve(receiver, "/hook"), await serve(elsewhere, "/landing")]
    receiver.location = elsewhere.url
    yield receiver, elsewhere
    for runner in runners:
        await runner.cleanup()


async def test_redirects_are_failures_retried_until_the_receiver_answers_2xx(
    db: asyncpg.Pool, dev_server: WorkflowEnvironment, e2e_settings: Settings,
    servers: tuple[Server, Server], maintenance_worker_factory: MaintenanceWorkerFactory,
) -> None:
    receiver, elsewhere = servers
    receiver.answers = [301, 302, 307]  # then 204
    await add_events(db)
    inbox = InboxActivities(db, settings_ring(), receiver.url, SECRET)
    async with maintenance_worker_factory(e2e_settings, [inbox.deliver_webhook]):
        result = await deliver(dev_server, e2e_settings)  # retried with backoff: 2 + 4 + 8 s
        assert result.delivered == 2
        assert (await deliver(dev_server, e2e_settings)).delivered == 0  # nothing twice

    # Four POSTs of the same signed batch to the receiver; nothing to the other host
    # (a 301/302 would have become a GET there, a 307 a POST with the body and signature).
    assert [(s.method, s.path) for s in receiver.seen] == [("POST", "/hook")] * 4
    assert len({s.body for s in receiver.seen}) == 1 and all(s.signature for s in receiver.seen)
    assert [e["type"] for e in json.loads(receiver.seen[-1].body)["events"]] == ["replied", "hard_bounced"]
    assert elsewhere.seen == []
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE delivered_at IS NOT NULL") == 2


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_each_redirect_is_refused_and_not_followed(status: int, servers: tuple[Server, Server]) -> None:
    receiver, elsewhere = servers
    receiver.answers = [status]
    with pytest.raises(WebhookRefused, match=f"answered {status}, a redirect: not followed"):
        await post_events(receiver.url + "?token=s3cr3t", SECRET, [{"id": 1}])
    assert [s.method for s in receiver.seen] == ["POST"] and elsewhere.seen == []


async def test_errors_show_the_url_without_userinfo_query_or_fragment() -> None:
    # Nothing listens on port 9: the connection error names the host, not the secrets.
    with pytest.raises(WebhookRefused) as refused:
        await post_events("http://ann:pa55@127.0.0.1:9/hook?token=s3cr3t#frag", SECRET, [{"id": 1}], 2)
    text = str(refused.value)
    assert "http://127.0.0.1:9/hook" in text
    assert not any(s in text for s in ("pa55", "s3cr3t", "token", "frag", "ann:"))
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


async def test_a_malformed_url_fails_the_run_without_retries_and_without_its_query(
    db: asyncpg.Pool, dev_server: WorkflowEnvironment, e2e_settings: Settings,
    maintenance_worker_factory: MaintenanceWorkerFactory,
) -> None:
    await add_events(db)
    inbox = InboxActivities(db, settings_ring(), "http://127.0.0.1:99999/hook?token=s3cr3t", SECRET)
    async with maintenance_worker_factory(e2e_settings, [inbox.deliver_webhook]):
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(deliver(dev_server, e2e_settings), 30)  # no backoff: not retryable
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.message == ("OUTREACH_WEBHOOK_URL (http://127.0.0.1:99999/hook) is not an http(s) URL"
                             " with a host")
    assert cause.cause is None  # no chained exception that would carry the URL whole
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE delivered_at IS NOT NULL") == 0


@pytest.mark.parametrize("secret", ["", "  "])
async def test_the_activity_refuses_to_post_without_a_secret(
    secret: str, db: asyncpg.Pool, servers: tuple[Server, Server]
) -> None:
    receiver, _ = servers
    await add_events(db)
    inbox = InboxActivities(db, settings_ring(), receiver.url, secret)
    with pytest.raises(ApplicationError, match="OUTREACH_WEBHOOK_SECRET is empty") as refused:
        await ActivityEnvironment().run(inbox.deliver_webhook, WebhookInput())
    assert refused.value.non_retryable
    assert receiver.seen == []  # nothing signed with a key anyone knows
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE delivered_at IS NOT NULL") == 0


async def schedules_apply(settings: Settings, **env: str | None) -> Ran:
    """``outreach schedules apply`` with the webhook settings in ``env`` (None: unset)."""
    environ = {**os.environ, "OUTREACH_DATABASE_URL": settings.database_url,
               "OUTREACH_TASK_QUEUE": settings.task_queue,
               "OUTREACH_TEMPORAL_ADDRESS": settings.temporal_address}
    for name, value in env.items():
        environ.pop(name, None)
        if value is not None:
            environ[name] = value
    proc = await asyncio.create_subprocess_exec(
        OUTREACH, "schedules", "apply", env=environ, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("secret", [None, "", "   "])
async def test_schedules_apply_refuses_a_webhook_without_a_secret(
    secret: str | None, dev_server: WorkflowEnvironment, e2e_settings: Settings, drop_schedules: None,
) -> None:
    ran = await schedules_apply(e2e_settings, OUTREACH_WEBHOOK_URL="https://crm.example.com/hook?token=s3cr3t",
                                OUTREACH_WEBHOOK_SECRET=secret)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert ran.stderr.startswith("error: OUTREACH_WEBHOOK_URL is set but OUTREACH_WEBHOOK_SECRET is empty")
    assert "No schedule was applied." in ran.stderr and "Traceback" not in ran.stderr
    assert "s3cr3t" not in ran.stdout + ran.stderr
    for job in ("cleanup", "webhook"):  # refused before any schedule was touched
        with pytest.raises(RPCError) as missing:
            await dev_server.client.get_schedule_handle(schedule_id(e2e_settings.task_queue, job)).describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_schedules_apply_with_a_secret_creates_the_webhook_schedule(
    dev_server: WorkflowEnvironment, e2e_settings: Settings, drop_schedules: None,
) -> None:
    ran = await schedules_apply(e2e_settings, OUTREACH_WEBHOOK_URL="https://crm.example.com/hook",
                                OUTREACH_WEBHOOK_SECRET="a-long-random-secret")
    assert ran.returncode == 0, ran.stderr
    assert f"{schedule_id(e2e_settings.task_queue, 'webhook')}: created" in ran.stdout
