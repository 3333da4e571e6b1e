"""The unsubscribe page in headless Chromium: opening the link (a GET, as a person or a
link scanner does) only asks; the button unsubscribes. Screenshots in test-artifacts/."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import BrowserContext, expect

from client.codec_server import serving
from client.unsubscribe_server import RateLimiter, build_app
from config.secrets import KeyRing, key_ring
from config.settings import Settings
from mail.unsubscribe import SendKey, sign
from tests.browser.conftest import ARTIFACTS
from tests.factories import add_campaign, add_mailbox


def ring() -> KeyRing:
    return key_ring(Settings().secret_keys)


@pytest.fixture
async def unsubscribe_url(db: asyncpg.Pool) -> AsyncIterator[str]:
    async with serving(build_app(db, ring(), RateLimiter(600, 50)), "127.0.0.1", 0) as url:
        yield url


async def test_the_page_asks_first_and_its_button_unsubscribes(
    db: asyncpg.Pool, browser: BrowserContext, unsubscribe_url: str,
) -> None:
    await add_mailbox(db, "mb-page", 2525)
    campaign_id, (pid,) = await add_campaign(db, ["mb-page"], ["page@example.com"], [("Hi", "B", 0)])
    link = f"{unsubscribe_url}/u/{sign(ring(), SendKey('ws', campaign_id, 1, pid))}"
    page = await browser.new_page()
    page.set_default_timeout(15_000)
    ARTIFACTS.mkdir(exist_ok=True)

    response = await page.goto(link)
    assert response is not None and response.status == 200
    await expect(page.get_by_role("heading")).to_have_text("Unsubscribe")
    button = page.get_by_role("button", name="Unsubscribe")
    await expect(button).to_be_visible()
    await page.screenshot(path=str(ARTIFACTS / "unsubscribe-page.png"), full_page=True)
    assert await db.fetchval("SELECT status FROM prospects WHERE id = $1", pid) == "active"
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0

    async with page.expect_navigation():
        await button.click()
    await expect(page.get_by_role("heading")).to_have_text("You are unsubscribed")
    await page.screenshot(path=str(ARTIFACTS / "unsubscribe-done.png"), full_page=True)
    assert await db.fetchval("SELECT status FROM prospects WHERE id = $1", pid) == "unsubscribed"
    assert await db.fetchval(
        "SELECT source FROM suppressions WHERE workspace_id = 'ws' AND entry = 'page@example.com'"
    ) == "unsubscribe"

    bad = await page.goto(link[:-5])
    assert bad is not None and bad.status == 400
    await expect(page.get_by_role("heading")).to_have_text("This link does not work")
    await page.screenshot(path=str(ARTIFACTS / "unsubscribe-bad-link.png"), full_page=True)
