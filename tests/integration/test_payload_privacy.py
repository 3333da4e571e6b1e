"""Nothing private in Temporal's storage: a finished campaign's every history, as
the `temporal` CLI dumps it straight from the server, holds no prospect address,
subject, template value, password or SMTP reply text; decoded through the codec
server, the same histories give back what they carry (the replies, which echo
addresses), so the dumps were searched where the values would be."""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from client.api import OutreachClient
from client.codec_server import build_app, serving
from config.converter import payload_encryption
from config.names import campaign_workflow_id, mailbox_workflow_id, send_retry_workflow_id, step_workflow_id
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests.factories import add_campaign, add_mailbox, sealed_password
from tests.integration.conftest import temporal_address
from tests.integration.test_campaign_e2e import wait_for_state

TEMPORAL = str(Path(sys.executable).parent / "temporal")
ADDRESSES = ["zq7-priv-ok@example.com", "zq7-priv-soft@example.com", "zq7-priv-hard@example.com"]
SENDER = "zq7-priv-sender@example.com"
SUBJECT = "Zq7 quarterly plans for"
FIELD_VALUE = "Zq7Zorblatt"
PASSWORD = "zq7-Mailbox-Passw0rd"
SOFT_REPLY = f"4.2.1 {ADDRESSES[1]} mailbox zq7-busy, try again later"
HARD_REPLY = f"5.1.1 {ADDRESSES[2]} zq7-nosuchuser here"
# Never a payload at all: an activity reads them from PostgreSQL by id.
NEVER_CARRIED = [ADDRESSES[0], SENDER, SUBJECT, FIELD_VALUE, PASSWORD]
CARRIED = [SOFT_REPLY, HARD_REPLY, ADDRESSES[1], ADDRESSES[2]]


def json_body(value: object) -> io.BytesIO:
    # A stream, not bytes: aiohttp warns (an error here) about a large body given as
    # bytes, and a history's payloads can be large.
    return io.BytesIO(json.dumps(value).encode())


