"""The ``outreach`` command line, over OutreachClient and the importers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import asyncpg
import click

from client import ClientError
from client.api import OutreachClient
from client.campaign_cli import register as register_campaign_controls
from client.codec_server import codec_server
from client.dns_cli import check_dns
from client.inbox_cli import inbox
from client.keys_cli import keys
from client.output import echo, echo_json
from client.prospects_cli import prospects
from client.suppress_cli import suppress
from client.unsubscribe_server import unsubscribe_server
from client.variants_cli import campaigns_variants, variant_lines, winner_line
from client.webhook_cli import webhook
from client.workflows_cli import workflows
from config.logs import configure_logging
from config.secrets import SecretKeyError, key_ring
from config.settings import Settings, get_settings
from config.terminal import printable
from config.version import outreach_version
from specs import SpecError
from store import StoreError

P = ParamSpec("P")
T = TypeVar("T")


def run_async(func: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command; known errors become one clear line and exit code 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))
        except (SpecError, StoreError, ClientError, SecretKeyError) as exc:
            echo(f"error: {exc}", err=True)
            sys.exit(2)
        except (OSError, asyncpg.PostgresError) as exc:
            echo(f"error: cannot reach the database or Redis: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:  # Ctrl-C ends a --watch
            sys.exit(130)

    return wrapper


async def with_client(settings: Settings, action: Callable[[OutreachClient], Awaitable[T]]) -> T:
    client = await OutreachClient.connect(settings)
    try:
        return await action(client)
    finally:
        await client.close()


async def with_pool(action: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """For commands that need only PostgreSQL (no Temporal server)."""
    from store.db import create_pool

    pool = await create_pool(get_settings().database_url, max_size=2)
    try:
        return await action(pool)
    finally:
        await pool.close()


@click.group()
@click.option("--log-level", default="WARNING", show_default=True, help="Logging level.")
@click.version_option(outreach_version(), "--version", prog_name="outreach", message="%(prog)s %(version)s")
def main(log_level: str) -> None:
    """outreach: durable multi-step email campaigns on Temporal."""
    configure_logging(log_level.upper())


# outreach db ...

@main.group()
def db() -> None:
    """The PostgreSQL schema."""


@db.command("migrate")
@run_async
async def db_migrate() -> None:
    """Apply pending schema migrations (safe to run again)."""
    from store.migrate import migrate

    applied = await migrate(get_settings().database_url)
    for m in applied:
        echo(f"applied {m.version:04d}_{m.name}")
    echo("database is up to date" if not applied else f"{len(applied)} migration(s) applied")


# outreach mailboxes ...

@main.group()
def mailboxes() -> None:
    """Sending mailboxes."""


@mailboxes.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@run_async
async def mailboxes_import(file: Path) -> None:
    """Import or update mailboxes from a YAML FILE (all or nothing)."""
    from specs.loading import load_mailboxes_file
    from store.importer import import_mailboxes

    specs = load_mailboxes_file(file)
    ids = await with_pool(lambda pool: import_mailboxes(pool, specs))
    echo(f"imported {len(ids)} mailbox(es): {', '.join(ids)}")


@mailboxes.command("pause")
@click.argument("mailbox_id")
@click.option("--reason", default="", help="Why, shown in status and the Web UI.")
@run_async
async def mailboxes_pause(mailbox_id: str, reason: str) -> None:
    """Pause a mailbox: once this returns, no new SMTP transaction starts from it."""
    status = await with_client(get_settings(), lambda c: c.pause_mailbox(mailbox_id, reason))
    echo(f"mailbox {mailbox_id} paused ({status.reason})")


@mailboxes.command("resume")
@click.argument("mailbox_id")
@run_async
async def mailboxes_resume(mailbox_id: str) -> None:
    """Resume a paused mailbox; its queued sends continue within seconds."""
    await with_client(get_settings(), lambda c: c.resume_mailbox(mailbox_id))
    echo(f"mailbox {mailbox_id} resumed")


@mailboxes.command("status")
@click.argument("mailbox_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def mailboxes_status(mailbox_id: str | None, as_json: bool) -> None:
    """Show mailboxes, whether they are paused and why, and today's sends."""
    from store.accounts import list_mailboxes

    rows = await with_pool(lambda pool: list_mailboxes(pool, mailbox_id))
    if as_json:
        echo_json(rows[0] if mailbox_id else rows)
        return
    for r in rows:
        state = f"paused ({r['pause_reason']})" if r["paused"] else "active"
        echo(
            f"{r['id']:<20} {r['email']:<32} {r['provider']:<8} {state:<30}"
            f" today {r['sent_today']}/{r['daily_limit']}  {inbox_state(r)}"
        )


