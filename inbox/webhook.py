"""Telling other systems: inbound events POSTed to OUTREACH_WEBHOOK_URL, signed.

Body: ``{"events": [{"id", "class", "verdict", "mailbox_id", "campaign_id", "step",
"prospect_id", "recorded_at"}, ...]}`` (ids, class and time; no address or
content). Headers: ``X-Outreach-Timestamp`` (Unix seconds) and
``X-Outreach-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with
OUTREACH_WEBHOOK_SECRET>``; a receiver recomputes it and refuses old timestamps.
Delivery is at least once: a batch is marked delivered only after a 2xx, so a
receiver deduplicates by event ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import aiohttp


class WebhookRefused(Exception):
    """The receiver did not answer 2xx (or could not be reached): retried later."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


async def post_events(url: str, secret: str, events: list[dict[str, object]], seconds: float = 10.0) -> None:
    body = json.dumps({"events": events}, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Outreach-Timestamp": timestamp,
               "X-Outreach-Signature": signature(secret, timestamp, body)}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session, \
                session.post(url, data=body, headers=headers) as response:
            if not 200 <= response.status < 300:
                raise WebhookRefused(f"webhook answered {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WebhookRefused(f"webhook unreachable: {exc or type(exc).__name__}") from exc
