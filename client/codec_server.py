"""``outreach codec-server``: decrypts payloads for the Temporal Web UI and CLI.

The Temporal codec server protocol: POST ``/encode`` and ``/decode`` (also under
a namespace prefix, ``/{namespace}/decode``, as the CLI's ``--codec-endpoint
http://host/{namespace}`` sends it) with a ``Payloads`` message as protobuf
JSON, answered with the same. The browser calls it cross-origin, so the Web
UI's origins get CORS answers, preflight included. The keys never leave this
process; with a token set, every POST needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import click
from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from config.codec import PayloadEncryption
from config.converter import payload_encryption
from config.secrets import SecretKeyError
from config.settings import get_settings

DEFAULT_PORT = 8081
DEFAULT_UI_ORIGINS = ("http://127.0.0.1:8233", "http://localhost:8233")
# What the Web UI sends with its requests (and so asks for in the preflight).
ALLOWED_HEADERS = "content-type, x-namespace, authorization"
MAX_REQUEST_BYTES = 256 * 2**20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Transform = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def build_app(codec: PayloadEncryption, ui_origins: Sequence[str], token: str | None) -> web.Application:
    origins = {o.rstrip("/") for o in ui_origins}

    def cors(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN, "")
        if origin in origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers[hdrs.VARY] = "Origin"
        return response

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
        except web.HTTPException as exc:  # 404, 405, 413: raised, with the CORS headers
            cors(request, exc)
            raise

    def route(transform: Transform) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                payloads = json_format.Parse(await request.read(), Payloads())
            except json_format.ParseError as exc:
                return web.json_response({"error": f"the body is not a Payloads JSON message: {exc}"},
                                         status=400)
            try:
                result = Payloads(payloads=await transform(payloads.payloads))
            except SecretKeyError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.Response(text=json_format.MessageToJson(result), content_type="application/json")

        return handle

    # A Web UI page or a history dump decodes many payloads in one request; aiohttp's
    # default limit (1 MiB) refused a test's dump of a busy namespace with a 413.
    app = web.Application(middlewares=[guard], client_max_size=MAX_REQUEST_BYTES)
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


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """The app listening on host:port until the block ends; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield f"http://{host}:{runner.addresses[0][1]}"  # the bound port, also for port 0
    finally:
        await runner.cleanup()


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
    try:
        codec = payload_encryption(get_settings())
    except SecretKeyError as exc:
        raise click.ClickException(str(exc)) from None
    app = build_app(codec, ui_origins, token)

    async def serve() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        async with serving(app, host, port) as url:
            click.echo(f"codec server on {url} for {', '.join(ui_origins)}"
                       f"{'' if token else ' (no token)'}; Ctrl-C stops it")
            await stop.wait()

    asyncio.run(serve())
