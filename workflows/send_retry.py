"""One workflow per send that waits between attempts (docs/decisions/0049).

A step run that continues as new must not wait for a send asleep until its next
attempt (up to 2 h 35 min of a soft bounce's schedule), so the step hands such a send
to this workflow and forgets it until it is handed back. Here the send goes on as it
would have in the step: a durable timer until the next attempt, the send activity
with what is left of its retry policy, the same again after another soft bounce or a
place that is later, and a failed send settled. The ledger stays the one record of
the send; this workflow only decides when it is attempted.

Its id is the send's (config/names.py), so a send is never held by two. When it
ends, whatever the send came to, it tells the step by the step's workflow id, which
reaches the step's latest run: the step then claims again, or ends.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.models import SendOutcome
    from config.names import SEND_HANDED_BACK_SIGNAL, step_workflow_id
    from workflows.models import SendHandedBack, SendRetryInput
    from workflows.send_attempts import next_attempt, pause_mailbox, send_once, settle_failed


@workflow.defn
class SendRetryWorkflow:
    @workflow.run
    async def run(self, inp: SendRetryInput) -> str:
        """What the send came to: a final state, or an outcome that sent it back to the queue."""
        outcome = await self._attempts(inp)
        await self._hand_back(inp, outcome)
        return outcome

    async def _attempts(self, inp: SendRetryInput) -> str:
        key, at, made, reservation = inp.key, inp.retry_at, inp.attempts_made, inp.reservation
        while True:
            if at > workflow.now():
                await workflow.sleep(at - workflow.now(), summary=f"attempt {made + 1} of {key}")
            try:
                result = await send_once(key, inp.mailbox_id, reservation, made, inp.tuning,
                                         returns_soft_bounce=True)
            except ActivityError as err:
                return await settle_failed(key, err)
            if result.outcome in (SendOutcome.SOFT_BOUNCED, SendOutcome.PLACE_LATER):
                at, made, reservation = next_attempt(result, inp.tuning.send_first_retry, workflow.now())
                continue
            if result.outcome is SendOutcome.SENDER_PROBLEM:
                await pause_mailbox(inp.id_prefix, inp.mailbox_id, result)
            # Throttled, paused, a sender problem: back in the queue, which the step
            # claims from once told; the rest are final.
            return result.outcome.value

    async def _hand_back(self, inp: SendRetryInput, outcome: str) -> None:
        key = inp.key
        step = workflow.get_external_workflow_handle(
            step_workflow_id(inp.id_prefix, key.campaign_id, key.step))
        try:
            await step.signal(SEND_HANDED_BACK_SIGNAL,
                              SendHandedBack(prospect_id=key.prospect_id, outcome=outcome))
        except FailureError as err:
            if is_cancelled_exception(err):
                raise
            # The step is gone (its campaign was cancelled, which ended the send's row
            # too): nothing waits for this send any more.
            workflow.logger.info("send %s came to %s; its step was not told: %s", key, outcome, err)
