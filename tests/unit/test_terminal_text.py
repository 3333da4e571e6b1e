"""Text from outside reaches the operator's terminal inert: control characters shown as
escapes (config/terminal.py, docs/decisions/0047)."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from client.output import echo, echo_json
from config.logs import configure_logging
from config.terminal import printable

# What a recipient server can put in a reply: retitle the window and ring (OSC ... BEL),
# clear the screen (CSI), a C1 CSI, a line separator that forges a line, and a
# right-to-left override that shows the end of the line reversed.
HOSTILE = "gone\x1b]0;pwned\x07\x1b[2J\x9b31m\u2028forged\u202eliame\r\x00"
RAW = ("\x1b", "\x07", "\x9b", "\u2028", "\u202e", "\r", "\x00")


def assert_inert(text: str) -> None:
    assert not any(c in text for c in RAW), repr(text)


def test_every_control_character_is_shown_as_an_escape() -> None:
    shown = printable(HOSTILE)
    assert shown == "gone\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u2028forged\\u202eliame\\x0d\\x00"
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, 0x202A, 0x202E, 0x2066,
                 0x2069, 0x200E, 0x200F, 0x061C]:
        assert printable(chr(code)).startswith("\\"), hex(code)


def test_ordinary_text_is_left_alone() -> None:
    text = "Jörn Müller <jorn@bücher.de>: 550 5.1.1 mailbox unavailable — «nein» 日本 🙂 \\x1b"
    assert printable(text) == text


def test_newlines_and_tabs_are_kept_only_where_the_format_needs_them() -> None:
    assert printable("a\nb\tc") == "a\\x0ab\\x09c"  # one field: it cannot forge a line
    assert printable("a\nb\tc\x1b", keep_lines=True) == "a\nb\tc\\x1b"


def test_json_stays_json_with_the_same_values() -> None:
    value = {"reason": HOSTILE, "name": "Jörn"}
    text = printable(json.dumps(value, ensure_ascii=False, indent=2), json=True)
    assert_inert(text)
    assert "Jörn" in text and json.loads(text) == value


def test_the_cli_echo_functions_escape(capsys: pytest.CaptureFixture[str]) -> None:
    echo(f"last reply: {HOSTILE}\nnext line")
    echo(f"error: {HOSTILE}", err=True)
    echo_json([{"reason": HOSTILE}], ensure_ascii=False)
    out, err = capsys.readouterr()
    assert_inert(out + err)
    assert "pwned\\x07" in out and out.count("\n") > 2  # the format's own newlines stay
    assert err == "error: gone\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u2028forged\\u202eliame\\x0d\\x00\n"
    assert json.loads(out.split("next line\n", 1)[1]) == [{"reason": HOSTILE}]


def test_console_logs_on_a_terminal_escape_values(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=False)
    try:
        structlog.get_logger("test").warning("smtp reply", reply=HOSTILE)
        logging.getLogger("temporalio.activity").warning("failed: %s", HOSTILE)
        err = capsys.readouterr().err
    finally:
        configure_logging("WARNING", json=True)
    assert "pwned\\x07" in err and err.count("pwned") == 2
    # The renderer may colour its own output with ESC; what the values held is escaped.
    assert not any(c in err for c in ("\x07", "\x9b", "\u2028", "\u202e", "\x1b]0", "\x1b[2J"))
