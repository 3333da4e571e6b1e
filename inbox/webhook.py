"""Telling other systems: events POSTed to OUTREACH_WEBHOOK_URL, signed.

Body: ``{"events": [{"id", "type", "occurred_at", "campaign_id", "step", "prospect_id",
"mailbox_id", "proven", ...}, ...]}`` (store/webhook_events.py: ids, type and time; no
address unless the operator opts in, never content). Headers: ``X-Outreach-Timestamp`` (Unix seconds) and
``X-Outreach-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with
OUTREACH_WEBHOOK_SECRET>``; a receiver recomputes it and refuses old timestamps.
Delivery is at least once: a batch is marked delivered only after a 2xx, so a
receiver deduplicates by event ``id``.

Redirects are not followed (docs/decisions/0047): a 301 or 302 would turn the POST
into a GET whose landing page answers 200, and the batch would count as delivered;
a 307 would post the body and its signature to whatever host the answer names. A
3xx is a failure like any other, retried. No error shows the URL whole: its query
may hold a token, so errors show scheme, host and path only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

import aiohttp

from config.logs import redact_url, redact_urls

SECRET_SETTING = "OUTREACH_WEBHOOK_SECRET"


class WebhookRefused(Exception):
    """The receiver did not answer 2xx (or could not be reached): retried later."""


class WebhookMisconfigured(WebhookRefused):
    """No secret, or a URL that is not one: retrying cannot help."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def check_config(url: str, secret: str) -> None:
    """WebhookMisconfigured unless ``url`` is an http(s) URL with a host and ``secret``
    is set: an HMAC under an empty key is one anyone can compute."""
    if not secret.strip():
        raise WebhookMisconfigured(
            f"OUTREACH_WEBHOOK_URL is set but {SECRET_SETTING} is empty: the events' signature would"
            f" be one anyone can compute. Set {SECRET_SETTING} to a long random value (for example"
            " `openssl rand -hex 32`) that the receiver checks, or unset OUTREACH_WEBHOOK_URL."
        )
    try:
        parts = urlsplit(url.strip())
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # e.g. a port over 65535, an unclosed [IPv6
        usable = False
    if not usable:
        raise WebhookMisconfigured(
            f"OUTREACH_WEBHOOK_URL ({redact_url(url)}) is not an http(s) URL with a host")


async def post_events(url: str, secret: str, events: list[dict[str, object]], seconds: float = 10.0) -> None:
    check_config(url, secret)
    body = json.dumps({"events": events}, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Outreach-Timestamp": timestamp,
               "X-Outreach-Signature": signature(secret, timestamp, body)}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session, \
                session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        # "from None": the cause's message may hold the whole URL, and Temporal records causes.
        reason = redact_urls(str(exc).replace(url, redact_url(url))) or type(exc).__name__
        raise WebhookRefused(f"webhook {redact_url(url)} unreachable: {reason}") from None
    if 300 <= status < 400:  # never followed: see the module's docstring
        raise WebhookRefused(f"webhook {redact_url(url)} answered {status}, a redirect: not followed"
                             " (set OUTREACH_WEBHOOK_URL to the address that answers 2xx)")
    if not 200 <= status < 300:
        raise WebhookRefused(f"webhook {redact_url(url)} answered {status}")