async def temporal_cli(address: str, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL, *args, "--address", address, "--namespace", "default", "--output", "json",
        "--disable-config-env", "--disable-config-file",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys included, and what each decodes to as base64
    (the CLI prints payload bytes as base64: plaintext JSON would hide there)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value
        try:
            yield base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            pass


def found(document: Any, needles: list[str]) -> set[str]:
    haystack = "\n".join(strings(document)).lower()
    return {n for n in needles if n.lower() in haystack}


# What core keeps of a local activity in its marker, outside the codec.
_LOCAL_ACTIVITY_BOOKKEEPING = {"seq", "attempt", "activity_id", "activity_type", "complete_time",
                               "backoff", "original_schedule_time", "activation_index"}


def payloads(value: Any, search_attributes: bool = False) -> Iterator[dict[str, Any]]:
    """The payload messages in a dump (objects with metadata and data): those of search
    attributes (which the codec never sees: the server indexes them) or all the others."""
    if isinstance(value, dict):
        if value.get("markerName") == "core_patch":
            # A workflow.patched() marker: the SDK's core writes it, never through the
            # codec, and it holds the patch's name only (checked in the test).
            return
        if value.get("markerName") == "core_local_activity":
            # A local activity's marker (the gate): core writes its bookkeeping ("data":
            # sequence, attempt, activity type, times; checked in the test) without the
            # codec; the activity's result goes through it like any payload.
            details = {k: v for k, v in value.get("details", {}).items() if k != "data"}
            yield from payloads(details, search_attributes)
            return
        if isinstance(value.get("metadata"), dict) and "data" in value:
            if not search_attributes:
                yield value
            return
        for k, v in value.items():
            if k == "searchAttributes":
                if search_attributes:
                    yield from payloads(v)
            else:
                yield from payloads(v, search_attributes)
    elif isinstance(value, list):
        for v in value:
            yield from payloads(v, search_attributes)


def patch_markers(
    value: Any, name: str = "core_patch", detail: str | None = None
) -> Iterator[dict[str, Any]]:
    """The payloads of workflow.patched() markers in a dump (or of another marker,
    only its ``detail`` if given)."""
    if isinstance(value, dict):
        if value.get("markerName") == name:
            details = value.get("details", {})
            yield from _all_payloads(details if detail is None else details.get(detail, {}))
            return
        for v in value.values():
            yield from patch_markers(v, name, detail)
    elif isinstance(value, list):
        for v in value:
            yield from patch_markers(v, name, detail)


def _all_payloads(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if isinstance(value.get("metadata"), dict) and "data" in value:
            yield value
            return
        for v in value.values():
            yield from _all_payloads(v)
    elif isinstance(value, list):
        for v in value:
            yield from _all_payloads(v)


def encoding(payload: dict[str, Any]) -> bytes:
    return base64.b64decode(payload["metadata"].get("encoding", ""))


@pytest.fixture
async def codec_url(e2e_settings: Settings) -> AsyncIterator[str]:
    app = build_app(payload_encryption(e2e_settings), ["http://127.0.0.1:8233"], token=None)
    async with serving(app, "127.0.0.1", 0) as url:
        yield url


async def finished_campaign(db: asyncpg.Pool, inbox: LocalSmtpServer, settings: Settings) -> str:
    await add_mailbox(db, "mb-priv", inbox.port, email=SENDER)
    await db.execute("UPDATE mailboxes SET password = $1 WHERE id = 'mb-priv'",
                     sealed_password("mb-priv", PASSWORD))
    inbox.script(ADDRESSES[1], replies=[(450, SOFT_REPLY)])  # once, then accepted on the retry
    inbox.script(ADDRESSES[2], replies=[(550, HARD_REPLY)])
    campaign_id, _ = await add_campaign(
        db, ["mb-priv"], ADDRESSES, [(SUBJECT + " {{ first_name }}", "Hello {{ first_name }}", 0)]
    )
    await db.execute("UPDATE prospects SET fields = $1 WHERE campaign_id = $2",
                     {"first_name": FIELD_VALUE}, campaign_id)
    client = await OutreachClient.connect(settings)
    try:
        await client.start_campaign(campaign_id)
        status = await wait_for_state(client, campaign_id, "completed", timeout=60)
    finally:
        await client.close()
    assert status["steps"][0]["sent"] == 2 and status["steps"][0]["hard_bounced"] == 1, status
    # The values were really used: the subject and field reached the SMTP server.
    [delivered] = inbox.messages_to(ADDRESSES[0])
    assert delivered.subject == f"{SUBJECT} {FIELD_VALUE}"
    return campaign_id


async def test_temporal_stores_no_address_subject_field_password_or_reply_in_the_clear(
    db: asyncpg.Pool, inbox: LocalSmtpServer, worker: None, dev_server: WorkflowEnvironment,
    e2e_settings: Settings, codec_url: str,
) -> None:
    # A soft bounce is retried within the test, in a retry workflow of its own (decision
    # 0049): its reply lands in the send's result, its retry workflow among the histories.
    settings = e2e_settings.model_copy(update={"send_first_retry_seconds": 0.5})
    campaign_id = await finished_campaign(db, inbox, settings)
    address = temporal_address(dev_server)
    prefix = settings.task_queue
    soft = await db.fetchval("SELECT id FROM prospects WHERE campaign_id = $1 AND email = $2",
                             campaign_id, ADDRESSES[1])
    expected = {campaign_workflow_id(prefix, campaign_id), step_workflow_id(prefix, campaign_id, 1),
                mailbox_workflow_id(prefix, "mb-priv"), send_retry_workflow_id(prefix, campaign_id, 1, soft)}

    deadline = time.monotonic() + 20
    while True:  # visibility lags the histories a little
        listed = await temporal_cli(address, "workflow", "list")
        # This test's runs only: other tests share the dev server, and theirs are theirs.
        runs = {(wf["execution"]["workflowId"], wf["execution"]["runId"]) for wf in listed
                if wf["execution"]["workflowId"].startswith(f"{prefix}-")}
        if expected <= {wid for wid, _ in runs} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert expected <= {wid for wid, _ in runs}

    dumps = [
        {"history": await temporal_cli(address, "workflow", "show", "-w", wid, "-r", rid),
         "describe": await temporal_cli(address, "workflow", "describe", "-w", wid, "-r", rid)}
        for wid, rid in sorted(runs)
    ]
    assert found(dumps, NEVER_CARRIED + CARRIED) == set()

    # Every payload is sealed, failures' messages included, except search attributes: ids only.
    sealed = [p for d in dumps for p in payloads(d)]
    assert sealed and {encoding(p) for p in sealed} == {b"binary/encrypted"}
    patches = [p for d in dumps for p in patch_markers(d)]
    assert patches and all(set(json.loads(base64.b64decode(p["data"]))) <= {"id", "deprecated"}
                           for p in patches)
    gates = [json.loads(base64.b64decode(p["data"]))
             for d in dumps for p in patch_markers(d, "core_local_activity", "data")]
    assert gates and all(set(g) <= _LOCAL_ACTIVITY_BOOKKEEPING and g["activity_type"] == "gate_send"
                         for g in gates), [sorted(g) for g in gates]
    # A failure over the server's size limit would lose its reply text.
    assert "Failure exceeds size limit" not in json.dumps(dumps)
    indexed = [base64.b64decode(p["data"]).decode() for d in dumps for p in payloads(d, True)]
    assert any(campaign_id in v for v in indexed) and not any("@" in v for v in indexed), indexed

    # The same histories' payloads, decoded by the codec server as the Web UI would have it.
    async with aiohttp.ClientSession() as http, http.post(
        f"{codec_url}/default/decode", data=json_body({"payloads": sealed}),
        headers={"X-Namespace": "default", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 200, await response.text()
        decoded = await response.json()
    assert len(decoded["payloads"]) == len(sealed)
    assert found(decoded, CARRIED) == set(CARRIED)
    assert found(decoded, NEVER_CARRIED) == set()
    # Summaries (user metadata) go through the codec too, and name ids only.
    summaries = [p for d in dumps for e in d["history"]["events"]
                 for p in payloads(e.get("userMetadata", {}))]
    assert summaries
    async with aiohttp.ClientSession() as http, http.post(
        f"{codec_url}/decode", data=json_body({"payloads": summaries}),
        headers={"Content-Type": "application/json"},
    ) as response:
        texts = [base64.b64decode(p["data"]).decode() for p in (await response.json())["payloads"]]
    assert any(t.startswith('"send ') for t in texts) and not any("@" in t for t in texts), texts

    # And the CLI itself reads the soft bounce's reply through the codec server.
    step = step_workflow_id(prefix, campaign_id, 1)
    step_runs = [rid for wid, rid in runs if wid == step]
    shown = [await temporal_cli(address, "workflow", "show", "-w", step, "-r", rid,
                                "--codec-endpoint", codec_url) for rid in step_runs]
    assert found(shown, [SOFT_REPLY, HARD_REPLY]) == {SOFT_REPLY, HARD_REPLY}
