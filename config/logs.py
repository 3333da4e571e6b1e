"""structlog, configured once per process.

JSON when stderr is not a TTY (production, CI), readable console lines on a
TTY. Standard-library records (Temporal's own loggers, asyncio) go through
the same processors, so every line has one shape. Values under a secret's
key (password, token, secret, body, ...) never reach the output, and on a TTY
no control character in a value (a remote reply) reaches the terminal.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

from config.terminal import printable

REDACTED = "[redacted]"
_SECRET_PARTS = ("password", "passwd", "token", "secret", "authorization", "api_key", "credential")
_SECRET_KEYS = frozenset({"body", "message_body", "html", "text_body", "raw_message"})


def is_secret_key(key: str) -> bool:
    k = key.lower()
    return k in _SECRET_KEYS or any(part in k for part in _SECRET_PARTS)


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the value of every secret-looking key (one level into dicts too)."""
    for key, value in event_dict.items():
        if is_secret_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, dict):
            event_dict[key] = {k: REDACTED if is_secret_key(str(k)) else v for k, v in value.items()}
    return event_dict


# "scheme:", then after "//" the authority (userinfo@host:port) up to the path, then the
# path; the query and fragment, which are dropped, follow it.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?://(?P<authority>[^/?#]*))?(?P<path>[^?#]*)")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")  # ends where prose resumes
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]+)?")


def redact_url(url: str) -> str:
    """``url`` as it may be shown in an error or a log: scheme, host (and port) and path;
    userinfo, query and fragment dropped, since tokens live there. A host that is not
    one (a malformed URL) is not shown either: it may be half of a password."""
    found = _URL.match(url.strip())
    if found is None:
        return "[not a URL]"
    scheme, authority, path = found.group("scheme", "authority", "path")
    if authority is None:
        return f"{scheme}:{path}"
    host = authority.rpartition("@")[2]
    if not _HOST.fullmatch(host):  # the path too may hold the rest of a password
        return f"{scheme}://[malformed host]"
    return f"{scheme}://{host}{path}"


def redact_urls(text: str) -> str:
    """``text`` (an exception's message, say) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda found: redact_url(found.group()), text)


_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    redact_secrets,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def inert_text(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """On a terminal: a logged reply or error cannot drive it (config/terminal.py). JSON
    lines escape control characters themselves."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = printable(value, keep_lines=True)
    return event_dict


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    on_terminal: list[structlog.types.Processor] = [] if as_json else [inert_text]
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                *on_terminal,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
