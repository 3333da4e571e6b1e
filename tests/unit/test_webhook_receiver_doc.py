"""The receiver the README documents (issue 25) accepts a signed batch once per event id
and refuses a wrong signature: the code in the README is run as written, on loopback."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inbox.webhook import signature

README = Path(__file__).resolve().parents[2] / "README.md"
SERVE = 'HTTPServer(("", 8080), Hook).serve_forever()'


@pytest.fixture
def documented() -> Iterator[tuple[str, dict[str, Any]]]:
    text = README.read_text("utf-8")
    code = re.search(r"A receiver in a few lines of Python.*?```python\n(.*?)```", text, re.S)
    assert code is not None and SERVE in code.group(1)
    namespace: dict[str, Any] = {}
    exec(code.group(1).replace(SERVE, 'server = HTTPServer(("127.0.0.1", 0), Hook)'), namespace)  # noqa: S102
    server = namespace["server"]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", namespace
    server.shutdown()
    server.server_close()


def post(url: str, body: bytes, signed: str, stamp: str) -> int:
    request = urllib.request.Request(url, data=body, headers={
        "X-Outreach-Timestamp": stamp, "X-Outreach-Signature": signed, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_documented_receiver_checks_the_signature_and_deduplicates(
        documented: tuple[str, dict[str, Any]]) -> None:
    url, namespace = documented
    secret = namespace["SECRET"].decode()
    body = json.dumps({"events": [{"id": "sent:c:1:2", "type": "sent", "prospect_id": 2}]}).encode()
    stamp = str(int(time.time()))
    assert post(url, body, signature(secret, stamp, body), stamp) == 204
    assert post(url, body, signature(secret, stamp, body), stamp) == 204  # again: seen once
    assert namespace["seen"] == {"sent:c:1:2"}
    assert post(url, body, signature("another secret", stamp, body), stamp) == 401
    old = str(int(time.time()) - 3600)
    assert post(url, body, signature(secret, old, body), old) == 401
