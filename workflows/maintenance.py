"""The shell every maintenance workflow shares: one bounded activity run.

Cleanup, health checks and reconciliation (docs/decisions/0013) are each one
activity, bounded by the input's ``timeout`` and tried twice; the workflow
returns the activity's result. Histories recorded with these options replay
only while they stay as they are: the name, the start-to-close (the input's
timeout), the heartbeat timeout and the retry policy.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_attempts=2)

ResultT = TypeVar("ResultT", bound=BaseModel)


class BoundedInput(Protocol):
    @property
    def timeout(self) -> timedelta: ...


async def run_bounded(
    activity: str, inp: BoundedInput, result_type: type[ResultT],
    heartbeat_timeout: timedelta | None = None,
) -> ResultT:
    """Run ``activity`` once (one retry), within ``inp.timeout``."""
    result: ResultT = await workflow.execute_activity(
        activity, inp, result_type=result_type,
        start_to_close_timeout=inp.timeout, heartbeat_timeout=heartbeat_timeout,
        retry_policy=_RETRY,
    )
    return result