def inbox_state(row: dict[str, Any]) -> str:
    """What `mailboxes status` says about reading the mailbox's inbox."""
    if not row["reads_replies"]:
        return "inbox: not read (no IMAP settings), replies are not seen"
    if row["inbox_error"]:
        return f"inbox: failing ({row['inbox_error']})"
    read_at = row["inbox_read_at"]
    return f"inbox: read {read_at:%Y-%m-%d %H:%M:%S}Z" if read_at else "inbox: not read yet"


# outreach campaigns ...

@main.group()
def campaigns() -> None:
    """Campaigns."""


@campaigns.command("create")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--open", "is_open", is_flag=True,
              help="Keep it running for prospects added later, until `campaigns close` (as `open: true`).")
@run_async
async def campaigns_create(file: Path, is_open: bool) -> None:
    """Create a campaign from a YAML FILE; prints its id on the last line."""
    from dataclasses import replace

    from specs.campaigns import combination_counts
    from specs.loading import load_campaign_file
    from specs.prospects import zone_summary
    from store.importer import create_campaign

    loaded = load_campaign_file(file)
    for step, variant, texts in combination_counts(loaded.spec.steps):
        if texts > 1 or variant:
            echo(f"step {step}" + (f" variant {variant!r}" if variant else "")
                 + f": {texts} spintax combination(s), each checked against the prospects")
    if is_open:
        loaded = replace(loaded, spec=loaded.spec.model_copy(update={"open": True}))
    created = await with_pool(lambda pool: create_campaign(pool, loaded))
    for warning in created.warnings:
        echo(f"warning: {warning}", err=True)
    default = loaded.spec.default_timezone or "the mailbox's zone"
    echo(f"{zone_summary(loaded.prospects)} ({default})")
    echo(f"created campaign with {created.prospects} prospect(s),"
         f" {created.suppressed} suppressed (on the do-not-contact list, never written to)"
         + (f", {created.active_elsewhere} skipped (active in another running campaign)"
            if created.active_elsewhere else ""))
    echo(created.id)


@campaigns.command("start")
@click.argument("campaign_id")
@run_async
async def campaigns_start(campaign_id: str) -> None:
    """Start sending a campaign (starting it again is a no-op)."""
    workflow_id = await with_client(get_settings(), lambda c: c.start_campaign(campaign_id))
    echo(f"campaign {campaign_id} started (workflow {workflow_id})")


@campaigns.command("status")
@click.argument("campaign_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--watch", is_flag=True, help="Refresh every 2 s until the campaign ends (Ctrl-C stops).")
@click.option("--by-variant", is_flag=True,
              help="Also the figures per step variant: sent, delivered, bounced, replied, ...,"
              " and its replies per intent class.")
@run_async
async def campaigns_status(campaign_id: str, as_json: bool, watch: bool, by_variant: bool) -> None:
    """Show a campaign's state and, per step, its sends by ledger state, progress,
    rate and an estimate of completion; the winners of steps with variants."""
    from store.campaigns import campaign_progress, campaign_status
    from store.variant_stats import variant_stats

    async def read(pool: asyncpg.Pool) -> dict[str, Any]:
        status = await campaign_status(pool, campaign_id)
        figures = {"variants": await variant_stats(pool, campaign_id)} if by_variant else {}
        return {**status, "progress": await campaign_progress(pool, campaign_id, status["steps"]), **figures}

    while True:
        status = await with_pool(read)
        if as_json:
            echo_json(status)
        else:
            _echo_status(status, tty=sys.stdout.isatty(), clear=watch and sys.stdout.isatty())
        if not watch or status["state"] in ("completed", "cancelled"):
            return
        try:
            await asyncio.sleep(2)
        except asyncio.CancelledError:  # Ctrl-C
            return


