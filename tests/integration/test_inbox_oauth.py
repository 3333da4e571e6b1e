"""An OAuth2 mailbox reads its inbox with XOAUTH2 and the same access token as SMTP,
refreshed when close to expiry: a real dovecot checking each token at an
introspection endpoint (Google's and Microsoft's token endpoints cannot be reached
from here; the refresh is the health check's fake endpoint)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from aiohttp import web

from activities.inbox import oauth_token_source
from inbox.poll import poll_mailbox
from tests.factories import add_mailbox, sealed, settings_ring
from tests.imap_server import ImapServer, running_imap
from tests.integration.test_health_check import FakeTokenEndpoint
from tests.integration.test_inbox_poll import LIMITS

ADDRESS = "ann@sender.example.com"


class Introspection:
    """The identity provider's token introspection (RFC 7662) that dovecot asks."""

    def __init__(self) -> None:
        self.valid = {"access-1"}
        self.asked: list[str] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        token = str((await request.post()).get("token", ""))
        self.asked.append(token)
        if token in self.valid:
            return web.json_response({"active": True, "username": ADDRESS})
        return web.json_response({"active": False})


@pytest.fixture
async def introspection() -> AsyncIterator[Introspection]:
    found = Introspection()
    app = web.Application()
    app.router.add_post("/introspect", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/introspect"  # type: ignore[union-attr]
    yield found
    await runner.cleanup()


@pytest.fixture
def imap(introspection: Introspection) -> Iterator[ImapServer]:
    with running_imap({ADDRESS: "unused"}, introspection_url=introspection.url) as server:
        yield server


async def test_oauth_mailbox_reads_with_xoauth2_and_a_refreshed_token(
    db: asyncpg.Pool, imap: ImapServer, introspection: Introspection
) -> None:
    await db.execute("TRUNCATE inbox_cursors, inbound_messages")
    await add_mailbox(db, "mb", 2525, email=ADDRESS)
    await db.execute(
        "UPDATE mailboxes SET password = NULL, username = $1, auth_kind = 'oauth2',"
        " oauth_provider = 'google', oauth_client_id = 'cid', oauth_refresh_token = $2,"
        " oauth_access_token = $3, oauth_expires_at = now() + interval '1 minute',"
        " imap_host = $4, imap_port = $5, imap_security = 'none' WHERE id = 'mb'",
        ADDRESS, sealed("mb", "oauth_refresh_token", "rt-1"), sealed("mb", "oauth_access_token", "old"),
        imap.host, imap.port,
    )
    imap.append(ADDRESS, b"From: x@y.example\r\nMessage-ID: <m1@y>\r\nSubject: hi\r\n\r\nhello\r\n")
    endpoint = FakeTokenEndpoint()
    tokens = oauth_token_source(db, endpoint, settings_ring())

    result = await poll_mailbox(db, "mb", ring=settings_ring(), limits=LIMITS, tokens=tokens)

    assert result.error is None and [f.kind for f in result.found] == ["other"]
    assert endpoint.calls == ["rt-1"]  # a minute left: refreshed first, then used
    assert introspection.asked == ["access-1"]

    # A token the provider no longer accepts: the reason is recorded, nothing read.
    introspection.valid.clear()
    refused = await poll_mailbox(db, "mb", ring=settings_ring(), limits=LIMITS, tokens=tokens)
    assert refused.error is not None and "AUTHENTICATE XOAUTH2 refused" in refused.error
