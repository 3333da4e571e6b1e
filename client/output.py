"""What the CLI prints, through ``config.terminal.printable`` (docs/decisions/0047).

Every line a command prints may carry text from outside (a reply, a DSN, an IMAP
error, a stored reason), so the commands print through these functions rather than
``click.echo`` directly; a field that must stay on its line (a reply in ``trace``)
goes through ``printable`` on its own first, which escapes its newlines too.
"""

from __future__ import annotations

import json
from typing import Any

import click

from config.terminal import printable


def echo(text: str = "", *, err: bool = False) -> None:
    """One or more lines: newlines and tabs are the format's own, every other control
    character is shown escaped."""
    click.echo(printable(text, keep_lines=True), err=err)


def echo_json(value: Any, *, ensure_ascii: bool = True) -> None:
    """A JSON document, still valid JSON with the same values, that no terminal acts on."""
    text = json.dumps(value, indent=2, default=str, ensure_ascii=ensure_ascii)
    click.echo(printable(text, json=True))