def _echo_status(status: dict[str, Any], *, tty: bool, clear: bool) -> None:
    if clear:
        click.clear()
    progress = status["progress"]
    prospects = status["prospects"]
    echo(f"campaign {status['id']} ({status['name']}): {status['state']},"
         f" {sum(prospects.values())} prospects")
    echo("  prospects: " + ", ".join(f"{k} {v}" for k, v in prospects.items() if v or k == "active"))
    replies = {r["step"]: r for r in status.get("replies", [])}
    waits = {w["step"]: w for w in status.get("waiting", [])}
    classes = {r["step"]: r["classes"] for r in status.get("reply_classes", [])}
    for step, done in zip(status["steps"], progress["steps"], strict=True):
        counts = ", ".join(f"{k} {v}" for k, v in step.items() if k != "step" and v)
        bar = f"{_bar(done['done'], done['total'])} " if tty else ""
        answered = replies.get(step["step"], {})
        reply = ""
        if answered.get("replies"):
            reply = f"; replies {answered['replies']} ({answered['reply_rate']:.1%})"
        if classes.get(step["step"]):
            reply += " [" + ", ".join(f"{k} {v}" for k, v in classes[step["step"]].items()) + "]"
        echo(f"  step {step['step']}: {bar}{done['done']}/{done['total']} done;"
             f" {counts or 'nothing yet'}{reply}")
        wait = waits.get(step["step"], {})
        if wait.get("prospects"):
            echo(f"    {wait['prospects']} wait for their window or delay;"
                 f" the next opens {wait['next_opening'] or 'never (windows that do not meet)'}")
    eta = progress["eta_seconds"]
    echo(f"  rate {progress['rate_per_minute']:.1f}/min (limits allow"
         f" {progress['limit_per_minute']:.1f}/min), {progress['remaining']} remaining,"
         f" done in {_duration(eta) if eta is not None else 'unknown'}")
    if "variants" in status:
        echo("\n".join(variant_lines(status["variants"], status["winners"])))
    else:
        for line in map(winner_line, status.get("winners", [])):
            echo(line)


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _campaign_action(name: str, help_text: str) -> None:
    @campaigns.command(name, help=help_text)
    @click.argument("campaign_id")
    @run_async
    async def command(campaign_id: str) -> None:
        async def act(c: OutreachClient) -> object:
            return await getattr(c, f"{name}_campaign")(campaign_id)

        await with_client(get_settings(), act)
        echo(f"campaign {campaign_id}: {name} done")


_campaign_action("pause", "Pause a campaign: returns once no new SMTP transaction of it can start"
                          " (claimed sends go back to the queue unsent; one in DATA may finish).")
_campaign_action("resume", "Resume a paused campaign.")
_campaign_action("cancel", "Cancel a campaign: its open sends end as skipped.")


# outreach schedules ...

@main.group()
def schedules() -> None:
    """Temporal schedules of the maintenance workflows (cleanup, health checks, reconciliation)."""


async def _with_temporal(action: Callable[[Any], Awaitable[T]]) -> T:
    from workers.main import connect_temporal

    try:
        temporal = await connect_temporal(get_settings())
    except RuntimeError as exc:
        raise ClientError(f"cannot reach Temporal at {get_settings().temporal_address}: {exc}") from exc
    return await action(temporal)


@schedules.command("apply")
@run_async
async def schedules_apply() -> None:
    """Create or update every schedule from the settings (running it again changes nothing)."""
    from client.schedules import apply_schedules, set_namespace_retention

    settings = get_settings()

    async def apply(temporal: Any) -> None:
        for sid, result in (await apply_schedules(temporal, settings)).items():
            echo(f"{sid}: {result}")
        retention = await set_namespace_retention(
            temporal, settings.temporal_namespace, settings.namespace_retention_days
        )
        echo(f"namespace {settings.temporal_namespace} retention"
             f" {settings.namespace_retention_days} days: {retention}")

    await _with_temporal(apply)


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@run_async
async def schedules_list(as_json: bool) -> None:
    """Show each maintenance schedule: interval, runs, skipped overlaps, last and next run."""
    from client.schedules import describe_schedules

    rows = await _with_temporal(lambda t: describe_schedules(t, get_settings()))
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        details = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("id", "state"))
        echo(f"{r['id']:<40} {r['state']:<8} {details}")


