"""A campaign: its step workflows side by side, and the campaign's own state.

Step k's workflow runs from the start, sending each prospect step k once
step k-1 reached them the delay ago; when step k-1's workflow ends, step k is
told so it can end once nothing is left. Pause and resume are forwarded to
every step; cancelling ends the steps and gives every open send a final state.

The pause and resume handlers await signals and an activity, so they take
turns under one lock: the state they store is that of the last one handled,
and the run waits for a handler still at work before it stores its own
(docs/decisions/0027).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import is_cancelled_exception
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from activities.models import CampaignStateInput
    from config.names import SET_CAMPAIGN_STATE, step_workflow_id
    from workflows.campaign_step import CampaignStepWorkflow, step_search_attributes
    from workflows.models import CampaignInput, CampaignResult, StepInput, StepResult

_STATE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# Runs that began before this patch let a cancel that reached them as the awaited
# step's error end the campaign without cancelling the other steps or its sends.
_CANCEL_THROUGH_STEP_ERROR = "cancel-through-step-error"


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, inp: CampaignInput) -> None:
        self._inp = inp
        self._steps: list[ChildWorkflowHandle[CampaignStepWorkflow, StepResult]] = []
        self._paused = False
        self._control = asyncio.Lock()  # one pause or resume at a time

    @workflow.run
    async def run(self, inp: CampaignInput) -> CampaignResult:
        await self._set_state("running")
        try:
            for k, delay in enumerate(inp.delays, start=1):
                self._steps.append(await workflow.start_child_workflow(
                    CampaignStepWorkflow.run,
                    StepInput(id_prefix=inp.id_prefix, campaign_id=inp.campaign_id, step=k,
                              delay=delay, tuning=inp.tuning, paused=self._paused),
                    id=step_workflow_id(inp.id_prefix, inp.campaign_id, k),
                    search_attributes=(step_search_attributes(inp.campaign_id, k)
                                       if inp.tuning.search_attributes else None),
                ))
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
                await self._cancel_steps()
                await self._set_state("cancelled")
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._set_state("completed")
        return CampaignResult(campaign_id=inp.campaign_id, steps=results)

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
            for handle in self._steps:
                await handle.signal(CampaignStepWorkflow.pause)
            await self._set_state("paused")

    @workflow.signal
    async def resume(self) -> None:
        async with self._control:
            self._paused = False
            for handle in self._steps:
                await handle.signal(CampaignStepWorkflow.resume)
            await self._set_state("running")

    @workflow.query
    def paused(self) -> bool:
        return self._paused
