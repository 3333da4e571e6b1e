"""In the Temporal Web UI, an operator finds the run holding a send by campaign and
prospect id, opens it, and reads the SMTP server's reply in its history."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import asyncpg
from playwright.async_api import BrowserContext, expect

from client.api import OutreachClient
from client.trace import execution_url
from config.names import step_workflow_id
from config.settings import Settings
from inbox.server import Inbox
from tests.browser.conftest import ARTIFACTS
from tests.factories import add_campaign, add_mailbox

REPLY = "5.1.1 zq7-browser-test: no such user here"


async def completed_campaign(settings: Settings, db: asyncpg.Pool, inbox: Inbox) -> tuple[str, list[int]]:
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
    ui_settings: Settings, ui_worker: None, db: asyncpg.Pool, inbox: Inbox, browser: BrowserContext,
) -> None:
    campaign_id, prospect_ids = await completed_campaign(ui_settings, db, inbox)
    step_id = step_workflow_id(ui_settings.task_queue, campaign_id, 1)
    query = f'OutreachCampaignId = "{campaign_id}" AND OutreachProspectIds = "{prospect_ids[1]}"'
    page = await browser.new_page()
    page.set_default_timeout(15_000)
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
    finally:
        await page.screenshot(path=str(ARTIFACTS / "web-ui-send-reply.png"), full_page=True)
