"""In the Temporal Web UI, an operator finds the run holding a send by campaign and
prospect id, opens it, and reads the SMTP server's reply in its history: decrypted
by the codec server the UI is pointed at, and unreadable without it."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import quote, urlsplit

import asyncpg
from playwright.async_api import BrowserContext, Request, Route, expect

from client.api import OutreachClient
from client.trace import execution_url
from config.names import step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.browser.conftest import ARTIFACTS, UiServer
from tests.factories import add_campaign, add_mailbox

REPLY = "5.1.1 zq7-browser-test: no such user here"
ENCRYPTED = base64.b64encode(b"binary/encrypted").decode()


async def completed_campaign(
    settings: Settings, db: asyncpg.Pool, inbox: LocalSmtpServer,
) -> tuple[str, list[int]]:
    await add_mailbox(db, "mb-ui", inbox.port)
    inbox.script("ui1@example.com", replies=[(550, REPLY)])
    campaign_id, prospect_ids = await add_campaign(
        db, ["mb-ui"], ["ui0@example.com", "ui1@example.com"], [("Hi", "Body", 0)]
    )
    client = await OutreachClient.connect(settings)
    try:
        await client.start_campaign(campaign_id)
        deadline = time.monotonic() + 30
        while (await client.campaign_status(campaign_id))["state"] != "completed":
            assert time.monotonic() < deadline, "campaign did not complete"
            await asyncio.sleep(0.2)
    finally:
        await client.close()
    return campaign_id, prospect_ids


async def test_web_ui_finds_the_send_by_campaign_and_prospect_and_shows_its_smtp_reply(
    ui_settings: Settings, ui_worker: None, db: asyncpg.Pool, inbox: LocalSmtpServer, browser: BrowserContext,
    ui_server: UiServer,
) -> None:
    campaign_id, prospect_ids = await completed_campaign(ui_settings, db, inbox)
    step_id = step_workflow_id(ui_settings.task_queue, campaign_id, 1)
    query = f'OutreachCampaignId = "{campaign_id}" AND OutreachProspectIds = "{prospect_ids[1]}"'
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    decodes: list[Request] = []
    page.on("request", lambda r: decodes.append(r) if r.url.startswith(ui_server.codec_url) else None)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        # The list, filtered by the visibility query in its address: only the run holding the send.
        await page.goto(f"{ui_settings.ui_url}/namespaces/default/workflows?query={quote(query)}")
        links = page.get_by_role("link", name=step_id, exact=True)
        await expect(links).to_have_count(1)
        await links.click()
        await page.wait_for_url(f"{execution_url(ui_settings, step_id)}/*/timeline")
        run_id = page.url.rsplit("/", 2)[-2]

        # Its event history, at the address `outreach trace` prints; expand the send's result.
        await page.goto(execution_url(ui_settings, step_id, run_id))
        await page.get_by_text('"outcome":"hard_bounced"').first.click()
        reply = page.get_by_text(REPLY).first
        await expect(reply).to_be_visible()
        await reply.scroll_into_view_if_needed()
        # Decrypted by the browser's calls to the codec server, not by the Temporal server.
        assert any(r.method == "POST" and urlsplit(r.url).path == "/decode" for r in decodes)
    finally:
        await page.screenshot(path=str(ARTIFACTS / "web-ui-send-reply.png"), full_page=True)


async def test_without_the_codec_server_the_web_ui_shows_no_smtp_reply(
    ui_settings: Settings, ui_worker: None, db: asyncpg.Pool, inbox: LocalSmtpServer, browser: BrowserContext,
    ui_server: UiServer,
) -> None:
    campaign_id, _ = await completed_campaign(ui_settings, db, inbox)
    step_id = step_workflow_id(ui_settings.task_queue, campaign_id, 1)
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    refused: list[str] = []

    async def unreachable(route: Route) -> None:  # as if the codec server were not running
        refused.append(route.request.url)
        await route.abort("connectionrefused")

    await page.route(f"{ui_server.codec_url}/**", unreachable)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        # The same page the first test reads the reply on.
        run_id = (await ui_server.env.client.get_workflow_handle(step_id).describe()).run_id
        await page.goto(execution_url(ui_settings, step_id, run_id))
        # The history is shown (newest first: the list renders only the rows near the
        # top, so an older event's row may not be in the page at all).
        await expect(page.get_by_text("Workflow Execution Completed").first).to_be_visible()
        # What it shows instead: the payloads as stored, "binary/encrypted" (base64) and ciphertext.
        await expect(page.get_by_text(ENCRYPTED).first).to_be_visible()
        assert refused, "the UI never asked the codec server"
        await expect(page.get_by_text("zq7-browser-test")).to_have_count(0)
        await expect(page.get_by_text("hard_bounced")).to_have_count(0)
    finally:
        await page.screenshot(path=str(ARTIFACTS / "web-ui-without-codec.png"), full_page=True)
