"""Replay the histories of live executions against the installed workflow code.

``outreach workflows replay`` (and ``OutreachClient.replay_workflows``) lists
executions from a Temporal server (by default this installation's running
ones), downloads each one's history and replays it with
``temporalio.worker.Replayer``, as a worker of this code would on picking it
up. A failure means the code would stop that execution with a
non-determinism error (or another failed workflow task) once deployed: the
recorded-history tests of docs/decisions/0025 check known scenarios, this
checks the executions that are actually running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.converter import DataConverter, DefaultFailureConverter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.worker import Replayer, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import _Definition

from client import ClientError
from config.codec import PayloadEncryption
from config.converter import data_converter
from config.names import maintenance_task_queue, send_task_queue
from config.secrets import KeyRing, SecretKeyError, key_ring
from config.settings import Settings
from workers.main import connect_temporal, workflow_runner
from workers.registry import WORKFLOWS, maintenance_workflows

DEFAULT_LIMIT = 1000
# Each history is one request (or a few pages); a handful at a time keeps a
# remote server's latency from adding up over a thousand executions without
# loading it the way an unbounded fan-out would.
_FETCH_CONCURRENCY = 8

# (stage, done, total): "fetched" while downloading, "replayed" while replaying.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ReplayedRun:
    workflow_id: str
    run_id: str
    workflow_type: str


@dataclass(frozen=True)
class ReplayFailure:
    workflow_id: str
    run_id: str
    workflow_type: str
    # The first history event the code disagrees with, when the replayer names one.
    event_id: int | None
    event_type: str | None
    reason: str

    def line(self) -> str:
        where = f"event {self.event_id} ({self.event_type}): " if self.event_id is not None else ""
        return f"FAILED {self.workflow_id} run {self.run_id} ({self.workflow_type}): {where}{self.reason}"


@dataclass(frozen=True)
class ReplayReport:
    query: str
    limit: int
    runs: list[ReplayedRun] = field(default_factory=list)
    failures: list[ReplayFailure] = field(default_factory=list)

    @property
    def limit_reached(self) -> bool:
        return len(self.runs) >= self.limit

    def summary(self) -> str:
        return f"replayed {len(self.runs)} workflow(s): {len(self.failures)} failed"

    def as_json(self) -> dict[str, Any]:
        return {
            "query": self.query, "replayed": len(self.runs), "failed": len(self.failures),
            "limit": self.limit, "limit_reached": self.limit_reached,
            "by_type": dict(sorted(Counter(r.workflow_type for r in self.runs).items())),
            "workflows": [dataclasses.asdict(r) for r in self.runs],
            "failures": [dataclasses.asdict(f) for f in self.failures],
        }


def running_query(settings: Settings) -> str:
    """This installation's running executions. Its task queues name it exactly (the
    prefix plus a fixed suffix; child workflows inherit the queue), where a workflow-id
    prefix would also match another installation whose prefix extends this one's."""
    queues = ", ".join(f'"{q}"' for q in (send_task_queue(settings.task_queue),
                                          maintenance_task_queue(settings.task_queue)))
    return f'ExecutionStatus = "Running" AND TaskQueue IN ({queues})'


def registered_workflows() -> list[type]:
    """Every workflow a worker of this code registers: the send worker's and the maintenance worker's."""
    return [*WORKFLOWS, *maintenance_workflows()]


async def connect(settings: Settings) -> Client:
    """A Temporal client with the production data converter; a failed connect names the address."""
    try:
        return await connect_temporal(settings)
    except RuntimeError as exc:  # temporalio reports a failed connect this way
        raise ClientError(f"cannot reach Temporal at {settings.temporal_address}: {exc}") from exc


async def replay_workflows(
    temporal: Client, settings: Settings, *, query: str | None = None, limit: int = DEFAULT_LIMIT,
    workflows: Sequence[type] | None = None, progress: Progress | None = None,
) -> ReplayReport:
    """Replay the executions ``query`` lists (default: this installation's running ones, at
    most ``limit``) against ``workflows`` (default: every registered workflow), each run the
    way its worker runs it. Decodes payloads under ``settings.secret_keys``."""
    ring = key_ring(settings.secret_keys)  # before any download: no keys is a setup error
    query = query or running_query(settings)
    executions = await _list(temporal, query, limit)
    histories = await _fetch_all(temporal, executions, progress)
    _check_keys(histories, ring)
    report = ReplayReport(query=query, limit=limit)
    await _replay_all(histories, settings, list(workflows or registered_workflows()), report, progress)
    return report


