"""Errors of building and sending mail.

```
MailError
├── InvalidMessage (ValueError)        the mail can't be built from this data: never retry
│   ├── HeaderInjection                CR, LF or NUL in a value bound for a header
│   └── InvalidAddress                 not a valid email address
└── SmtpError
    ├── SmtpConfigError (ValueError)   the account can't be used safely as configured
    │                                  (plaintext to a remote host, no STARTTLS, no AUTH,
    │                                  certificate not trusted): pause the mailbox
    ├── SmtpHostBusy                   no connection slot free for the host now; nothing sent
    ├── SmtpRejected                   the server answered with a refusal; .reply, .stage
    ├── SmtpConnectionFailed (ConnectionError)
    │   │                              no answer before DATA began: safe to retry
    │   └── SmtpTimeout (TimeoutError) ... because a connect, greeting or reply timed out
    └── SmtpOutcomeUnknown             lost after DATA began: the server may hold the
                                       message; never resend
```

`SmtpOutcomeUnknown` deliberately inherits no builtin: code that retries any
`ConnectionError` or `TimeoutError` must not catch it and send twice.
"""

from __future__ import annotations

from typing import Literal

from mail.replies import ReplyClass, SmtpReply

SmtpStage = Literal["connect", "auth", "mail", "rcpt", "data"]


class MailError(Exception):
    pass


class InvalidMessage(MailError, ValueError):
    pass


class HeaderInjection(InvalidMessage):
    pass


class InvalidAddress(InvalidMessage):
    pass


class SmtpError(MailError):
    pass


class SmtpConfigError(SmtpError, ValueError):
    pass


class SmtpHostBusy(SmtpError):
    """Every connection slot of the host is taken (limits); nothing was sent."""


class SmtpRejected(SmtpError):
    def __init__(self, reply: SmtpReply, stage: SmtpStage) -> None:
        super().__init__(f"{stage}: {reply.code} {reply.text}")
        self.reply = reply
        self.stage: SmtpStage = stage

    @property
    def reply_class(self) -> ReplyClass:
        return self.reply.reply_class


class SmtpConnectionFailed(SmtpError, ConnectionError):
    pass


class SmtpTimeout(SmtpConnectionFailed, TimeoutError):
    pass


class SmtpOutcomeUnknown(SmtpError):
    pass
