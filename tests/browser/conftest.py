"""A Temporal dev server with its Web UI pointed at our codec server, a worker on it,
and headless Chromium."""

from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import asyncpg
import pytest
import redis.asyncio as aioredis
from playwright.async_api import BrowserContext, async_playwright
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client.codec_server import build_app, serving
from config.converter import data_converter, payload_encryption
from config.names import SEARCH_ATTRIBUTES, send_task_queue
from config.settings import Settings
from mail.transport import MailTransport, SmtpTimeouts
from workers.registry import WORKFLOWS, build_activities

BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; no browser download
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UiServer(NamedTuple):
    env: WorkflowEnvironment
    ui_url: str
    codec_url: str  # the codec server the Web UI decrypts payloads through


@pytest.fixture(scope="module")
async def ui_server() -> AsyncIterator[UiServer]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium)")
    ui_port = free_port()
    ui_url = f"http://127.0.0.1:{ui_port}"
    # The browser calls the codec server itself, cross-origin from the UI's page.
    codec = build_app(payload_encryption(), [ui_url], token=None)
    async with (
        serving(codec, "127.0.0.1", free_port()) as codec_url,
        await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN / "temporal"), data_converter=data_converter(),
            dev_server_log_level="error", ui=True, ui_port=ui_port, search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=["--ui-codec-endpoint", codec_url],
        ) as environment,
    ):
        yield UiServer(environment, ui_url, codec_url)


@pytest.fixture
def ui_settings(settings: Settings, ui_server: UiServer) -> Settings:
    env, ui_url = ui_server.env, ui_server.ui_url
    return settings.model_copy(update={
        "temporal_address": env.client.service_client.config.target_host, "ui_url": ui_url,
        "step_min_sleep_seconds": 0.5, "paused_recheck_seconds": 0.5,
    })


@pytest.fixture
async def ui_worker(
    ui_server: UiServer, db: asyncpg.Pool, redis_client: aioredis.Redis,
    ui_settings: Settings,
) -> AsyncIterator[None]:
    transport = MailTransport(SmtpTimeouts(connect=5, greeting=5, socket=5))
    async with Worker(
        ui_server.env.client, task_queue=send_task_queue(ui_settings.task_queue),
        workflows=list(WORKFLOWS), activities=build_activities(ui_settings, db, redis_client, transport),
    ):
        yield
    await transport.close()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            await context.close()
