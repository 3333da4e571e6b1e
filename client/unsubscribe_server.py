"""``outreach unsubscribe-server``: one-click unsubscribe over HTTP (RFC 8058; docs/decisions/0030).

- ``POST /u/TOKEN`` with the form body ``List-Unsubscribe=One-Click`` (what Gmail and
  Yahoo send, urlencoded or multipart) unsubscribes: 200, and 200 again on a replay.
- ``GET /u/TOKEN`` only shows a page whose button posts that same body: link scanners
  and prefetchers GET every link in a message, and must never unsubscribe anyone.
- A token that does not verify gets 400 with no detail (the reason is logged); a POST
  without the one-click body, or with a body that is not a readable form, gets 400.
  Every request counts against a token bucket per client (its IPv4 address or IPv6 /64;
  429 when empty), before the token is even read.
- Served through client/http_guard.py: header and body timeouts, connection caps, a
  bounded body (docs/decisions/0045).
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
import click
import structlog
from aiohttp import hdrs, web

from client import http_guard
from client.http_guard import client_key, within
from config.secrets import KeyRing, SecretKeyError, key_ring
from config.settings import get_settings, proxy_networks
from mail import unsubscribe
from mail.message import ONE_CLICK
from store.unsubscribes import unsubscribe as act

log = structlog.get_logger(__name__)

DEFAULT_PORT = 8082
MAX_REQUEST_BYTES = 16 * 1024  # the one-click body is 26 bytes; a multipart one a few hundred
_ONE_CLICK_NAME, _, _ONE_CLICK_VALUE = ONE_CLICK.partition("=")
# The pages load nothing, run nothing, and post only to themselves.
_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
                               " frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def client_address(request: web.Request, trusted: Networks) -> str:
    """Who a request counts against: the peer, or, when the peer is a trusted proxy, the
    last address its X-Forwarded-For chain names that is not a trusted proxy too (the
    left part of the chain is whatever the client wrote, so it is never believed)."""
    peer = request.remote or "?"
    if not trusted or not within(peer, trusted):
        return peer
    chain = [a.strip() for a in ",".join(request.headers.getall(hdrs.X_FORWARDED_FOR, [])).split(",")]
    for address in reversed([a for a in chain if a]):
        if not within(address, trusted):
            return address
    return peer


class RateLimiter:
    """A token bucket per client (the caller keys it with ``client_key``: an IPv4 address,
    an IPv6 /64): ``burst`` requests at once, refilled at
    ``per_minute``. The table is bounded: past ``max_clients`` the full buckets are
    forgotten, then the least recently seen, down to 90 % (so a flood of addresses
    costs one sweep per tenth of the table, and a forgotten client starts full)."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 100_000) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, as of)

    def allow(self, client: str) -> bool:
        now = self._clock()
        tokens, then = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        allowed = tokens >= 1.0
        self._buckets.pop(client, None)  # re-inserted last: the dict's order is recency
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max_clients:
            self._shrink(now)
        return allowed

    def retry_after(self) -> int:
        return max(1, round(1.0 / self._rate))

    def _shrink(self, now: float) -> None:
        for client, (tokens, then) in list(self._buckets.items()):
            if tokens + (now - then) * self._rate >= self._burst:
                del self._buckets[client]
        while len(self._buckets) > self._max_clients * 9 // 10:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


def _page(title: str, text: str, form: bool = False, status: int = 200) -> web.Response:
    button = (
        '<form method="post">'
        f'<input type="hidden" name="{_ONE_CLICK_NAME}" value="{_ONE_CLICK_VALUE}">'
        '<button type="submit">Unsubscribe</button></form>'
    ) if form else ""
    body = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
        "color:#222}h1{font-size:1.4rem}button{font-size:1rem;padding:.6rem 1.4rem;border:0;"
        "border-radius:.3rem;background:#1a56db;color:#fff;cursor:pointer}"
        f"</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}"
        "</body></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html", headers=_HEADERS)


def _bad_link() -> web.Response:
    return _page("This link does not work", "The unsubscribe link is not valid.", status=400)


def build_app(
    pool: asyncpg.Pool, ring: KeyRing, limiter: RateLimiter, trusted_proxies: Networks = (),
) -> web.Application:
    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = client_key(client_address(request, trusted_proxies))
        if request.path.startswith("/u/") and not limiter.allow(client):
            return web.Response(status=429, text="Too many requests\n",
                                headers={hdrs.RETRY_AFTER: str(limiter.retry_after())})
        return await handler(request)

    def verified(request: web.Request) -> unsubscribe.SendKey | None:
        try:
            return unsubscribe.verify(ring, request.match_info["token"])
        except unsubscribe.BadToken as exc:
            log.info("unsubscribe_token_refused", reason=str(exc), client=request.remote)
            return None

    async def confirm(request: web.Request) -> web.Response:
        if verified(request) is None:
            return _bad_link()
        return _page("Unsubscribe", "Stop receiving emails from this sender?", form=True)

    async def one_click(request: web.Request) -> web.Response:
        form = await http_guard.read_form(request, MAX_REQUEST_BYTES)
        if form.get(_ONE_CLICK_NAME) != _ONE_CLICK_VALUE:
            return web.Response(status=400, text=f"Expected the form body {ONE_CLICK}\n")
        send = verified(request)
        if send is None:
            return _bad_link()
        done = await act(pool, send)
        log.info("unsubscribed", campaign_id=send.campaign_id, step=send.step,
                 prospect_id=send.prospect_id, workspace=send.workspace_id, found=done.found,
                 newly_listed=done.newly_listed, sends_ended=done.sends_ended)
        if not done.found:  # its campaign was deleted since: nothing left to write to
            log.warning("unsubscribe_for_unknown_prospect", campaign_id=send.campaign_id,
                        prospect_id=send.prospect_id)
        return _page("You are unsubscribed", "You will not receive further emails from this sender.")

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(middlewares=[http_guard.timers, rate_limit], client_max_size=MAX_REQUEST_BYTES)
    app.router.add_get("/u/{token}", confirm)
    app.router.add_post("/u/{token}", one_click)
    app.router.add_get("/healthz", healthy)
    return app


@click.command("unsubscribe-server")
@click.option("--port", default=DEFAULT_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def unsubscribe_server(port: int, host: str) -> None:
    """Serve one-click unsubscribe links (OUTREACH_UNSUBSCRIBE_BASE_URL points here)."""
    from store.db import create_pool
    from workers.main import install_stop_signals

    settings = get_settings()
    try:
        ring = key_ring(settings.secret_keys)
    except SecretKeyError as exc:
        raise click.ClickException(str(exc)) from None

    proxies = proxy_networks(settings.unsubscribe_trusted_proxies)
    limits = http_guard.Limits.from_settings(settings, exempt=proxies)
    http_guard.raise_descriptor_limit()

    async def serve() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        pool = await create_pool(settings.database_url, max_size=5)
        limiter = RateLimiter(settings.unsubscribe_rate_per_minute, settings.unsubscribe_burst)
        try:
            app = build_app(pool, ring, limiter, proxies)
            async with http_guard.serving(app, host, port, limits) as url:
                click.echo(f"unsubscribe server on {url}; Ctrl-C stops it")
                await stop.wait()
        finally:
            await pool.close()

    asyncio.run(serve())