async def _list(temporal: Client, query: str, limit: int) -> list[WorkflowExecution]:
    try:
        return [w async for w in temporal.list_workflows(query, limit=limit)]
    except RPCError as exc:  # a malformed query, or a search attribute the namespace lacks
        raise ClientError(f"the server refused the query {query!r}: {exc.message}") from exc


async def _fetch_all(
    temporal: Client, executions: list[WorkflowExecution], progress: Progress | None
) -> list[tuple[ReplayedRun, WorkflowHistory]]:
    gate = asyncio.Semaphore(_FETCH_CONCURRENCY)
    done = 0

    async def fetch(execution: WorkflowExecution) -> tuple[ReplayedRun, WorkflowHistory]:
        nonlocal done
        async with gate:
            history = await _fetch(temporal, execution)
        done += 1
        if progress:
            progress("fetched", done, len(executions))
        return ReplayedRun(execution.id, execution.run_id, execution.workflow_type), history

    return list(await asyncio.gather(*(fetch(e) for e in executions)))


async def _fetch(temporal: Client, execution: WorkflowExecution) -> WorkflowHistory:
    # By run id: the run that was listed, even if it continues as new meanwhile.
    handle = temporal.get_workflow_handle(execution.id, run_id=execution.run_id)
    try:
        return await handle.fetch_history()
    except RPCError as exc:
        raise ClientError(f"cannot fetch the history of {execution.id} run {execution.run_id}:"
                          f" {exc.message}") from exc


def _check_keys(histories: list[tuple[ReplayedRun, WorkflowHistory]], ring: KeyRing) -> None:
    """Without the keys the payloads were sealed under, every replay would fail on its
    input and read as a broken deployment: say so once instead."""
    codec = PayloadEncryption(ring)
    for run, history in histories:
        started = history.events[0].workflow_execution_started_event_attributes
        for payload in started.input.payloads:
            try:
                codec.open(payload)
            except SecretKeyError as exc:
                raise ClientError(f"cannot decode the input of {run.workflow_id} run {run.run_id}: {exc}"
                                  " (replay with the OUTREACH_SECRET_KEYS its workers use)") from exc


# -- replaying ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Worker:
    """The workflows one worker of workers/main.py registers and the runner it runs them in."""

    workflows: list[type]
    runner: WorkflowRunner


def _workers(settings: Settings, workflows: list[type]) -> tuple[_Worker, _Worker]:
    """(send worker, maintenance worker), each running its workflows as in production: the
    send worker by ``workflow_runner(settings)`` (outside the sandbox unless
    OUTREACH_WORKFLOW_SANDBOX is set, decision 0041), the maintenance worker in the sandbox
    (workers/main.py gives it no runner: the SDK's default). A replay in another runner
    than production's could pass code production rejects, or the reverse."""
    names = _maintenance_names()
    send = [w for w in workflows if _type_name(w) not in names]
    maintenance = [w for w in workflows if _type_name(w) in names]
    # A replayer needs at least one workflow; a type it lacks fails as "not registered".
    return (_Worker(send or workflows, workflow_runner(settings)),
            _Worker(maintenance or workflows, SandboxedWorkflowRunner()))


def _maintenance_names() -> set[str]:
    return {_type_name(w) for w in maintenance_workflows()}


def _replay_converter(settings: Settings) -> DataConverter:
    """The production converter (the histories' payloads decode as a worker decodes
    them), except that the replayer's own failure reports keep their message in the
    clear, so a failed replay says why (as in tests/histories, decision 0025)."""
    return dataclasses.replace(data_converter(settings), failure_converter_class=DefaultFailureConverter)