# outreach trace / search-attributes

@main.command()
@click.argument("target")
@run_async
async def trace(target: str) -> None:
    """A prospect's sends, from a PROSPECT_ID, an EMAIL or a SEND_KEY (campaign:step:prospect):
    state, attempts, last reply, and the Web UI address of the execution holding each."""
    from client.trace import execution_url, holding_urls
    from config.names import step_workflow_id
    from store.trace import trace as ledger_trace

    settings = get_settings()
    prospects = await with_pool(lambda pool: ledger_trace(pool, target))
    temporal = await _temporal_or_none()
    for p in prospects:
        echo(f"prospect {p.id}  campaign {p.campaign_id}  status {p.status}")
        if not p.sends:
            echo("  no sends yet")
        for s in p.sends:
            # The remote server's own text (it has the enhanced code): one field on its line.
            reply = printable(" ".join(str(x) for x in (s.last_code, s.last_reply) if x))
            echo(f"  {s.key}  step {s.step}  {s.state}  attempts {s.attempts}"
                 f"  mailbox {s.mailbox_id}  sent_at {s.sent_at or '-'}"
                 + (f"  variant {s.variant}" if s.variant else ""))
            local = s.local_sent_at
            sent = f", sent at {local:%Y-%m-%d %H:%M} local time ({local:%a}, UTC{local:%z})" if local else ""
            echo(f"    recipient zone {s.recipient_timezone}{sent}")
            echo(f"    last reply: {reply or '-'}")
            urls = await holding_urls(temporal, settings, s) if temporal else []
            wid = step_workflow_id(settings.task_queue, s.campaign_id, s.step)
            for url in urls or [execution_url(settings, wid)]:
                echo(f"    {url}")
    await _echo_inbound([p.id for p in prospects])


async def _echo_inbound(prospect_ids: list[int]) -> None:
    """What the inboxes held from these prospects, with its class (issue 14), what it
    means and what on_reply did, and each postponement of a next step (issue 25)."""
    from store.inbound import inbound_of, postponements_of

    for m in await with_pool(lambda pool: inbound_of(pool, prospect_ids)):
        verdict = f" ({m['verdict']})" if m["verdict"] else ""
        echo(f"  inbound for prospect {m['prospect_id']}: {m['class']}{verdict}"
             f"  {m['recorded_at']:%Y-%m-%d %H:%M:%S}  mailbox {m['mailbox_id']} {m['folder']}"
             f" uid {m['uid']}  answers {m['campaign_id']}:{m['step']}:{m['prospect_id']}"
             f" (by {m['matched_by']})" + ("" if m["proven"] else f"  {m['detail']}"))
        if m["intent"]:
            back = f", back {m['return_date']}" if m["return_date"] else ""
            echo(f"    intent {m['intent']} ({m['intent_confidence']:.2f}: {m['intent_reason']}{back})"
                 f"  action {m['action'] or '-'}")
    for p in await with_pool(lambda pool: postponements_of(pool, prospect_ids)):
        echo(f"  postponed prospect {p['prospect_id']} step {p['step']}: {p['due_before']:%Y-%m-%d %H:%M:%S}"
             f" -> {p['due_after']:%Y-%m-%d %H:%M:%S} UTC ({p['reason']})"
             f"  at {p['created_at']:%Y-%m-%d %H:%M:%S}")


async def _temporal_or_none() -> Any:
    """A Temporal client, or None (with a warning): the ledger's view is useful without it."""
    from workers.main import connect_temporal

    try:
        return await connect_temporal(get_settings())
    except RuntimeError as exc:
        echo(f"warning: cannot reach Temporal ({exc}); showing each step's latest run", err=True)
        return None


@main.group("search-attributes")
def search_attributes() -> None:
    """The Temporal search attributes the Web UI finds sends by (campaign, step, mailbox, prospect)."""


@search_attributes.command("register")
@run_async
async def search_attributes_register() -> None:
    """Register them on the namespace (running it again changes nothing)."""
    from client.search_attributes import register_search_attributes

    namespace = get_settings().temporal_namespace
    added = await _with_temporal(lambda t: register_search_attributes(t, namespace))
    echo(f"namespace {namespace}: " + (f"registered {', '.join(added)}" if added
                                       else "search attributes already registered"))


