"""Mailbox health checks against a real SMTP inbox that demands credentials."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.health import MailboxHealth
from activities.maintenance_models import HealthCheckInput, HealthCheckResult
from client.api import OutreachClient
from config.names import maintenance_task_queue
from config.secrets import generate_entry, key_ring
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.oauth import AccessToken
from mail.transport import SmtpTimeouts
from store import accounts
from tests.factories import add_mailbox, sealed, settings_ring
from workflows.health_check import HealthCheckWorkflow


@pytest.fixture
async def guarded_inbox() -> AsyncIterator[LocalSmtpServer]:
    async with LocalSmtpServer(credentials={"mb": "secret"}) as box:
        yield box


async def _check(env: WorkflowEnvironment, settings: Settings) -> HealthCheckResult:
    return await env.client.execute_workflow(
        HealthCheckWorkflow.run, HealthCheckInput(timeout=timedelta(seconds=30)),
        id=f"health-{secrets.token_hex(4)}", task_queue=maintenance_task_queue(settings.task_queue),
    )


async def _set_password(db: asyncpg.Pool, password: str) -> None:
    await db.execute("UPDATE mailboxes SET password = $1 WHERE id = 'mb'", sealed("mb", "password", password))


async def _pause_state(db: asyncpg.Pool) -> tuple[bool, str | None, str | None]:
    row = await db.fetchrow("SELECT paused, pause_reason, paused_by FROM mailboxes WHERE id = 'mb'")
    assert row is not None
    return row["paused"], row["pause_reason"], row["paused_by"]


async def _until(db: asyncpg.Pool, paused: bool) -> tuple[bool, str | None, str | None]:
    deadline = time.monotonic() + 15.0
    while (state := await _pause_state(db))[0] != paused:
        assert time.monotonic() < deadline, f"mailbox still {state}"
        await asyncio.sleep(0.05)
    return state


async def test_bad_credentials_pause_and_good_ones_resume_only_a_health_check_pause(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, guarded_inbox: LocalSmtpServer,
    worker: None, maintenance_worker: None,
) -> None:
    await add_mailbox(db, "mb", guarded_inbox.port)  # user "mb", password "secret"

    good = await _check(dev_server, e2e_settings)
    assert (good.checked, good.healthy, good.paused) == (1, 1, [])
    assert (await _pause_state(db))[0] is False

    await _set_password(db, "wrong")
    bad = await _check(dev_server, e2e_settings)
    assert bad.paused == ["mb"]
    _, reason, by = await _until(db, paused=True)
    assert reason is not None and reason.startswith("auth_failed: 535") and by == "health_check"

    await _set_password(db, "secret")
    recovered = await _check(dev_server, e2e_settings)
    assert recovered.resumed == ["mb"]
    assert await _until(db, paused=False) == (False, None, None)


async def test_a_password_under_a_retired_key_pauses_the_mailbox_as_config_error(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, guarded_inbox: LocalSmtpServer,
    worker: None, maintenance_worker: None,
) -> None:
    await add_mailbox(db, "mb", guarded_inbox.port)
    retired = key_ring(generate_entry("retired"))
    await db.execute("UPDATE mailboxes SET password = $1 WHERE id = 'mb'",
                     sealed("mb", "password", "secret", retired))

    result = await _check(dev_server, e2e_settings)
    assert result.paused == ["mb"]
    _, reason, by = await _until(db, paused=True)
    assert reason is not None and reason.startswith("config_error: credentials:"), reason
    assert "'retired'" in reason and by == "health_check"
    assert "AUTH" not in guarded_inbox.commands  # it never tried to log in

    await _set_password(db, "secret")  # the operator re-imports it under a current key
    assert (await _check(dev_server, e2e_settings)).resumed == ["mb"]


async def test_an_operators_pause_survives_bad_and_good_health_checks(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, guarded_inbox: LocalSmtpServer,
    worker: None, maintenance_worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb", guarded_inbox.port)
    await client.pause_mailbox("mb", "bounce spike")

    await _set_password(db, "wrong")
    assert (await _check(dev_server, e2e_settings)).paused == []
    await _set_password(db, "secret")
    assert (await _check(dev_server, e2e_settings)).resumed == []

    assert await _pause_state(db) == (True, "bounce spike", "operator")
    status = await client.pause_mailbox("mb", "bounce spike")  # the workflow agrees
    assert (status.paused, status.paused_by) == (True, "operator")


async def test_an_operators_pause_over_a_health_check_pause_is_not_resumed(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings, guarded_inbox: LocalSmtpServer,
    worker: None, maintenance_worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb", guarded_inbox.port)
    await _set_password(db, "wrong")
    await _check(dev_server, e2e_settings)
    await _until(db, paused=True)
    await client.pause_mailbox("mb", "investigating")

    await _set_password(db, "secret")
    assert (await _check(dev_server, e2e_settings)).resumed == []
    assert await _pause_state(db) == (True, "investigating", "operator")


class FakeTokenEndpoint:
    """Google's token endpoint cannot be reached from here; this one counts refreshes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def refresh(
        self, provider: str, client_id: str, client_secret: str | None, refresh_token: str
    ) -> AccessToken:
        self.calls.append(refresh_token)
        return AccessToken(f"access-{len(self.calls)}", datetime.now(UTC) + timedelta(hours=1), "rt-2")


async def test_oauth_access_token_is_refreshed_before_it_expires_and_kept(
    dev_server: WorkflowEnvironment, db: asyncpg.Pool, e2e_settings: Settings,
) -> None:
    await add_mailbox(db, "mb", 25, provider="gmail")
    await db.execute(
        "UPDATE mailboxes SET auth_kind = 'oauth2', oauth_provider = 'google', oauth_client_id = 'cid',"
        " oauth_refresh_token = $1, oauth_access_token = $2,"
        " oauth_expires_at = now() + interval '5 minutes' WHERE id = 'mb'",
        sealed("mb", "oauth_refresh_token", "rt-1"), sealed("mb", "oauth_access_token", "old"),
    )
    tokens = FakeTokenEndpoint()
    health = MailboxHealth(db, dev_server.client, e2e_settings.task_queue, SmtpTimeouts(), tokens)
    grant = await accounts.oauth_grant(db, "mb", ring=settings_ring())
    assert grant is not None

    assert await health._access_token("mb", grant) == "access-1"  # 5 min left: refreshed
    fresh = await accounts.oauth_grant(db, "mb", ring=settings_ring())
    assert fresh is not None and (fresh.access_token, fresh.refresh_token) == ("access-1", "rt-2")
    assert await health._access_token("mb", fresh) == "access-1"  # an hour left: kept
    assert tokens.calls == ["rt-1"]
