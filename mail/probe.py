"""A health probe of a mailbox's SMTP account: connect, TLS, EHLO, authenticate, QUIT.

Nothing is sent. aiosmtplib's ``connect()`` does TLS (implicit or required
STARTTLS), EHLO and the login, with a password or XOAUTH2 through its
``oauth_token_generator``. Errors are those of `mail.errors`: `SmtpRejected`
(stage "auth" for a refused login), `SmtpConnectionFailed` / `SmtpTimeout`,
and `SmtpConfigError` when the account cannot be used safely.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiosmtplib

from mail.errors import SmtpConfigError, SmtpConnectionFailed, SmtpRejected, SmtpTimeout
from mail.replies import SmtpReply
from mail.transport import SmtpAccount, SmtpTimeouts, check_security

TokenSource = Callable[[], Awaitable[str]]


async def probe_account(
    account: SmtpAccount,
    timeouts: SmtpTimeouts,
    tls_context: ssl.SSLContext | None = None,
    oauth_token: TokenSource | None = None,
) -> None:
    """Log in to the account's server and quit; XOAUTH2 when ``oauth_token`` is given."""
    check_security(account)
    credentials: dict[str, Any] = {}
    if account.username is not None:
        credentials["username"] = account.username
        if oauth_token is not None:
            credentials["oauth_token_generator"] = oauth_token
        else:
            credentials["password"] = account.password or ""
    smtp = aiosmtplib.SMTP(
        hostname=account.host, port=account.port, timeout=timeouts.connect,
        use_tls=account.security == "tls", start_tls=account.security == "starttls",
        tls_context=tls_context or ssl.create_default_context(), **credentials,
    )
    try:
        await smtp.connect()
        await smtp.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SmtpRejected(SmtpReply(exc.code, exc.message), "auth") from exc
    except aiosmtplib.SMTPException as exc:
        raise _translate(exc) from exc
    except OSError as exc:
        raise SmtpConnectionFailed(f"connect: {exc}") from exc
    finally:
        smtp.close()


def _translate(exc: aiosmtplib.SMTPException) -> Exception:
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return SmtpTimeout(f"timed out: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400:
        return SmtpRejected(SmtpReply(exc.code, exc.message), "connect")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return SmtpConnectionFailed(str(exc))
    # e.g. "SMTP AUTH extension not supported", "STARTTLS not supported", bad certificate
    return SmtpConfigError(str(exc))