def _require_search_attributes(settings: Settings) -> None:
    """The worker does not start on a namespace without them: its step workflows would stall."""
    from client.search_attributes import missing_search_attributes

    async def check() -> list[str]:
        return await _with_temporal(lambda t: missing_search_attributes(t, settings.temporal_namespace))

    try:
        missing = asyncio.run(check())
    except ClientError:
        return  # Temporal is not up yet: the worker reports that itself, and retries
    if missing:
        echo(f"error: search attributes {', '.join(missing)} are not registered on namespace"
             f" {settings.temporal_namespace}; run `outreach search-attributes register`", err=True)
        sys.exit(2)


# outreach worker / dev / demo

@main.command()
def worker() -> None:
    """Run the send worker until SIGTERM or SIGINT, then shut down gracefully."""
    from workers.main import main as worker_main

    configure_logging("INFO")
    try:
        key_ring(get_settings().secret_keys)  # before connecting: one clear line, no traceback
    except SecretKeyError as exc:
        echo(f"error: {exc}", err=True)
        sys.exit(2)
    _require_search_attributes(get_settings())
    asyncio.run(worker_main(get_settings()))


def _devstack() -> Any:
    """client.devstack, which needs the local SMTP server (localsmtp/, aiosmtpd): production
    installs and the image leave both out, so say what to install instead of a traceback."""
    try:
        import client.devstack
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in {"aiosmtpd", "localsmtp"}:
            raise
        raise click.ClickException(
            f"the local stack needs the development extra ({exc.name} is not installed):"
            " pip install 'outreach[dev]' from a source checkout") from exc
    return client.devstack


@main.command()
@click.option("--ui-port", default=8233, show_default=True)
@click.option("--smtp-port", default=2525, show_default=True)
@click.option("--state-dir", default=".outreach", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--codec-port", default=8081, show_default=True, help="The codec server for the Web UI.")
@click.option("--unsubscribe-port", default=8082, show_default=True,
              help="The unsubscribe server the messages link to.")
def dev(ui_port: int, smtp_port: int, state_dir: Path, codec_port: int, unsubscribe_port: int) -> None:
    """The local stack: Temporal dev server + Web UI, migrations, a worker, a local inbox."""
    run_dev = _devstack().run_dev
    configure_logging("INFO")
    asyncio.run(run_dev(get_settings(), ui_port=ui_port, smtp_port=smtp_port, state_dir=state_dir,
                        codec_port=codec_port, unsubscribe_port=unsubscribe_port))


@main.command()
@click.option("--ui-port", default=8233, show_default=True)
@click.option("--smtp-port", default=2525, show_default=True)
@click.option("--state-dir", default=".outreach", show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--keep-running", is_flag=True, help="Leave the stack up after the demo.")
@click.option("--codec-port", default=8081, show_default=True, help="The codec server for the Web UI.")
@click.option("--unsubscribe-port", default=8082, show_default=True,
              help="The unsubscribe server the messages link to.")
def demo(ui_port: int, smtp_port: int, state_dir: Path, keep_running: bool, codec_port: int,
         unsubscribe_port: int) -> None:
    """Run the example campaign through the local stack and print a summary."""
    run_demo = _devstack().run_demo
    asyncio.run(run_demo(get_settings(), ui_port=ui_port, smtp_port=smtp_port,
                         state_dir=state_dir, keep_running=keep_running, codec_port=codec_port,
                         unsubscribe_port=unsubscribe_port))


main.add_command(codec_server)
main.add_command(keys)
main.add_command(suppress)
main.add_command(unsubscribe_server)
main.add_command(prospects)
mailboxes.add_command(check_dns)
register_campaign_controls(main, campaigns, mailboxes, prospects)
campaigns.add_command(campaigns_variants)
main.add_command(inbox)
main.add_command(webhook)
main.add_command(workflows)


def run() -> None:
    """The console entry point: ``main``, then a hard exit with its status.

    The Temporal client's native runtime can abort the interpreter while it
    finalizes (PyGILState_Release after the output is complete); everything a
    command does is finished and flushed by then, so skip finalization.
    """
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(printable(exc.code, keep_lines=True) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