def _quiet_runtime() -> Runtime:
    """Core logs each failed replay as a warning with its whole debug dump; the report
    carries the failure once, cleanly."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


def _type_name(cls: type) -> str:
    return _Definition.must_from_class(cls).name or "<dynamic>"


async def _replay_all(
    histories: list[tuple[ReplayedRun, WorkflowHistory]], settings: Settings, workflows: list[type],
    report: ReplayReport, progress: Progress | None,
) -> None:
    send, maintenance = _workers(settings, workflows)
    names = _maintenance_names()
    converter, runtime = _replay_converter(settings), _quiet_runtime()
    # Our own executor, shut down at the end: the replayer's default one never is, and
    # OutreachClient may replay inside a long-lived process.
    with ThreadPoolExecutor(thread_name_prefix="replay") as executor:
        for worker, group in ((send, [h for h in histories if h[0].workflow_type not in names]),
                              (maintenance, [h for h in histories if h[0].workflow_type in names])):
            if group:
                replayer = Replayer(workflows=worker.workflows, workflow_runner=worker.runner,
                                    data_converter=converter, runtime=runtime,
                                    workflow_task_executor=executor)
                await _replay_group(replayer, group, report, len(histories), progress)


async def _replay_group(
    replayer: Replayer, group: list[tuple[ReplayedRun, WorkflowHistory]], report: ReplayReport,
    total: int, progress: Progress | None,
) -> None:
    async def histories() -> AsyncIterator[WorkflowHistory]:
        for _, history in group:
            yield history

    async with replayer.workflow_replay_iterator(histories()) as results:
        index = 0
        async for result in results:  # in the order pushed: one history at a time
            run = group[index][0]
            index += 1
            report.runs.append(run)
            if result.replay_failure is not None:
                report.failures.append(describe_failure(run, result.replay_failure))
            if progress:
                progress("replayed", len(report.runs), total)


# -- failure messages ----------------------------------------------------------------
# The replayer's failure is core's debug dump of the workflow task failure, e.g.
#   Workflow activation completion failed: Failure { failure: Some(Failure { message: "[TMPRL1100]
#   Nondeterminism error: Timer machine does not handle this event: HistoryEvent(id: 5,
#   ActivityTaskScheduled)", source: "", stack_trace: "", ... }), force_cause: NonDeterministicError }

_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_TYPE = re.compile(r'r#type: "((?:[^"\\]|\\.)*)"')
_STACK = re.compile(r'stack_trace: "((?:[^"\\]|\\.)*)"')
_EVENT = re.compile(r"HistoryEvent\(id: (\d+), (\w+)")
_TRAILING_EVENT = re.compile(r"\s*:?\s*HistoryEvent\([^)]*\)\s*$")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_MAX_REASON = 500


def describe_failure(run: ReplayedRun, failure: BaseException) -> ReplayFailure:
    """The failure as one clean line: the message core reports, the event it names (for a
    non-determinism error), or the exception's type and the last frame of workflow code."""
    text = str(failure)
    message = _unescape(m.group(1)) if (m := _MESSAGE.search(text)) else " ".join(text.split())
    event = _EVENT.search(message)
    # The event goes first in the line; said again at the end of core's text it is noise.
    reason = _TRAILING_EVENT.sub("", message) if event else _with_origin(message, text)
    if len(reason) > _MAX_REASON:
        reason = reason[:_MAX_REASON] + "..."
    return ReplayFailure(
        workflow_id=run.workflow_id, run_id=run.run_id, workflow_type=run.workflow_type,
        event_id=int(event.group(1)) if event else None, event_type=event.group(2) if event else None,
        reason=reason,
    )


def _with_origin(message: str, text: str) -> str:
    """An exception raised by workflow code: prefix its type, end with where it was raised."""
    kind = _unescape(m.group(1)) if (m := _TYPE.search(text)) else ""
    frames = _FRAME.findall(_unescape(m.group(1))) if (m := _STACK.search(text)) else []
    where = f" (at {frames[-1][0]}:{frames[-1][1]} in {frames[-1][2]})" if frames else ""
    return f"{kind}: {message}{where}" if kind else f"{message}{where}"


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)
