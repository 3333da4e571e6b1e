"""``outreach codec-server``: decrypts payloads for the Temporal Web UI and CLI.

The Temporal codec server protocol: POST ``/encode`` and ``/decode`` (also under
a namespace prefix, ``/{namespace}/decode``, as the CLI's ``--codec-endpoint
http://host/{namespace}`` sends it) with a ``Payloads`` message as protobuf
JSON, answered with the same. The browser calls it cross-origin, so the Web
UI's origins get CORS answers, preflight included. The keys never leave this
process; with a token set, every POST needs ``Authorization: Bearer <token>``.

It answers only requests whose Host names it (421 otherwise): a page on another site
cannot reach it through a DNS name of the page's that it rebinds to 127.0.0.1. Bodies
are bounded (413), and one that is not a Payloads message, or holds a payload that does
not decrypt, gets 400. Served through client/http_guard.py (docs/decisions/0045).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence

import click
from aiohttp import hdrs, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, Payloads

from client import http_guard
from client.http_guard import serving as serving  # re-exported: devstack and tests serve apps with it
from config.codec import PayloadEncryption
from config.converter import payload_encryption
from config.secrets import SecretKeyError
from config.settings import get_settings

DEFAULT_PORT = 8081
DEFAULT_UI_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
# What the Web UI sends with its requests (and so asks for in the preflight).
ALLOWED_HEADERS = "content-type, x-namespace, authorization"
# A Web UI page or a history dump decodes many payloads in one request; aiohttp's
# default limit (1 MiB) refused a test's dump of a busy namespace with a 413.
# OUTREACH_CODEC_MAX_BODY_BYTES overrides it.
MAX_REQUEST_BYTES = 4 * 2**20
# Names that reach this machine only from itself: always answered.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}))?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]
HostRule = tuple[str, int | None]  # (lower-case name, port or None for any)


def split_host(value: str) -> HostRule | None:
    """``name`` or ``name:port`` (an IPv6 name in brackets), or None if it is neither."""
    match = _HOST.fullmatch(value.strip())
    if match is None:
        return None
    return match["name"].lower().rstrip("."), int(match["port"]) if match["port"] else None


def host_rules(entries: Iterable[str]) -> frozenset[HostRule]:
    """The loopback names and ``entries``, for any port unless an entry names one. A name
    without a port matches any port: what protects the server is the name (a rebinding
    attack needs the attacker's own), and a published port may differ from the one the
    server listens on (docker-compose, the compose stack test)."""
    rules = set()
    for entry in (*LOOPBACK_HOSTS, *entries):
        rule = split_host(entry)
        if rule is None:
            raise ValueError(f"{entry!r} is not a host name or host:port")
        rules.add(rule)
    return frozenset(rules)


def configured_hosts(host: str, setting: str) -> list[str]:
    """The name --host gives clients (unless a wildcard, which names nothing), and the
    names of OUTREACH_CODEC_ALLOWED_HOSTS."""
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    named = [] if host in _WILDCARD_HOSTS else [bracketed]
    return [*named, *(h.strip() for h in setting.split(",") if h.strip())]


def host_allowed(header: str, rules: frozenset[HostRule]) -> bool:
    rule = split_host(header)
    return rule is not None and ((rule[0], None) in rules or rule in rules)


def build_app(
    codec: PayloadEncryption, ui_origins: Sequence[str], token: str | None, *,
    allowed_hosts: Iterable[str] = (), max_body_bytes: int = MAX_REQUEST_BYTES,
) -> web.Application:
    origins = {o.rstrip("/") for o in ui_origins}
    hosts = host_rules(allowed_hosts)

    def cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN, "")
        if origin in origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers[hdrs.VARY] = "Origin"
        return response

    @web.middleware
    async def host_check(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get(hdrs.HOST, "")
        if not host_allowed(host, hosts):
            return web.json_response(
                {"error": f"Host {host!r} is not a name of this codec server; add it to"
                          " OUTREACH_CODEC_ALLOWED_HOSTS"}, status=421)
        return await handler(request)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == hdrs.METH_OPTIONS:
            # A preflight carries no credentials; it only learns what the POST may send.
            response = cors(request, web.Response())
            if hdrs.ACCESS_CONTROL_ALLOW_ORIGIN in response.headers:
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, OPTIONS"
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOWED_HEADERS
                response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
            return response
        if token is not None and not _bearer_matches(request, token):
            return cors(request, web.json_response(
                {"error": "missing or wrong bearer token"}, status=401,
                headers={hdrs.WWW_AUTHENTICATE: "Bearer"},
            ))
        try:
            return cors(request, await handler(request))
        except web.HTTPException as exc:  # 404, 405, 408, 413: raised, with the CORS headers
            cors(request, exc)
            raise

    def route(transform: Transform) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await http_guard.read_body(request, max_body_bytes)
            try:
                payloads = json_format.Parse(body, Payloads())
            except (json_format.ParseError, ValueError) as exc:  # ValueError: not UTF-8
                return web.json_response({"error": f"the body is not a Payloads JSON message: {exc}"},
                                         status=400)
            try:
                result = Payloads(payloads=await transform(payloads.payloads))
            except SecretKeyError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except (ValueError, DecodeError) as exc:  # e.g. a ciphertext shorter than its nonce
                return web.json_response({"error": f"a payload does not decrypt: {exc}"}, status=400)
            return web.Response(text=json_format.MessageToJson(result), content_type="application/json")

        return handle

    app = web.Application(middlewares=[http_guard.timers, host_check, guard], client_max_size=max_body_bytes)
    for prefix in ("", "/{namespace}"):
        app.router.add_post(f"{prefix}/encode", route(codec.encode))
        app.router.add_post(f"{prefix}/decode", route(codec.decode))
        app.router.add_route(hdrs.METH_OPTIONS, f"{prefix}/encode", _no_content)
        app.router.add_route(hdrs.METH_OPTIONS, f"{prefix}/decode", _no_content)
    return app


async def _no_content(request: web.Request) -> web.Response:
    return web.Response()  # never reached: the middleware answers every OPTIONS


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


TOKEN_ENV = "OUTREACH_CODEC_TOKEN"


def codec_token(env_name: str | None) -> str | None:
    """The bearer token from ``env_name`` (default OUTREACH_CODEC_TOKEN), or None for no token."""
    value = os.environ.get(env_name or TOKEN_ENV, "").strip()
    if env_name and not value:
        raise click.ClickException(f"--token-env {env_name}: the environment variable {env_name} is not set")
    return value or None


@click.command("codec-server")
@click.option("--port", default=DEFAULT_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--ui-origin", "ui_origins", multiple=True, default=DEFAULT_UI_ORIGINS, show_default=True,
              help="A Web UI origin allowed to call it (repeatable).")
@click.option("--token-env", default=None, metavar="NAME",
              help=f"Require 'Authorization: Bearer <token>', the token read from NAME [{TOKEN_ENV} if set].")
def codec_server(port: int, host: str, ui_origins: tuple[str, ...], token_env: str | None) -> None:
    """Decrypt payloads for the Temporal Web UI and CLI (the codec server protocol)."""
    from workers.main import install_stop_signals

    token = codec_token(token_env)
    settings = get_settings()
    try:
        codec = payload_encryption(settings)
    except SecretKeyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        app = build_app(codec, ui_origins, token, max_body_bytes=settings.codec_max_body_bytes,
                        allowed_hosts=configured_hosts(host, settings.codec_allowed_hosts))
    except ValueError as exc:
        raise click.ClickException(f"OUTREACH_CODEC_ALLOWED_HOSTS: {exc}") from None
    limits = http_guard.Limits.from_settings(settings)
    http_guard.raise_descriptor_limit()

    async def serve() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        async with serving(app, host, port, limits) as url:
            click.echo(f"codec server on {url} for {', '.join(ui_origins)}"
                       f"{'' if token else ' (no token)'}; Ctrl-C stops it")
            await stop.wait()

    asyncio.run(serve())
