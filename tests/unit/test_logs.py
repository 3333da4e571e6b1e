"""Logging set-up: one shape for structlog and stdlib (Temporal's) records, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from config.logs import REDACTED, configure_logging, redact_secrets


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", json=True)
    out = io.StringIO()
    assert isinstance(root.handlers[0], logging.StreamHandler)
    root.handlers[0].setStream(out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_temporal_stdlib_records_come_out_as_json_with_the_bound_ids(
    json_logging: io.StringIO,
) -> None:
    structlog.contextvars.bind_contextvars(campaign_id="cmp-1", mailbox_id="mb-1")
    logging.getLogger("temporalio.worker._activity").warning("Completing activity failed")
    (line,) = lines(json_logging)
    assert line["logger"] == "temporalio.worker._activity"
    assert line["event"] == "Completing activity failed"
    assert (line["campaign_id"], line["mailbox_id"], line["level"]) == ("cmp-1", "mb-1", "warning")


def test_secrets_and_bodies_never_reach_the_output(
    json_logging: io.StringIO,
) -> None:
    structlog.get_logger("t").info(
        "connecting", password="hunter2", access_token="ya29.tok", client_secret="s3",
        body="Dear prospect", headers={"Authorization": "Bearer x", "Subject": "Hi"}, mailbox_id="mb",
    )
    (line,) = lines(json_logging)
    for key in ("password", "access_token", "client_secret", "body"):
        assert line[key] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED, "Subject": "Hi"}
    assert line["mailbox_id"] == "mb"
    for secret in ("hunter2", "ya29.tok", "s3", "Dear prospect", "Bearer x"):
        assert secret not in json.dumps(line)


def test_redaction_keeps_ids_and_outcomes() -> None:
    event = redact_secrets(None, "info", {"event": "send_accepted", "send_id": "c:1:2", "code": 250})
    assert event == {"event": "send_accepted", "send_id": "c:1:2", "code": 250}
