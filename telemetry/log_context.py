"""Every activity's log lines carry the ids of what it works on.

A worker interceptor binds them (structlog contextvars) from the activity's
input before the activity runs: campaign, step, prospect, send (``campaign:
step:prospect``) and mailbox ids where the input has them, plus the activity
and its attempt. Each activity runs in its own asyncio task, so what one binds
never reaches another. Activities bind what they learn later (the send's
mailbox) themselves.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

_ID_FIELDS = ("campaign_id", "step", "prospect_id", "mailbox_id")


def ids_of(arg: object) -> dict[str, Any]:
    """The ids an activity input carries (a ``key: SendKey`` or the id fields themselves)."""
    ids: dict[str, Any] = {}
    key = getattr(arg, "key", None)
    if key is not None and hasattr(key, "campaign_id"):
        ids.update(campaign_id=key.campaign_id, step=key.step, prospect_id=key.prospect_id,
                   send_id=str(key))
    for name in _ID_FIELDS:
        value = getattr(arg, name, None)
        if value is not None and isinstance(value, str | int):
            ids.setdefault(name, value)
    return ids


class _BindIds(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            activity=info.activity_type, attempt=info.attempt,
            **(ids_of(input.args[0]) if input.args else {}),
        )
        return await self.next.execute_activity(input)


class ActivityLogContext(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindIds(next)
