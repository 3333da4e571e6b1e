"""Unsubscribe tokens and the List-Unsubscribe header (RFC 2369, RFC 8058; docs/decisions/0030).

A token names one send, ``(workspace, campaign, step, prospect)``, and the key
id of the secret key ring entry that signed it, followed by a 128-bit
HMAC-SHA256 tag; all of it base64url, so it travels in a URL path and in a
mailto subject unchanged. It never holds an address: the prospect row has it.
The HMAC key is derived from the ring's key for its own purpose, so the AES key
that seals credentials and payloads is never used for anything else.

``verify`` is the one way in: the unsubscribe server and the inbox reader
(``token_in_subject`` for a mailto reply) call it on whatever text they got.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

from config.secrets import KeyRing

VERSION = "u1"
TAG_BYTES = 16
# A token is about 80 characters; anything much longer is not one (and is not decoded).
MAX_TOKEN_CHARS = 400
_PURPOSE = b"outreach:unsubscribe-token:v1"
_SEP = "\x1f"
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# "unsubscribe TOKEN", as the mailto form's subject asks; a reply may prefix "Re: ".
_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]{20,400})\b", re.IGNORECASE)


class BadToken(ValueError):
    """Not a token this installation signed with a key it still holds. The reason is
    for the log, never for the person who sent it."""


@dataclass(frozen=True)
class SendKey:
    """What an unsubscribe acts on: the prospect of a campaign, in its workspace."""

    workspace_id: str
    campaign_id: str
    step: int
    prospect_id: int


def _hmac_key(key: bytes) -> bytes:
    return hmac.new(key, _PURPOSE, hashlib.sha256).digest()


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(_hmac_key(key), body, hashlib.sha256).digest()[:TAG_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(ring: KeyRing, send: SendKey) -> str:
    """The token of ``send`` under the ring's newest key; the same send always gets
    the same token while that key is the newest (every attempt sends one message)."""
    for value in (send.workspace_id, send.campaign_id):
        if not _ID.fullmatch(value):
            raise ValueError(f"{value!r} cannot be put in an unsubscribe token")
    key_id, key = ring.keys[0]
    body = _SEP.join([VERSION, key_id, send.workspace_id, send.campaign_id, str(send.step),
                      str(send.prospect_id)]).encode("ascii")
    return _b64(body + _tag(key, body))


def verify(ring: KeyRing, token: str) -> SendKey:
    """The send a token names, if a key of the ring signed it; BadToken otherwise."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise BadToken("not a token's characters or length")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("not base64url") from None
    if _b64(raw) != token:  # one spelling per token: no second form with other padding bits
        raise BadToken("not canonical base64url")
    body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    parts = body.decode("ascii", "replace").split(_SEP)
    if len(parts) != 6 or parts[0] != VERSION:
        raise BadToken("not a version 1 token")
    _, key_id, workspace_id, campaign_id, step, prospect_id = parts
    key = dict(ring.keys).get(key_id)
    if key is None:
        raise BadToken(f"key id {key_id[:40]!r} is not in the ring")
    if not hmac.compare_digest(_tag(key, body), tag):
        raise BadToken("the tag does not match")
    # Signed by us, so well formed; checked anyway rather than trusted into SQL types.
    if not (step.isdigit() and prospect_id.isdigit() and _ID.fullmatch(workspace_id)
            and _ID.fullmatch(campaign_id)):
        raise BadToken("malformed fields")
    return SendKey(workspace_id, campaign_id, int(step), int(prospect_id))


def token_in_subject(subject: str) -> str | None:
    """The token of an ``unsubscribe TOKEN`` subject (the mailto form), if it has one;
    ``verify`` it before acting."""
    found = _SUBJECT.search(subject)
    return found.group(1) if found else None


def unsubscribe_url(base_url: str, token: str) -> str:
    """The one-click address of a token: ``BASE/u/TOKEN``."""
    return f"{base_url.rstrip('/')}/u/{token}"


def mailto_url(mailbox: str, token: str) -> str:
    """``mailto:MAILBOX?subject=unsubscribe%20TOKEN`` (the inbox reader acts on it)."""
    return f"mailto:{mailbox}?subject={quote('unsubscribe ' + token)}"


def with_footer(body: str, link: str) -> str:
    """The body with a last line offering ``link`` (``unsubscribe: header_and_footer``)."""
    return f"{body.rstrip()}\n\n--\nTo stop receiving these emails: {link}\n"
