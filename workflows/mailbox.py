"""One long-lived workflow per mailbox: the place a pause or resume is decided.

Signals ``pause(reason)`` and ``resume()`` change the wanted state; the
workflow then applies it (PostgreSQL, then Redis) with an activity, and the
``status`` query says whether the latest change is in force. Operators,
health checks and sender-problem replies all pause through here.

``pause``/``resume`` are the operator's. The health check sends
``health_pause``/``health_resume``: it never overrides an operator's pause, and
it resumes only a pause of its own (docs/decisions/0012).

A send that finds the account unusable as configured (no STARTTLS, a refused
certificate: a ``config_error``) pauses through ``health_pause`` too: the
health check's login takes the same TLS path, so its next good run lifts it;
it never overrides an operator's pause (docs/decisions/0018).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        PAUSED_BY_HEALTH_CHECK,
        PAUSED_BY_OPERATOR,
        MailboxInput,
        MailboxStateInput,
    )
    from config.names import (
        APPLY_MAILBOX_STATE,
        HEALTH_PAUSE_SIGNAL,
        HEALTH_RESUME_SIGNAL,
        MAILBOX_WORKFLOW,
        PAUSE_SIGNAL,
    )
    from workflows.models import MailboxStatus

_APPLY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=MAILBOX_WORKFLOW)
class MailboxWorkflow:
    @workflow.init
    def __init__(self, inp: MailboxInput) -> None:
        self._mailbox_id = inp.mailbox_id
        self._paused = inp.paused
        self._reason = inp.reason
        self._paused_by = inp.paused_by or (PAUSED_BY_OPERATOR if inp.paused else "")
        self._version = inp.version
        self._applied = inp.applied
        self._changes = 0

    @workflow.run
    async def run(self, inp: MailboxInput) -> None:
        while True:
            await workflow.wait_condition(
                lambda: self._applied != self._version or self._changes >= inp.changes_per_run
            )
            while self._applied != self._version:
                version, paused, reason = self._version, self._paused, self._reason
                await workflow.execute_activity(
                    APPLY_MAILBOX_STATE,
                    MailboxStateInput(mailbox_id=inp.mailbox_id, paused=paused, reason=reason,
                                      paused_by=self._paused_by or None),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_APPLY_RETRY,
                    summary=f"{'pause' if paused else 'resume'} {inp.mailbox_id}",
                )
                self._applied = version
            if self._changes >= inp.changes_per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    MailboxInput(
                        mailbox_id=inp.mailbox_id, paused=self._paused, reason=self._reason,
                        paused_by=self._paused_by, version=self._version, applied=self._applied,
                        changes_per_run=inp.changes_per_run,
                    )
                )

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self, reason: str) -> None:
        self._change(True, reason or "paused by operator", PAUSED_BY_OPERATOR)

    @workflow.signal
    def resume(self) -> None:
        self._change(False, "", "")

    @workflow.signal(name=HEALTH_PAUSE_SIGNAL)
    def health_pause(self, reason: str) -> None:
        if self._paused_by != PAUSED_BY_OPERATOR:  # an operator's pause (and reason) stands
            self._change(True, reason, PAUSED_BY_HEALTH_CHECK)

    @workflow.signal(name=HEALTH_RESUME_SIGNAL)
    def health_resume(self) -> None:
        if self._paused and self._paused_by == PAUSED_BY_HEALTH_CHECK:
            self._change(False, "", "")

    def _change(self, paused: bool, reason: str, paused_by: str) -> None:
        self._paused, self._reason, self._paused_by = paused, reason, paused_by
        self._version += 1
        self._changes += 1

    @workflow.query
    def status(self) -> MailboxStatus:
        return MailboxStatus(
            mailbox_id=self._mailbox_id, paused=self._paused, reason=self._reason,
            paused_by=self._paused_by, applied=self._applied == self._version,
        )
