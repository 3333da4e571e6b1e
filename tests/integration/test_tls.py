"""TLS that cannot be stripped, against in-process SMTP servers (the LocalSmtpServer).

A `starttls` mailbox whose server does not offer STARTTLS, a certificate nobody
vouches for, a certificate for another host name, a plaintext server behind a
`tls` mailbox: each is refused before AUTH (the server never sees the command),
and ends with the mailbox paused as `config_error` through its MailboxWorkflow,
from a send as from a health check, with nothing delivered.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.health import MailboxHealth
from activities.maintenance_models import HealthCheckInput, HealthCheckResult
from client.api import OutreachClient
from config.names import mailbox_workflow_id, maintenance_task_queue, redis_key, send_task_queue
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.errors import SmtpConfigError
from mail.oauth import HttpTokenEndpoint
from mail.probe import probe_account
from mail.transport import MailTransport, Security, SmtpAccount, SmtpTimeouts
from telemetry.log_context import ActivityLogContext
from tests.factories import add_campaign, add_mailbox, send_row
from tests.integration.conftest import MaintenanceWorkerFactory
from tests.tools import required_tool
from workers.registry import WORKFLOWS, build_activities
from workflows.health_check import HealthCheckWorkflow
from workflows.mailbox import MailboxWorkflow
from workflows.models import MailboxStatus

QUICK = SmtpTimeouts(connect=5.0, greeting=5.0, socket=5.0)
# A health check's login may wait at a server the test holds before its greeting.
HELD = SmtpTimeouts(connect=5.0, greeting=60.0, socket=5.0)
Certificate = tuple[Path, Path]


def _make_certificate(folder: Path, name: str, subject: str, alt_names: str) -> Certificate:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={subject}", "-keyout", str(key), "-out", str(cert),
         "-addext", f"subjectAltName={alt_names}"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    """Self-signed, each its own CA: "untrusted" (for 127.0.0.1, trusted by nobody),
    "other_host" (trusted, for another name), "trusted" (trusted, for 127.0.0.1)."""
    required_tool("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    return {
        "untrusted": _make_certificate(folder, "untrusted", "untrusted.test", "IP:127.0.0.1"),
        "other_host": _make_certificate(folder, "other", "mail.other.example",
                                        "DNS:mail.other.example"),
        "trusted": _make_certificate(folder, "trusted", "trusted.test", "IP:127.0.0.1"),
    }


def server_tls(cert: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    return context


def client_tls(certificates: dict[str, Certificate]) -> ssl.SSLContext:
    """Verification as in production (chain and host name), trusting the two test CAs
    meant to be trusted."""
    context = ssl.create_default_context()
    for name in ("other_host", "trusted"):
        context.load_verify_locations(cafile=str(certificates[name][0]))
    return context


# Each case: the server, the mailbox's security, and what the refusal says.
Case = tuple[Callable[[dict[str, Certificate]], LocalSmtpServer], Security, str]
CASES: dict[str, Case] = {
    "starttls not offered": (lambda c: LocalSmtpServer(), "starttls", "127.0.0.1 does not offer STARTTLS"),
    "untrusted certificate (starttls)": (
        lambda c: LocalSmtpServer(starttls=server_tls(c["untrusted"])), "starttls",
        "127.0.0.1: TLS certificate refused (self-signed certificate"),
    "untrusted certificate (tls)": (
        lambda c: LocalSmtpServer(implicit_tls=server_tls(c["untrusted"])), "tls",
        "127.0.0.1: TLS certificate refused (self-signed certificate"),
    "certificate for another host (starttls)": (
        lambda c: LocalSmtpServer(starttls=server_tls(c["other_host"])), "starttls",
        "127.0.0.1: TLS certificate refused (IP address mismatch"),
    "certificate for another host (tls)": (
        lambda c: LocalSmtpServer(implicit_tls=server_tls(c["other_host"])), "tls",
        "127.0.0.1: TLS certificate refused (IP address mismatch"),
    "plaintext server behind tls": (lambda c: LocalSmtpServer(), "tls",
                                    "127.0.0.1: TLS handshake failed (WRONG_VERSION_NUMBER"),
}


def account(inbox: LocalSmtpServer, security: Security) -> SmtpAccount:
    return SmtpAccount("mb", "127.0.0.1", inbox.port, security, "mb", "secret")


async def _no_ledger() -> None:
    raise AssertionError("DATA must never be reached")


# -- the transport and the probe -------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
async def test_send_and_probe_refuse_before_auth(
    case: str, certificates: dict[str, Certificate]
) -> None:
    make_server, security, refusal = CASES[case]
    transport = MailTransport(QUICK, tls_context=client_tls(certificates),
                              local_hostname="client.sender.example")
    async with make_server(certificates) as inbox:
        with pytest.raises(SmtpConfigError) as sent:
            await transport.send(account(inbox, security), "mb@sender.example.com",
                                 "p1@example.com", b"Subject: x\r\n\r\nx\r\n", before_data=_no_ledger)
        with pytest.raises(SmtpConfigError) as probed:
            await probe_account(account(inbox, security), QUICK, client_tls(certificates))
        await transport.close()
        assert str(sent.value).startswith(refusal)
        assert str(probed.value).startswith(refusal)
        assert "AUTH" not in inbox.commands and "MAIL" not in inbox.commands
        assert inbox.auth_attempts == [] and inbox.messages == []


async def test_probe_logs_in_over_verified_starttls(certificates: dict[str, Certificate]) -> None:
    # The control for the refusals above: the same client, a certificate it trusts.
    async with LocalSmtpServer(starttls=server_tls(certificates["trusted"])) as inbox:
        await probe_account(account(inbox, "starttls"), QUICK, client_tls(certificates))
        assert inbox.commands[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
        assert inbox.auth_attempts == ["mb"]


async def test_probe_refuses_plaintext_to_a_remote_host() -> None:
    remote = SmtpAccount("mb", "smtp.sender.example", 25, "none", "mb", "secret")
    with pytest.raises(SmtpConfigError, match="plaintext SMTP is allowed only to loopback"):
        await probe_account(remote, QUICK)


# -- end to end: the mailbox ends in config_error through its workflow ------------------


@pytest.fixture
async def tls_worker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings, certificates: dict[str, Certificate],
) -> AsyncIterator[None]:
    """The send worker, verifying TLS against the test CAs (tests/integration/conftest.py's
    `worker` trusts the system's only)."""
    transport = MailTransport(QUICK, tls_context=client_tls(certificates))
    async with Worker(
        dev_server.client, task_queue=send_task_queue(e2e_settings.task_queue),
        workflows=list(WORKFLOWS), activities=build_activities(e2e_settings, db, redis_client, transport),
        interceptors=[ActivityLogContext()],
    ):
        yield
    await transport.close()


@pytest.fixture
async def checker(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings,
    maintenance_worker_factory: MaintenanceWorkerFactory, certificates: dict[str, Certificate],
) -> AsyncIterator[Callable[[], Any]]:
    """Runs one health check (the real workflow and activity) with a given TLS trust."""
    async with AsyncExitStack() as stack:
        health = MailboxHealth(db, dev_server.client, e2e_settings.task_queue, HELD,
                               HttpTokenEndpoint(), tls_context=client_tls(certificates))
        await stack.enter_async_context(
            maintenance_worker_factory(e2e_settings, [health.check_mailboxes]))

        async def check() -> HealthCheckResult:
            return await dev_server.client.execute_workflow(
                HealthCheckWorkflow.run, HealthCheckInput(timeout=timedelta(seconds=30)),
                id=f"health-{secrets.token_hex(4)}",
                task_queue=maintenance_task_queue(e2e_settings.task_queue),
            )

        yield check


async def mailbox_on(db: asyncpg.Pool, inbox: LocalSmtpServer, security: Security) -> None:
    await add_mailbox(db, "mb", inbox.port)
    await db.execute("UPDATE mailboxes SET security = $1 WHERE id = 'mb'", security)


async def until_paused(db: asyncpg.Pool, paused: bool = True) -> asyncpg.Record:
    deadline = time.monotonic() + 30.0
    while True:
        row = await db.fetchrow("SELECT paused, pause_reason, paused_by FROM mailboxes WHERE id = 'mb'")
        if row is not None and row["paused"] is paused:
            return row
        assert time.monotonic() < deadline, f"mailbox still {row}"
        await asyncio.sleep(0.05)


async def assert_config_error(
    db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings, refusal: str
) -> None:
    row = await until_paused(db)
    assert row["pause_reason"].startswith(f"config_error: {refusal}"), row["pause_reason"]
    assert row["paused_by"] == "health_check"  # the kind of pause a good check lifts
    # PostgreSQL is written first, then Redis (where the gate may already have written the
    # mailbox as it was): wait for the pause flag a send's gate reads.
    deadline = time.monotonic() + 30.0
    while (flag := await redis_client.hgetall(
            redis_key(settings.task_queue, "mailbox", "mb"))).get("paused") != "1":
        assert time.monotonic() < deadline, f"no pause flag in Redis: {flag}"
        await asyncio.sleep(0.05)
    assert flag["paused"] == "1" and flag["reason"] == row["pause_reason"]


@pytest.mark.parametrize("case", ["starttls not offered", "untrusted certificate (starttls)",
                                  "certificate for another host (tls)"])
async def test_a_send_that_meets_a_tls_failure_pauses_the_mailbox_as_config_error(
    case: str, certificates: dict[str, Certificate], db: asyncpg.Pool,
    redis_client: aioredis.Redis, e2e_settings: Settings, tls_worker: None, client: OutreachClient,
) -> None:
    make_server, security, refusal = CASES[case]
    async with make_server(certificates) as inbox:
        await mailbox_on(db, inbox, security)
        campaign_id, [prospect] = await add_campaign(db, ["mb"], ["p1@example.com"],
                                                     [("Hello", "Body", 0)])
        await client.start_campaign(campaign_id)

        await assert_config_error(db, redis_client, e2e_settings, refusal)
        handle = client.temporal.get_workflow_handle(
            mailbox_workflow_id(e2e_settings.task_queue, "mb"))
        # `applied` is recorded when the activity's completion reaches the workflow, a
        # moment after the activity wrote Redis.
        state = await settled(handle)
        assert (state.paused, state.paused_by, state.applied) == (True, "health_check", True)
        send = await send_row(db, campaign_id, 1, prospect)
        assert send["state"] == "queued"  # kept for when the mailbox is fixed
        assert "AUTH" not in inbox.commands and inbox.messages == []


@pytest.mark.parametrize("case", ["starttls not offered", "untrusted certificate (tls)",
                                  "certificate for another host (starttls)",
                                  "plaintext server behind tls"])
async def test_a_health_check_that_meets_a_tls_failure_pauses_the_mailbox_as_config_error(
    case: str, certificates: dict[str, Certificate], db: asyncpg.Pool,
    redis_client: aioredis.Redis, e2e_settings: Settings, tls_worker: None,
    checker: Callable[[], Any],
) -> None:
    make_server, security, refusal = CASES[case]
    async with make_server(certificates) as inbox:
        await mailbox_on(db, inbox, security)
        result = await checker()
        assert result.paused == ["mb"]
        await assert_config_error(db, redis_client, e2e_settings, refusal)
        assert "AUTH" not in inbox.commands and inbox.auth_attempts == []


async def test_a_good_health_check_lifts_a_config_error_pause_and_the_send_then_goes(
    certificates: dict[str, Certificate], db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings, tls_worker: None, client: OutreachClient, checker: Callable[[], Any],
) -> None:
    fixed_server = LocalSmtpServer(starttls=server_tls(certificates["trusted"]))
    async with LocalSmtpServer() as stripped, fixed_server as fixed:
        await mailbox_on(db, stripped, "starttls")
        campaign_id, [prospect] = await add_campaign(db, ["mb"], ["p1@example.com"],
                                                     [("Hello", "Body", 0)])
        await client.start_campaign(campaign_id)
        await assert_config_error(db, redis_client, e2e_settings, "127.0.0.1 does not offer STARTTLS")

        # The provider fixes its server (here: the mailbox moves to one that offers STARTTLS).
        await db.execute("UPDATE mailboxes SET smtp_port = $1 WHERE id = 'mb'", fixed.port)
        result = await checker()
        assert result.resumed == ["mb"]
        row = await until_paused(db, paused=False)
        assert (row["pause_reason"], row["paused_by"]) == (None, None)

        await fixed.wait_for(lambda: len(fixed.messages) == 1, timeout=30)
        assert fixed.commands.index("STARTTLS") < fixed.commands.index("AUTH")
        assert stripped.messages == [] and "AUTH" not in stripped.commands
        deadline = time.monotonic() + 10
        while (await send_row(db, campaign_id, 1, prospect))["state"] != "sent":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


async def settled(handle: Any) -> MailboxStatus:
    """The mailbox workflow's state once its latest change is in force."""
    deadline = time.monotonic() + 30.0
    while not (status := await handle.query(MailboxWorkflow.status)).applied:
        assert time.monotonic() < deadline, f"change not applied: {status}"
        await asyncio.sleep(0.05)
    return status


async def assert_operators_pause(
    db: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings, client: OutreachClient
) -> None:
    handle = client.temporal.get_workflow_handle(mailbox_workflow_id(settings.task_queue, "mb"))
    status = await settled(handle)
    assert (status.paused, status.reason, status.paused_by) == (True, "investigating", "operator")
    row = await db.fetchrow("SELECT paused, pause_reason, paused_by FROM mailboxes WHERE id = 'mb'")
    assert tuple(row) == (True, "investigating", "operator")
    flag = await redis_client.hgetall(redis_key(settings.task_queue, "mailbox", "mb"))
    assert (flag["paused"], flag["reason"]) == ("1", "investigating")


async def test_a_config_error_never_overrides_an_operators_pause(
    db: asyncpg.Pool, redis_client: aioredis.Redis, e2e_settings: Settings, tls_worker: None,
    client: OutreachClient, checker: Callable[[], Any],
) -> None:
    async with LocalSmtpServer() as stripped:  # offers no STARTTLS: a config error
        await mailbox_on(db, stripped, "starttls")
        await client.resume_mailbox("mb")  # its workflow runs; the mailbox is active
        # A health check finds the mailbox active and begins its login; the operator
        # pauses it before the server's greeting comes back.
        stripped.hold("connect")
        check = asyncio.create_task(checker())
        await stripped.wait_for(lambda: stripped.held.get("connect") == 1, timeout=30)
        await client.pause_mailbox("mb", "investigating")
        stripped.release("connect")

        result = await check
        assert result.paused == ["mb"]  # the check did report its config error...
        await assert_operators_pause(db, redis_client, e2e_settings, client)  # ...and it changed nothing

        # Only the operator ends the operator's pause.
        status = await client.resume_mailbox("mb")
        assert (status.paused, status.paused_by) == (False, "")
        row = await until_paused(db, paused=False)
        assert (row["pause_reason"], row["paused_by"]) == (None, None)


async def test_a_health_check_never_clears_an_operators_pause(
    certificates: dict[str, Certificate], db: asyncpg.Pool, redis_client: aioredis.Redis,
    e2e_settings: Settings, tls_worker: None, client: OutreachClient, checker: Callable[[], Any],
) -> None:
    fixed_server = LocalSmtpServer(starttls=server_tls(certificates["trusted"]))
    async with LocalSmtpServer() as stripped, fixed_server as fixed:
        await mailbox_on(db, stripped, "starttls")
        assert (await checker()).paused == ["mb"]
        await assert_config_error(db, redis_client, e2e_settings, "127.0.0.1 does not offer STARTTLS")

        # The server is fixed; a health check sets out to lift its own config_error pause,
        # and the operator pauses the mailbox (making the pause theirs) before it logs in.
        await db.execute("UPDATE mailboxes SET smtp_port = $1 WHERE id = 'mb'", fixed.port)
        fixed.hold("connect")
        check = asyncio.create_task(checker())
        await fixed.wait_for(lambda: fixed.held.get("connect") == 1, timeout=30)
        await client.pause_mailbox("mb", "investigating")
        fixed.release("connect")

        result = await check
        assert result.resumed == ["mb"]  # the check logged in and asked to resume...
        assert fixed.auth_attempts == ["mb"]
        await assert_operators_pause(db, redis_client, e2e_settings, client)  # ...in vain

        status = await client.resume_mailbox("mb")
        assert (status.paused, status.paused_by) == (False, "")
        row = await until_paused(db, paused=False)
        assert (row["pause_reason"], row["paused_by"]) == (None, None)
