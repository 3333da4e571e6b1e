"""Metrics and logs of a running worker, end to end: a small campaign with one
soft and one hard bounce, its counters and histograms read back from the
worker's Prometheus endpoint, and its log lines captured."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.api import OutreachClient
from config.logs import redact_secrets
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from telemetry.exporter import SDK_METRICS, sdk_metrics_port, start_metrics_endpoint, temporal_runtime
from telemetry.gauges import LedgerGauges
from tests.factories import add_campaign, add_mailbox
from tests.integration.test_campaign_e2e import wait_for_state
from workers.main import connect_temporal

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def e2e_settings(e2e_settings: Settings) -> Settings:
    # A soft bounce is retried within the test, not 5 minutes later.
    return e2e_settings.model_copy(update={
        "send_first_retry_seconds": 0.5, "metrics_host": "127.0.0.1", "metrics_port": free_port(),
    })


@pytest.fixture
def metrics_url(e2e_settings: Settings) -> Iterator[str]:
    server = start_metrics_endpoint(e2e_settings)
    assert server is not None
    yield f"http://127.0.0.1:{e2e_settings.metrics_port}/metrics"
    server.shutdown()
    server.server_close()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def scrape(url: str) -> Samples:
    text = await asyncio.to_thread(_get, url)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_endpoint_counts_a_campaigns_sends_by_outcome_with_latency_and_gauges(
    db: asyncpg.Pool, redis_client: aioredis.Redis, inbox: LocalSmtpServer, worker: None,
    client: OutreachClient, e2e_settings: Settings, metrics_url: str,
) -> None:
    await add_mailbox(db, "mb-metrics", inbox.port, provider="other")
    inbox.script("soft@example.com", replies=[(450, "4.2.1 Mailbox busy, try later")])
    inbox.script("hard@example.com", replies=[(550, "5.1.1 User unknown")])
    emails = ["soft@example.com", "hard@example.com", "ok1@example.com", "ok2@example.com"]
    campaign_id, _ = await add_campaign(db, ["mb-metrics"], emails, [("Hi", "Body", 0)])
    before = await scrape(metrics_url)

    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=60)
    await LedgerGauges(db, redis_client, e2e_settings.task_queue).refresh()
    after = await scrape(metrics_url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("outreach_sends_total", provider="other", outcome="sent") == 3
    assert delta("outreach_sends_total", provider="other", outcome="soft_bounced") == 1
    assert delta("outreach_sends_total", provider="other", outcome="hard_bounced") == 1
    # Five SMTP transactions: three accepted at once, the soft bounce and its retry, the hard bounce.
    assert delta("outreach_smtp_duration_seconds_count", provider="other") == 5
    assert delta("outreach_smtp_duration_seconds_bucket", provider="other", le="+Inf") == 5
    assert delta("outreach_smtp_duration_seconds_sum", provider="other") > 0
    assert value(after, "outreach_sends_in_flight") == 0
    assert value(after, "outreach_backlog_sends") == 0
    assert value(after, "outreach_unknown_sends") == 0
    assert value(after, "outreach_circuit_open", host="127.0.0.1") == 0
    assert value(after, "outreach_mailboxes_paused", reason="operator") == 0
    assert ("outreach_mailboxes_paused", frozenset({("reason", "auth_failed")})) in after


async def test_gauges_count_backlog_paused_mailboxes_unknown_sends_and_open_circuits(
    db: asyncpg.Pool, redis_client: aioredis.Redis, e2e_settings: Settings, metrics_url: str,
) -> None:
    await add_mailbox(db, "mb-gauge", 2525)
    campaign_id, prospects = await add_campaign(db, ["mb-gauge"], ["a@example.com", "b@example.com",
                                                                   "c@example.com"], [("Hi", "B", 0)])
    await db.execute("UPDATE campaigns SET state = 'running' WHERE id = $1", campaign_id)
    await db.execute(
        "INSERT INTO sends (campaign_id, step, prospect_id, mailbox_id, message_id, state)"
        " VALUES ($1, 1, $2, 'mb-gauge', 'm1', 'queued'), ($1, 1, $3, 'mb-gauge', 'm2', 'unknown')",
        campaign_id, prospects[0], prospects[1],
    )
    await db.execute("UPDATE mailboxes SET paused = true, pause_reason = 'auth_failed: 535 5.7.8'")
    await redis_client.hset(f"{e2e_settings.task_queue}:host:127.0.0.1:breaker", "open_until", "1")

    await LedgerGauges(db, redis_client, e2e_settings.task_queue).refresh()
    samples = await scrape(metrics_url)

    assert value(samples, "outreach_backlog_sends") == 2  # one queued row, one unclaimed prospect
    assert value(samples, "outreach_unknown_sends") == 1
    assert value(samples, "outreach_mailboxes_paused", reason="auth_failed") == 1
    assert value(samples, "outreach_circuit_open", host="127.0.0.1") == 1


async def test_temporal_sdk_metrics_are_served_on_the_next_port(
    dev_server: WorkflowEnvironment, e2e_settings: Settings,
) -> None:
    settings = e2e_settings.model_copy(update={"metrics_port": free_port()})
    runtime = temporal_runtime(settings)
    assert runtime is not None
    temporal = await connect_temporal(settings, runtime)
    url = f"http://127.0.0.1:{sdk_metrics_port(settings)}/metrics"
    async with Worker(temporal, task_queue=f"{settings.task_queue}-sdk-metrics",
                      activities=[_noop_activity()]):
        deadline = time.monotonic() + 30
        while not SDK_METRICS <= _names(text := await asyncio.to_thread(_get, url)):
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.2)


def _names(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def _noop_activity() -> Any:
    from temporalio import activity

    @activity.defn(name="telemetry_noop")
    async def noop() -> None:
        return None

    return noop


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars, redact_secrets]) as logs:
        yield logs


async def test_send_log_lines_carry_the_sends_ids_and_no_secret_or_body(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
    captured: list[dict[str, Any]],
) -> None:
    await add_mailbox(db, "mb-logs", inbox.port)
    inbox.script("soft-log@example.com", replies=[(450, "4.2.1 Mailbox busy, try later")])
    campaign_id, (prospect_id,) = await add_campaign(
        db, ["mb-logs"], ["soft-log@example.com"], [("Hi", "Body-7f3a9 private text", 0)]
    )
    await client.start_campaign(campaign_id)
    await wait_for_state(client, campaign_id, "completed", timeout=60)

    accepted = [e for e in captured if e["event"] == "send_accepted"]
    assert len(accepted) == 1
    assert accepted[0] | {
        "campaign_id": campaign_id, "step": 1, "prospect_id": prospect_id,
        "send_id": f"{campaign_id}:1:{prospect_id}", "mailbox_id": "mb-logs", "provider": "other",
        "activity": "send_email", "attempt": 2,
    } == accepted[0]
    mine = [e for e in captured if e.get("campaign_id") == campaign_id]
    assert mine, captured
    text = repr(captured)
    assert "secret" not in text.replace("[redacted]", "")  # the mailbox password is 'secret'
    assert "Body-7f3a9" not in text



async def test_the_endpoint_says_which_version_the_worker_runs(metrics_url: str) -> None:
    from importlib.metadata import version

    samples = await scrape(metrics_url)
    assert value(samples, "outreach_build_info", version=version("outreach")) == 1
