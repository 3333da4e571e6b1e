"""OAuth2 access tokens for XOAUTH2: refreshed from a provider's token endpoint.

`TokenEndpoint` is the seam: the real `HttpTokenEndpoint` posts a
refresh_token grant to Google's or Microsoft's token URL (urllib in a thread:
no HTTP client dependency), tests give a fake. Secrets come in and go out as
arguments; nothing here logs them.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from mail.errors import MailError

TOKEN_URLS = {
    "google": "https://oauth2.googleapis.com/token",
    "microsoft": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
}
SCOPES = {
    "google": "https://mail.google.com/",
    "microsoft": "https://outlook.office.com/SMTP.Send offline_access",
}


class TokenRefreshFailed(MailError):
    """The provider refused the refresh (e.g. invalid_grant: the user revoked access)."""


@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: datetime
    refresh_token: str | None = field(default=None, repr=False)  # set when the provider rotated it


class TokenEndpoint(Protocol):
    async def refresh(
        self, provider: str, client_id: str, client_secret: str | None, refresh_token: str
    ) -> AccessToken: ...


class HttpTokenEndpoint:
    def __init__(self, timeout: float = 30.0) -> None:
        self._timeout = timeout

    async def refresh(
        self, provider: str, client_id: str, client_secret: str | None, refresh_token: str
    ) -> AccessToken:
        form = {"grant_type": "refresh_token", "client_id": client_id,
                "refresh_token": refresh_token, "scope": SCOPES[provider]}
        if client_secret:
            form["client_secret"] = client_secret
        body = await asyncio.to_thread(self._post, TOKEN_URLS[provider], form)
        return parse_token_reply(body, datetime.now(UTC))

    def _post(self, url: str, form: dict[str, str]) -> bytes:
        request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as reply:  # noqa: S310
                data: bytes = reply.read()
                return data
        except urllib.error.HTTPError as exc:
            raise TokenRefreshFailed(f"token endpoint answered {exc.code}: {_error_of(exc.read())}") from exc


def parse_token_reply(body: bytes, now: datetime) -> AccessToken:
    reply = json.loads(body)
    if "access_token" not in reply:
        raise TokenRefreshFailed(f"no access token in the reply: {_error_of(body)}")
    return AccessToken(
        token=reply["access_token"],
        expires_at=now + timedelta(seconds=int(reply.get("expires_in", 3600))),
        refresh_token=reply.get("refresh_token"),
    )


def _error_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", "unknown error"))  # never the token itself
    except (ValueError, AttributeError):
        return "unreadable reply"
