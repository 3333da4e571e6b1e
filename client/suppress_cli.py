"""``outreach suppress``: the do-not-contact list, per workspace or global (docs/decisions/0026).

Needs only PostgreSQL. Every command that writes names its scope: ``--workspace W``
or ``--global``; listing and exporting without one show every scope.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import click

from client.db_command import fail, run_on_database
from client.output import echo, echo_json
from specs import SpecError
from specs.suppressions import read_suppressions_csv
from store import StoreError, suppressions
from store.suppressions import GLOBAL, Scope, Suppression


def _scope(workspace: str | None, is_global: bool, *, required: bool) -> Scope | None:
    if workspace is not None and is_global:
        raise click.UsageError("give --workspace W or --global, not both")
    if is_global:
        return GLOBAL
    if workspace is not None:
        try:
            return Scope.workspace(workspace)
        except StoreError as exc:
            raise click.UsageError(str(exc)) from None
    if required:
        raise click.UsageError("say which list: --workspace W or --global")
    return None


def _scoped(required: bool) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The --workspace / --global pair of options."""
    help_suffix = "" if required else " (default: every scope)"

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option("--global", "is_global", is_flag=True,
                               help="The global list, which every workspace obeys" + help_suffix)(command)
        return click.option("--workspace", "workspace", metavar="W",
                            help="A workspace's list" + help_suffix)(command)

    return decorate


def _describe(s: Suppression) -> str:
    return f"{s.entry} ({s.scope}, {s.source}{', ' + s.reason if s.reason else ''})"


@click.group()
def suppress() -> None:
    """The do-not-contact list: addresses and @domains no campaign writes to."""


@suppress.command("add")
@click.argument("entry", metavar="ADDRESS|@DOMAIN")
@_scoped(required=True)
@click.option("--reason", default=None, help="Why, shown in listings.")
def suppress_add(entry: str, workspace: str | None, is_global: bool, reason: str | None) -> None:
    """List an ADDRESS, or every address of a @DOMAIN."""
    scope = _scope(workspace, is_global, required=True)
    assert scope is not None
    added, new = run_on_database(lambda pool: suppressions.add(pool, scope, entry, reason=reason))
    echo(f"{'added' if new else 'already listed:'} {_describe(added)}")


@suppress.command("remove")
@click.argument("entry", metavar="ADDRESS|@DOMAIN")
@_scoped(required=True)
def suppress_remove(entry: str, workspace: str | None, is_global: bool) -> None:
    """Take an ADDRESS or @DOMAIN off a list (other scopes' entries stay)."""
    scope = _scope(workspace, is_global, required=True)
    assert scope is not None
    removed = run_on_database(lambda pool: suppressions.remove(pool, scope, entry))
    echo(f"removed {_describe(removed)}")


@suppress.command("list")
@_scoped(required=False)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def suppress_list(workspace: str | None, is_global: bool, as_json: bool) -> None:
    """Show a list's entries: address or domain, scope, source, reason, time."""
    scope = _scope(workspace, is_global, required=False)
    entries = run_on_database(lambda pool: suppressions.listed(pool, scope))
    if as_json:
        echo_json([s.as_json() for s in entries], ensure_ascii=False)
        return
    for s in entries:
        echo(f"{s.entry:<40} {str(s.scope):<24} {s.source:<12}"
             f" {s.created_at:%Y-%m-%d %H:%M:%S%z}  {s.reason or ''}".rstrip())
    if not entries:
        echo("no entries", err=True)


@suppress.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_scoped(required=True)
def suppress_import(file: Path, workspace: str | None, is_global: bool) -> None:
    """List every entry of a CSV FILE (header row; column address: an address or @domain;
    optional reason). All or nothing: a bad row imports nothing and is named with its column."""
    scope = _scope(workspace, is_global, required=True)
    assert scope is not None
    try:
        rows = read_suppressions_csv(file)
    except SpecError as exc:
        fail(str(exc))
    added = run_on_database(lambda pool: suppressions.add_many(pool, scope, rows))
    echo(f"imported {len(rows)} entr{'y' if len(rows) == 1 else 'ies'} into the {scope} list:"
         f" {added} new, {len(rows) - added} already listed")


@suppress.command("export")
@_scoped(required=False)
def suppress_export(workspace: str | None, is_global: bool) -> None:
    """Write a list as CSV to stdout, in the form `suppress import` reads."""
    scope = _scope(workspace, is_global, required=False)
    entries = run_on_database(lambda pool: suppressions.listed(pool, scope))
    if not sys.stdout.isatty():  # a file or a pipe: the values exactly as stored
        suppressions.write_csv(sys.stdout, entries)
        return
    shown = io.StringIO()  # a terminal: a reason a remote server wrote must not drive it
    suppressions.write_csv(shown, entries)
    echo(shown.getvalue().removesuffix("\n"))
