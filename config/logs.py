"""structlog, configured once per process.

JSON when stderr is not a TTY (production, CI), readable console lines on a
TTY. Standard-library records (Temporal's own loggers, asyncio) go through
the same processors, so every line has one shape. Values under a secret's
key (password, token, secret, body, ...) never reach the output.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, WrappedLogger

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


_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    redact_secrets,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
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
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
