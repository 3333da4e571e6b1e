"""A campaign: its step workflows side by side, and the campaign's own state.

Step k's workflow runs from the start, sending each prospect step k once
step k-1 reached them the delay ago; when step k-1's workflow ends, step k is
told so it can end once nothing is left. Pause and resume are forwarded to
every step; cancelling ends the steps and gives every open send a final state.

The pause and resume handlers await signals and an activity, so they take
turns under one lock: the state they store is that of the last one handled,
and the run waits for a handler still at work before it stores its own
(docs/decisions/0027).

Prospects added to a running campaign (docs/decisions/0039): each step is told by
a signal, and a step that had already ended is started again, its followers told
to wait for it. The campaign completes only when an activity, under the
campaign's row lock, finds no prospect with a step to go; otherwise its steps
run again. An open campaign's step 1 ends only once the campaign is closed.

Campaigns started since decision 0048 hold for months: the run continues as new at a
quiet moment once its history is long, its steps outlive it (ParentClosePolicy.ABANDON,
told by workflow id) and report their end by signal, prospects added reach the steps
from the client directly, and a step that can no longer report is found by a look at
the step workflows. Runs that began before keep the paths below ``_run_bounded``'s.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import CampaignStateInput
    from config.names import (
        CAMPAIGN_CLAIM_AGAIN_SIGNAL,
        FINISH_CAMPAIGN,
        SET_CAMPAIGN_STATE,
        STEP_ENDED_SIGNAL,
        STEP_HEARS_ADDITIONS_MEMO,
        STEPS_RUNNING,
        step_workflow_id,
    )
    from workflows.campaign_step import CampaignStepWorkflow, step_search_attributes
    from workflows.models import (
        CampaignCarry,
        CampaignInput,
        CampaignResult,
        StepEnded,
        StepInput,
        StepResult,
    )

_STATE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# Runs that began before this patch let a cancel that reached them as the awaited
# step's error end the campaign without cancelling the other steps or its sends.
_CANCEL_THROUGH_STEP_ERROR = "cancel-through-step-error"
# Runs that began before this patch await their steps once, in order, and cannot
# take prospects added while they run.
_REOPENABLE_STEPS = "reopenable-steps"
# Runs that began before this patch never continue as new: their steps are their
# children, awaited by handle (decision 0048).
_CONTINUES_AS_NEW = "campaign-continues-as-new"
# A step that reported its end may still be closing when the campaign starts it
# again: the start is refused as already started, and tried again after this.
_RESTART_AGAIN = timedelta(seconds=2)
_CHECK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
                           maximum_attempts=5)


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, inp: CampaignInput) -> None:
        self._inp = inp
        self._steps: list[ChildWorkflowHandle[CampaignStepWorkflow, StepResult]] = []
        self._paused = False
        self._control = asyncio.Lock()  # one pause, resume or step change at a time
        # For runs with the reopenable-steps patch:
        self._reopenable = False
        self._running: list[bool] = []  # per step: its latest workflow has not ended
        self._results: list[StepResult | None] = []
        self._closed = not inp.open
        self._cancelling = False
        self._failure: BaseException | None = None
        self._finished = False
        self._refusals = 0  # completions refused in a row (prospects left)
        self._watchers: list[asyncio.Task[None]] = []  # kept: the loop holds tasks weakly
        # For runs that continue as new (decision 0048): steps are told by id, and
        # report their end by signal with the number of their start.
        self._bounded = False
        self._generations: list[int] = []
        self._step_failure = ""
        self._runs = 1
        if inp.carry is not None:
            carry = inp.carry
            self._bounded = self._reopenable = True
            self._running, self._generations = list(carry.running), list(carry.generations)
            self._results = list(carry.results)
            self._paused, self._closed = carry.paused, carry.closed
            self._refusals, self._runs = carry.refusals, carry.runs

    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignResult:
        if inp.carry is not None:  # a run continued as new: the bounded path only
            return await self._run_bounded(first=False)
        if workflow.patched(_CONTINUES_AS_NEW):
            return await self._run_bounded(first=True)
        await self._set_state("running")
        try:
            for k in range(1, len(inp.delays) + 1):
                self._steps.append(await self._start_step(k, previous_done=False))
            if workflow.patched(_REOPENABLE_STEPS):
                return await self._run_reopenable()
            results = []
            for k, handle in enumerate(self._steps):
                results.append(await handle)
                if k + 1 < len(self._steps):
                    await self._steps[k + 1].signal(CampaignStepWorkflow.previous_step_done)
        except BaseException as err:
            # A cancel arrives as CancelledError, or as the error of the step being
            # awaited (the SDK cancels the child first and raises its cancellation).
            if isinstance(err, asyncio.CancelledError) or (
                is_cancelled_exception(err) and workflow.patched(_CANCEL_THROUGH_STEP_ERROR)
            ):
                self._cancelling = True
                if self._reopenable:
                    async with self._control:  # no step is being started again meanwhile
                        await self._cancel_steps()
                else:
                    await self._cancel_steps()
                await self._set_state("cancelled")
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._set_state("completed")
        return CampaignResult(campaign_id=inp.campaign_id, steps=results)

    async def _start_step(
        self, k: int, previous_done: bool
    ) -> ChildWorkflowHandle[CampaignStepWorkflow, StepResult]:
        inp = self._inp
        return await workflow.start_child_workflow(
            CampaignStepWorkflow.run,
            StepInput(id_prefix=inp.id_prefix, campaign_id=inp.campaign_id, step=k,
                      delay=inp.delays[k - 1], tuning=inp.tuning, paused=self._paused,
                      awaits_close=k == 1 and not self._closed, previous_done=previous_done),
            id=step_workflow_id(inp.id_prefix, inp.campaign_id, k),
            search_attributes=(step_search_attributes(inp.campaign_id, k)
                               if inp.tuning.search_attributes else None),
        )

    async def _run_reopenable(self) -> CampaignResult:
        """Watch every step; when all have ended (and an open campaign is closed),
        complete unless prospects are left, in which case run the steps again."""
        self._reopenable = True
        self._running = [True] * len(self._steps)
        self._results = [None] * len(self._steps)
        for k, handle in enumerate(self._steps):
            self._watch(k, handle)
        if self._inp.open and self._closed:  # closed while its steps were starting
            await self._steps[0].signal(CampaignStepWorkflow.previous_step_done)
        while True:
            await workflow.wait_condition(
                lambda: self._failure is not None or (self._closed and not any(self._running))
            )
            if self._failure is not None:
                raise self._failure
            async with self._control:
                if any(self._running):  # reopened while we waited for the lock
                    continue
                if await workflow.execute_activity(
                    FINISH_CAMPAIGN, self._inp.campaign_id, result_type=bool,
                    start_to_close_timeout=timedelta(seconds=60), retry_policy=_STATE_RETRY,
                    summary="campaign completed unless prospects are left",
                ):
                    self._finished = True
                    break
            # Prospects left whose addition the steps did not hear of in time.
            self._refusals += 1
            if self._refusals > 1:
                # Steps that end at once with work left (say a mailbox paused for
                # good): look again later rather than spin.
                await workflow.sleep(self._inp.tuning.stall_check, summary="prospects left")
            async with self._control:
                if not any(self._running):  # else a signal reopened them meanwhile
                    await self._reopen()
        # A signal still waiting for the lock finds the campaign finished and does nothing.
        await workflow.wait_condition(workflow.all_handlers_finished)
        results = [r for r in self._results if r is not None]
        return CampaignResult(campaign_id=self._inp.campaign_id, steps=results)

    def _watch(self, k: int, handle: ChildWorkflowHandle[CampaignStepWorkflow, StepResult]) -> None:
        async def watch() -> None:
            try:
                result = await handle
            except BaseException as err:  # noqa: BLE001 - the run raises it, unless cancelling
                if not self._cancelling and self._failure is None:
                    self._failure = err
                return
            async with self._control:
                self._results[k] = result
                self._running[k] = False
                if k > 0 and self._running[k - 1]:
                    # It ended before hearing its step before had been started again.
                    await self._restart(k)
                elif k + 1 < len(self._steps) and self._running[k + 1]:
                    await self._steps[k + 1].signal(CampaignStepWorkflow.previous_step_done)

        self._watchers.append(asyncio.create_task(watch(), name=f"watch step {k + 1}"))

    async def _restart(self, k: int) -> None:
        """Start step k+1 (0-based k) again; step 1 goes at once unless the campaign is
        open, a follow-up waits for the step before (running again) to end."""
        if self._cancelling:
            return
        handle = await self._start_step(k + 1, previous_done=k == 0 and self._closed)
        self._steps[k] = handle
        self._running[k] = True
        self._watch(k, handle)

    async def _reopen(self) -> None:
        """Every step claims again: ended ones start again, running ones are told."""
        for k in range(len(self._steps)):
            if not self._running[k]:
                await self._restart(k)
                continue
            try:
                await self._steps[k].signal(CampaignStepWorkflow.prospects_added)
            except Exception:  # noqa: BLE001 - it has just ended: its watcher starts it again
                workflow.logger.info("step %d ended before it was told of new prospects", k + 1)

    async def _cancel_steps(self) -> None:
        for k in range(1, len(self._inp.delays) + 1):
            step = workflow.get_external_workflow_handle(
                step_workflow_id(self._inp.id_prefix, self._inp.campaign_id, k)
            )
            try:
                await step.cancel()
            except Exception:  # noqa: BLE001 - a step that already ended cannot be cancelled
                workflow.logger.info("step %d already ended", k)
        for handle in self._steps:
            try:
                await handle
            except BaseException:  # noqa: BLE001 - each step ends cancelled; that is the point
                pass

    # -- runs that continue as new (decision 0048) --

    async def _run_bounded(self, first: bool) -> CampaignResult:
        """Like _run_reopenable, with steps that outlive the run: they are started with
        ParentClosePolicy.ABANDON, told by workflow id, and report their end by signal.
        The run continues as new at a quiet moment once its history is long."""
        self._bounded = self._reopenable = True
        n = len(self._inp.delays)
        try:
            if first:
                self._running, self._generations = [False] * n, [0] * n
                self._results = [None] * n
                await self._set_state("running")
                async with self._control:
                    for k in range(n):
                        await self._start(k, previous_done=False)
                    if self._inp.open and self._closed:  # closed while its steps were starting
                        await self._tell(0, CampaignStepWorkflow.previous_step_done)
            while not await self._finish_bounded():
                pass
        except BaseException as err:
            if isinstance(err, asyncio.CancelledError) or is_cancelled_exception(err):
                self._cancelling = True
                async with self._control:
                    await self._cancel_bounded()
                await self._set_state("cancelled")
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        results = [r for r in self._results if r is not None]
        return CampaignResult(campaign_id=self._inp.campaign_id, steps=results)

    async def _finish_bounded(self) -> bool:
        """Wait for every step to end (and an open campaign to close), then complete
        unless prospects are left (True), or run them again (False). Continues as new
        when the history is long; looks at the steps after ``step_check`` without news."""
        try:
            await workflow.wait_condition(
                lambda: bool(self._step_failure) or self._wants_new_run()
                or (self._closed and not any(self._running)),
                timeout=self._inp.step_check,
            )
        except TimeoutError:
            async with self._control:
                await self._check_steps()
            return False
        if self._step_failure:
            raise ApplicationError(self._step_failure)
        if self._wants_new_run():
            await self._continue_as_new()
        async with self._control:
            if any(self._running):  # reopened while we waited for the lock
                return False
            if await workflow.execute_activity(
                FINISH_CAMPAIGN, self._inp.campaign_id, result_type=bool,
                start_to_close_timeout=timedelta(seconds=60), retry_policy=_STATE_RETRY,
                summary="campaign completed unless prospects are left",
            ):
                self._finished = True
                return True
        self._refusals += 1
        if self._refusals > 1:
            await workflow.sleep(self._inp.tuning.stall_check, summary="prospects left")
        async with self._control:
            if not any(self._running):
                await self._reopen_bounded()
        return False

    def _wants_new_run(self) -> bool:
        info = workflow.info()
        long = info.get_current_history_length() >= self._inp.events_per_run
        return not self._cancelling and (long or info.is_continue_as_new_suggested())

    async def _continue_as_new(self) -> None:
        """At a quiet moment (no handler at work, the control lock free), hand the state
        to a new run. Steps keep running: they are not this run's to end."""
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._control.locked())
        carry = CampaignCarry(
            running=self._running, generations=self._generations, results=self._results,
            paused=self._paused, closed=self._closed, refusals=self._refusals, runs=self._runs + 1,
        )
        workflow.continue_as_new(self._inp.model_copy(update={"carry": carry}))

    async def _start(self, k: int, previous_done: bool) -> None:
        """Start step k+1 (0-based k) as a new generation, abandoned by this run."""
        inp = self._inp
        self._generations[k] += 1
        step_input = StepInput(
            id_prefix=inp.id_prefix, campaign_id=inp.campaign_id, step=k + 1, delay=inp.delays[k],
            tuning=inp.tuning, paused=self._paused, awaits_close=k == 0 and not self._closed,
            previous_done=previous_done, generation=self._generations[k],
        )
        # Running from now: its report can arrive in the same activation as its start.
        self._running[k] = True
        while True:
            try:
                await workflow.start_child_workflow(
                    CampaignStepWorkflow.run, step_input,
                    id=step_workflow_id(inp.id_prefix, inp.campaign_id, k + 1),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    memo={STEP_HEARS_ADDITIONS_MEMO: True},
                    search_attributes=(step_search_attributes(inp.campaign_id, k + 1)
                                       if inp.tuning.search_attributes else None),
                )
                break
            except WorkflowAlreadyStartedError:
                # Its previous start reported its end and is closing: start it once closed.
                await workflow.sleep(_RESTART_AGAIN, summary=f"step {k + 1} still closing")

    async def _tell(self, k: int, signal: Any, *args: Any) -> bool:
        """Signal step k+1's latest run; False when it has ended (its report says so)."""
        step = workflow.get_external_workflow_handle(
            step_workflow_id(self._inp.id_prefix, self._inp.campaign_id, k + 1))
        try:
            await step.signal(signal, *args)
        except Exception:  # noqa: BLE001 - it has just ended; its report follows
            workflow.logger.info("step %d ended before it was told", k + 1)
            return False
        return True

    async def _tell_running(self, signal: Any, *args: Any) -> None:
        """Signal every running step at once."""
        await asyncio.gather(*(self._tell(k, signal, *args)
                               for k, running in enumerate(self._running) if running))

    async def _reopen_bounded(self) -> None:
        """Every step claims again: ended ones start again, running ones are told."""
        for k in range(len(self._running)):
            if not self._running[k]:
                await self._start(k, previous_done=k == 0 and self._closed)
            else:
                await self._tell(k, CampaignStepWorkflow.prospects_added)

    async def _ended(self, k: int) -> None:
        """Step k+1 has ended (under the control lock): a step after it that waits is
        told, or it starts again if the step before it runs again."""
        if self._cancelling or self._finished or self._running[k]:
            return  # started again meanwhile: that start reports in its turn
        if k > 0 and self._running[k - 1]:
            await self._start(k, previous_done=False)
        elif k + 1 < len(self._running) and self._running[k + 1]:
            await self._tell(k + 1, CampaignStepWorkflow.previous_step_done)

    async def _check_steps(self) -> None:
        """Steps believed running that are not (terminated, timed out: no report will
        come) end here, under the control lock so no step starts meanwhile."""
        ids = [step_workflow_id(self._inp.id_prefix, self._inp.campaign_id, k + 1)
               for k in range(len(self._running))]
        try:
            alive: list[bool | None] = await workflow.execute_activity(
                STEPS_RUNNING, ids, result_type=list[bool | None],
                start_to_close_timeout=timedelta(seconds=30), retry_policy=_CHECK_RETRY,
                summary="which steps still run",
            )
        except ActivityError as err:
            workflow.logger.warning("could not look at the steps: %s", err.cause or err)
            return
        for k, running in enumerate(alive):
            if running is False and self._running[k]:
                workflow.logger.warning("step %d ended without a report", k + 1)
                self._running[k] = False
                await self._ended(k)

    async def _cancel_bounded(self) -> None:
        """Cancel every step's latest run and wait until each running one has ended."""
        for k in range(len(self._running)):
            step = workflow.get_external_workflow_handle(
                step_workflow_id(self._inp.id_prefix, self._inp.campaign_id, k + 1))
            try:
                await step.cancel()
            except Exception:  # noqa: BLE001 - a step that already ended cannot be cancelled
                workflow.logger.info("step %d already ended", k + 1)
        while any(self._running):
            try:
                await workflow.wait_condition(lambda: not any(self._running),
                                              timeout=self._inp.tuning.stall_check)
            except TimeoutError:
                await self._check_steps()

    @workflow.signal(name=STEP_ENDED_SIGNAL)
    async def step_ended(self, ended: StepEnded) -> None:
        """A step's report (decision 0048). One from an older start of it is ignored."""
        k = ended.step - 1
        if not (self._bounded and 0 <= k < len(self._running)) or ended.generation != self._generations[k]:
            workflow.logger.info("ignored the end of step %d start %d", ended.step, ended.generation)
            return
        if not self._running[k]:
            return
        self._running[k] = False
        if ended.result is not None:
            self._results[k] = ended.result
        if ended.failure and not self._cancelling:
            self._step_failure = f"step {ended.step} failed: {ended.failure}"
            return
        if self._cancelling or self._finished:
            return
        async with self._control:
            await self._ended(k)

    async def _set_state(self, state: str) -> None:
        await workflow.execute_activity(
            SET_CAMPAIGN_STATE,
            CampaignStateInput(campaign_id=self._inp.campaign_id, state=state),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_STATE_RETRY,
            summary=f"campaign {state}",
        )

    @workflow.signal
    async def pause(self) -> None:
        async with self._control:
            self._paused = True
            if self._bounded:
                await self._tell_running(CampaignStepWorkflow.pause)
            else:
                for handle in self._steps:
                    await handle.signal(CampaignStepWorkflow.pause)
            await self._set_state("paused")

    @workflow.signal
    async def resume(self) -> None:
        async with self._control:
            self._paused = False
            if self._bounded:
                await self._tell_running(CampaignStepWorkflow.resume)
            else:
                for handle in self._steps:
                    await handle.signal(CampaignStepWorkflow.resume)
            await self._set_state("running")

    @workflow.signal(name=CAMPAIGN_CLAIM_AGAIN_SIGNAL)
    async def prospects_added(self) -> None:
        """Prospects were added (already committed), or a mailbox was resumed: every
        step claims again."""
        if not self._reopenable:
            # Its steps are still starting (none has ended: they claim the new
            # prospects as they run), or the run predates the patch.
            workflow.logger.info("prospects added before the steps are watched")
            return
        async with self._control:
            if not (self._cancelling or self._finished):
                self._refusals = 0
                await (self._reopen_bounded() if self._bounded else self._reopen())

    @workflow.signal
    async def close(self) -> None:
        """An open campaign stops waiting for prospects: step 1 ends when it is through."""
        async with self._control:
            self._closed = True
            if self._bounded:
                if self._running[0]:
                    await self._tell(0, CampaignStepWorkflow.previous_step_done)
            elif self._reopenable and self._running and self._running[0]:
                await self._steps[0].signal(CampaignStepWorkflow.previous_step_done)

    @workflow.signal
    async def steps_changed(self, delays: list[timedelta]) -> None:
        """Steps were edited (already stored): steps started from now on take the new
        delays, running ones are told theirs."""
        async with self._control:
            self._inp = self._inp.model_copy(update={"delays": delays})
            if self._bounded:
                await asyncio.gather(*(self._tell(k, CampaignStepWorkflow.delay_changed, delays[k])
                                       for k, running in enumerate(self._running) if running))
                return
            for k, handle in enumerate(self._steps):
                if self._reopenable and not self._running[k]:
                    continue
                try:
                    await handle.signal(CampaignStepWorkflow.delay_changed, delays[k])
                except Exception:  # noqa: BLE001 - it has ended: nothing of it is left to time
                    workflow.logger.info("step %d ended before it was told its delay", k + 1)

    @workflow.query
    def paused(self) -> bool:
        return self._paused
