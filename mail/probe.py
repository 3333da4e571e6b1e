"""A health probe of a mailbox's SMTP account: connect, TLS, EHLO, authenticate, QUIT.

Nothing is sent. The probe logs in exactly as a send does (`MailTransport.probe`),
so it can never accept what a send refuses: STARTTLS required, certificates and
host names verified. Errors are those of `mail.errors`: `SmtpRejected` (stage
"auth" for a refused login), `SmtpConnectionFailed` / `SmtpTimeout`, and
`SmtpConfigError` when the account cannot be used safely (TLS failures included).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace

from mail.transport import MailTransport, SmtpAccount, SmtpTimeouts

TokenSource = Callable[[], Awaitable[str]]


async def probe_account(
    account: SmtpAccount,
    timeouts: SmtpTimeouts,
    tls_context: ssl.SSLContext | None = None,
    oauth_token: TokenSource | None = None,
) -> None:
    """Log in to the account's server and quit; XOAUTH2 when ``oauth_token`` is given."""
    if oauth_token is not None:
        account = replace(account, password=None, oauth_token=await oauth_token())
    await MailTransport(timeouts, tls_context=tls_context).probe(account)
