"""Input hygiene end to end: header injection, malformed addresses, oversized input
and template escapes are refused at import, naming file, row and field, with the
database left as it was; what gets past import (a value changed in the database
afterwards) is refused again when the message is built, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest

from client.api import OutreachClient
from localsmtp.server import LocalSmtpServer
from mail.errors import InvalidMessage
from mail.transport import MailTransport, SmtpAccount, SmtpTimeouts
from specs import SpecError
from specs.bounds import InputBounds
from specs.loading import load_campaign_file, load_mailboxes_file
from specs.templates import render
from store.importer import create_campaign
from tests.factories import add_campaign, add_mailbox, send_row

TABLES = ("workspaces", "mailboxes", "campaigns", "campaign_mailboxes", "steps", "prospects",
          "sends", "send_attempts")
BOUNDS = InputBounds(file_bytes=64 * 2**20, prospects=1000, field_chars=2000, row_chars=20_000,
                     subject_chars=300, body_bytes=200_000)
HEADER = ["email", "first_name", "company"]
GOOD = ["bob@example.com", "Bob", "Acme"]
BCC = "\r\nBcc: victim@example.com"


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in await pool.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in TABLES}


def write_campaign(
    folder: Path, rows: list[list[str]], subject: str = "Hello {{ first_name }}",
    body: str = "Hi {{ first_name }} at {{ company }}",
) -> Path:
    """campaign.yaml and prospects.csv in ``folder``; JSON strings are valid YAML scalars."""
    with (folder / "prospects.csv").open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(rows)
    path = folder / "campaign.yaml"
    path.write_text(
        "name: hygiene\nworkspace: ws\nmailboxes: [mb]\nsteps:\n"
        f"  - subject: {json.dumps(subject)}\n    body: {json.dumps(body)}\n"
        "prospects_csv: prospects.csv\n",
        encoding="utf-8",
    )
    return path


def row(**changes: str) -> list[str]:
    return [changes.get(name, value) for name, value in zip(HEADER, GOOD, strict=True)]


# id -> (keyword arguments of write_campaign, bounds, what the error must say)
Case = tuple[dict[str, Any], InputBounds, str]
CSV_ROW2 = "campaign.yaml: prospects.csv line 2"
CASES: dict[str, Case] = {
    "CR/LF in the subject": (
        {"subject": "Hello" + BCC}, BOUNDS,
        "campaign.yaml: steps[1].subject (line 5): must not contain a line break (CR or LF)"),
    "NUL in a prospect field used in the subject": (
        {"subject": "Hello {{ company }}", "rows": [HEADER, row(company="Acme\x00Corp")]}, BOUNDS,
        f"{CSV_ROW2}, column company: must not contain a NUL character"),
    "CRLF + Bcc in a CSV first_name used in the subject": (
        {"rows": [HEADER, row(first_name="Bob" + BCC)]}, BOUNDS,
        f"{CSV_ROW2}, column first_name: must not contain a line break (CR or LF)"),
    "a subject made multi-line by a field through a filter": (
        {"subject": "Hello {{ company|wordwrap(10) }}",
         "rows": [HEADER, row(company="Acme Corporation International")]}, BOUNDS,
        f"{CSV_ROW2}: step 1 subject as rendered must not contain a line break (CR or LF)"),
    "an address with a space": (
        {"rows": [HEADER, row(email="bob smith@example.com")]}, BOUNDS,
        f"{CSV_ROW2}, column email: not a valid address (The email address contains invalid"
        " characters before the @-sign: SPACE.)"),
    "an address with two @": (
        {"rows": [HEADER, row(email="bob@smith@example.com")]}, BOUNDS,
        f"{CSV_ROW2}, column email: not a valid address (The part after the @-sign contains"
        " invalid characters: '@'.)"),
    "an address with a CR": (
        {"rows": [HEADER, row(email="bob\r@example.com")]}, BOUNDS,
        f"{CSV_ROW2}, column email: must not contain a line break (CR or LF)"),
    "a quoted local part hiding CRLF": (
        {"rows": [HEADER, row(email='"a\r\nb"@example.com')]}, BOUNDS,
        f"{CSV_ROW2}, column email: must not contain a line break (CR or LF)"),
    "a quoted local part": (
        {"rows": [HEADER, row(email='"bob smith"@example.com')]}, BOUNDS,
        f"{CSV_ROW2}, column email: not a valid address (Quoting the part before the @-sign"
        " is not allowed here.)"),
    "an address aiosmtplib cuts at '>'": (
        {"rows": [HEADER, row(email="a@example.com>x@evil.example")]}, BOUNDS,
        f"{CSV_ROW2}, column email: not a valid address (The part after the @-sign contains"
        " invalid characters: '>', '@'.)"),
    "an address aiosmtplib cuts after '<...>'": (
        {"rows": [HEADER, row(email="<a@example.com> b")]}, BOUNDS,
        f"{CSV_ROW2}, column email: not a valid address"),
    "an oversize subject": (
        {"subject": "s" * 301}, BOUNDS,
        "campaign.yaml: steps[1].subject (line 5): is 301 characters, over the limit of 300"
        " (OUTREACH_MAX_SUBJECT_CHARS)"),
    "a subject made oversize by a field": (
        {"subject": "Hello {{ company }}", "rows": [HEADER, row(company="c" * 295)]}, BOUNDS,
        f"{CSV_ROW2}: step 1 subject as rendered is 301 characters, over the limit of 300"
        " (OUTREACH_MAX_SUBJECT_CHARS)"),
    "an oversize CSV field": (
        {"rows": [HEADER, row(company="c" * 2001)]}, BOUNDS,
        f"{CSV_ROW2}, column company: is 2001 characters, over the limit of 2000"
        " (OUTREACH_MAX_FIELD_CHARS)"),
    "an oversize CSV row": (
        {"rows": [HEADER, row(company="c" * 60)]}, replace(BOUNDS, row_chars=50),
        f"{CSV_ROW2}: the row is 78 characters, over the limit of 50 (OUTREACH_MAX_ROW_CHARS)"),
    "too many CSV rows": (
        {"rows": [HEADER, *([f"p{i}@example.com", "P", "Co"] for i in range(3))]},
        replace(BOUNDS, prospects=2),
        "campaign.yaml: prospects.csv line 4: more than 2 prospects (OUTREACH_MAX_PROSPECTS)"),
    "a CSV file over the size limit": (
        {"rows": [HEADER, *([f"p{i}@example.com", "P", "Co"] for i in range(100))]},
        replace(BOUNDS, file_bytes=1000),
        "campaign.yaml: prospects.csv: the file is 2216 bytes, over the limit of 1000"
        " (OUTREACH_MAX_INPUT_FILE_BYTES)"),
    "a YAML file over the size limit": (
        {}, replace(BOUNDS, file_bytes=100),
        "campaign.yaml: the file is 167 bytes, over the limit of 100 (OUTREACH_MAX_INPUT_FILE_BYTES)"),
    "a sandbox escape in the body": (
        {"body": "{{ ''.__class__.__mro__ }}"}, BOUNDS,
        "campaign.yaml: steps[1].body (line 6): template error on its line 1: '__mro__' is not"
        " allowed (templates may not reach Python internals)"),
    "a sandbox escape built at render time": (
        {"body": "{% set a = '_' ~ '_class_' ~ '_' %}{{ first_name|attr(a) }}"}, BOUNDS,
        f"{CSV_ROW2}: step 1 body: cannot render: access to attribute '__class__' of 'str'"
        " object is unsafe."),
    "a body that would render a gigabyte": (
        {"body": "{{ 'x' * 10**9 }}"}, BOUNDS,
        f"{CSV_ROW2}: step 1 body: cannot render: '*' would build more than 1000000 items"),
}


@pytest.fixture
async def seeded(db: asyncpg.Pool, inbox: LocalSmtpServer) -> asyncpg.Pool:
    """One mailbox and one campaign already there, so "unchanged" is not "empty"."""
    await add_mailbox(db, "mb", inbox.port)
    await add_campaign(db, ["mb"], ["earlier@example.com"], [("Hi", "Body", 0)])
    return db


@pytest.mark.parametrize("case", list(CASES))
async def test_a_bad_campaign_is_refused_at_import_naming_where_and_nothing_is_written(
    case: str, seeded: asyncpg.Pool, tmp_path: Path,
) -> None:
    arguments, bounds, expected = CASES[case]
    path = write_campaign(tmp_path, **{"rows": [HEADER, GOOD], **arguments})
    before = await snapshot(seeded)
    with pytest.raises(SpecError) as refused:
        await create_campaign(seeded, load_campaign_file(path, bounds))
    message = str(refused.value).replace(str(tmp_path) + "/", "")
    assert expected in message.splitlines()[0], message
    assert await snapshot(seeded) == before


async def test_refused_imports_leave_nothing_to_send(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient, tmp_path: Path,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    for n, (arguments, bounds, _) in enumerate(CASES.values()):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        with pytest.raises(SpecError):
            path = write_campaign(folder, **{"rows": [HEADER, GOOD], **arguments})
            await create_campaign(db, load_campaign_file(path, bounds))
    control = tmp_path / "control"
    control.mkdir()
    await create_campaign(db, load_campaign_file(write_campaign(control, [HEADER, GOOD]), BOUNDS))

    # Whatever campaign is in the database goes out: only the control's one message.
    for campaign_id in [r["id"] for r in await db.fetch("SELECT id FROM campaigns")]:
        await client.start_campaign(campaign_id)
        await until_completed(client, campaign_id)
    assert [m.rcpt_tos for m in inbox.messages] == [("bob@example.com",)]


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [("username", "mb\nX-Evil: 1", "must not contain a line break (CR or LF)"),
     ("email", "mb@example.com\r\nBcc: victim@example.com", "must not contain a line break"),
     ("email", "mb@example.com>x@evil.example", "not a valid address"),
     ("smtp_host", "smtp.example.com\r\nRSET", "must not contain a line break")],
)
async def test_a_bad_mailbox_is_refused_at_import_naming_its_field(
    field: str, value: str, rule: str, seeded: asyncpg.Pool, tmp_path: Path,
) -> None:
    spec = {"id": "mb2", "email": "mb2@example.com", "smtp_host": "smtp.example.com",
            "password": "pw", field: value}
    path = tmp_path / "mailboxes.yaml"
    path.write_text("- " + "\n  ".join(f"{k}: {json.dumps(v)}" for k, v in spec.items()) + "\n")
    before = await snapshot(seeded)
    where = rf"mailboxes\.yaml: mailboxes\[1\]\.{field} \(line \d\): "
    with pytest.raises(SpecError, match=where + re.escape(rule)):
        load_mailboxes_file(path)
    assert await snapshot(seeded) == before


def test_the_sandbox_refuses_what_the_static_check_cannot_see() -> None:
    # The import refuses a dunder it can read; one assembled at render time meets the sandbox.
    with pytest.raises(ValueError, match="unsafe"):
        render("{{ (x ~ '')|attr('_' ~ '_class_' ~ '_') }}", {"x": "bob"})
    assert render("{{ 'ab' * 3 }} {{ 2 ** 10 }}", {}) == "ababab 1024"


# -- below import: the transport never hands the SMTP library a bad address ----------------


TRUNCATED = ["a@example.com>x@evil.example", "<a@example.com> b"]


async def test_aiosmtplib_alone_would_deliver_a_truncated_address(inbox: LocalSmtpServer) -> None:
    # Why the addresses are validated before aiosmtplib sees them.
    for address in TRUNCATED:
        await aiosmtplib.send(b"Subject: x\r\n\r\nx\r\n", sender="s@example.com",
                              recipients=[address], hostname="127.0.0.1", port=inbox.port)
    assert [m.rcpt_tos for m in inbox.messages] == [("a@example.com",), ("a@example.com",)]


@pytest.mark.parametrize("address", [*TRUNCATED, "a b@example.com", "a@b@example.com",
                                     "a\r@example.com", '"a\r\nb"@example.com'])
async def test_the_transport_refuses_a_bad_address_before_connecting(
    address: str, inbox: LocalSmtpServer
) -> None:
    transport = MailTransport(SmtpTimeouts(2, 2, 2), local_hostname="client.example.com")

    async def before_data() -> None:
        raise AssertionError("DATA must never be reached")

    account = SmtpAccount("mb", "127.0.0.1", inbox.port, "none", "mb", "secret")
    for sender, recipient in ((address, "bob@example.com"), ("mb@example.com", address)):
        with pytest.raises(InvalidMessage, match="address"):
            await transport.send(account, sender, recipient, b"Subject: x\r\n\r\nx\r\n",
                                 before_data=before_data)
    await transport.close()
    assert inbox.connections_opened == 0 and inbox.messages == []


# -- past import: values changed in the database are refused when the message is built ------


async def until_completed(client: OutreachClient, campaign_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (status := await client.campaign_status(campaign_id))["state"] != "completed":
        assert time.monotonic() < deadline, f"campaign still {status}"
        await asyncio.sleep(0.2)
    return status


async def test_values_injected_after_import_are_refused_at_build_and_never_sent(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, client: OutreachClient,
) -> None:
    await add_mailbox(db, "mb", inbox.port)
    emails = ["ok@example.com", "crlf@example.com", "long@example.com", "addr@example.com"]
    campaign_id, [ok, crlf, long, addr] = await add_campaign(
        db, ["mb"], emails, [("Hello {{ first_name }}", "Hi {{ first_name }}", 0)])
    # What an import would have refused, written straight to the database.
    set_first_name = "UPDATE prospects SET fields = jsonb_build_object('first_name', $2::text) WHERE id = $1"
    await db.execute(set_first_name, crlf, "Bob" + BCC)
    await db.execute(set_first_name, long, "x" * 1000)
    await db.execute("UPDATE prospects SET email = $2 WHERE id = $1", addr,
                     "a@example.com>x@evil.example")

    await client.start_campaign(campaign_id)
    status = await until_completed(client, campaign_id)

    assert [m.rcpt_tos for m in inbox.messages] == [("ok@example.com",)]
    assert (status["steps"][0]["sent"], status["steps"][0]["failed"]) == (1, 3)
    reasons = {pid: (await send_row(db, campaign_id, 1, pid))["last_reply"] for pid in (crlf, long, addr)}
    assert reasons[crlf] == "message not built: subject contains CR, LF or NUL"
    assert reasons[long] == "message not built: subject is 1006 characters, over 998"
    assert reasons[addr].startswith("message not built: to_address: invalid address"
                                    " 'a@example.com>x@evil.example'")
    assert (await send_row(db, campaign_id, 1, ok))["state"] == "sent"
    assert all("evil" not in "".join(m.rcpt_tos) for m in inbox.messages)
