"""A mailbox's OAuth2 access token, refreshed shortly before it expires.

Shared by the send activity and the health check, so both use (and store)
the same token; the refresh token itself never leaves store.accounts and
mail.oauth.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from config.secrets import KeyRing
from mail.oauth import TokenEndpoint
from store import accounts

log = structlog.get_logger(__name__)
REFRESH_MARGIN = timedelta(minutes=10)  # refresh a token this long before it expires


async def access_token(
    pool: asyncpg.Pool, tokens: TokenEndpoint, mailbox_id: str, grant: accounts.OAuthGrant,
    *, ring: KeyRing,
) -> str:
    """The stored access token, or a fresh one when it expires within the margin."""
    now = datetime.now(UTC)
    if grant.access_token and grant.expires_at and grant.expires_at > now + REFRESH_MARGIN:
        return grant.access_token
    fresh = await tokens.refresh(
        grant.provider, grant.client_id, grant.client_secret, grant.refresh_token
    )
    await accounts.store_access_token(
        pool, mailbox_id, fresh.token, fresh.expires_at, fresh.refresh_token, ring=ring
    )
    log.info("oauth_token_refreshed", mailbox_id=mailbox_id, expires_at=fresh.expires_at.isoformat())
    return fresh.token
