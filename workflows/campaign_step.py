"""One workflow per campaign step: sends step k to every prospect when it is due.

A run repeatedly claims a page of due sends (an activity over the ledger),
keeps at most ``window`` of them in flight, and between pages sleeps on one
durable timer until the next prospect becomes due. Each send passes the gate,
then the SMTP send activity with its 5 min / 30 min / 2 h retry policy. A send
the gate holds back returns to the ledger's queue and its mailbox is skipped
until the gate's instant, so a capped mailbox costs no timers per send.
After ``sends_per_run`` sends the run drains and continues as new.
Each run lists the prospects and mailboxes it has held in search attributes,
upserted once per claimed page, so the Web UI finds the run holding a send
(docs/decisions/0014).
The step ends when the step before it has ended and no prospect is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    FailureError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        DueSend,
        DueSendsInput,
        DueSendsResult,
        GateInput,
        GateResult,
        GateVerdict,
        SendKey,
        SendOutcome,
        SendResult,
    )
    from config.names import (
        CAMPAIGN_ID_ATTR,
        DUE_SENDS,
        GATE_SEND,
        MAILBOX_IDS_ATTR,
        PROSPECT_IDS_ATTR,
        SEND_HANDED_BACK_SIGNAL,
        STEP_ATTR,
        STEP_ENDED_SIGNAL,
        STEP_PROSPECTS_ARRIVED_SIGNAL,
        STEP_STALLS_METRIC,
        campaign_workflow_id,
        send_retry_workflow_id,
    )
    from workflows.models import SendHandedBack, SendRetryInput, StepEnded, StepInput, StepResult
    from workflows.send_attempts import next_attempt, pause_mailbox, send_once, settle_failed
    from workflows.send_retry import SendRetryWorkflow


def step_search_attributes(campaign_id: str, step: int) -> TypedSearchAttributes:
    """What a step run starts with; the ids it holds are added as it claims them."""
    return TypedSearchAttributes(
        [SearchAttributePair(CAMPAIGN_ID_ATTR, campaign_id), SearchAttributePair(STEP_ATTR, step)]
    )


# Limits fail closed: while Redis or PostgreSQL is down, keep asking, gently.
_INFRA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# A soft bounce, or a retry whose place is later, goes to the send's retry workflow
# (decision 0049); runs that began before wait for it themselves.
_HAND_OFF_PATCH = "soft-bounce-hand-off"
_STALL_CHECK_PATCH = "step-stall-check"
_LOCAL_GATE_PATCH = "gate-local-activity"
# A gate call is bounded; one that fails means "wait and try later" on a durable
# timer (docs/decisions/0043). These decide commands: used only under the patch.
_BOUNDED_GATE_PATCH = "gate-bounded"
_GATE_PATIENCE = timedelta(seconds=60)  # every attempt of one gate call (schedule-to-close)
_GATE_ATTEMPT = timedelta(seconds=10)  # one attempt: a Redis script of milliseconds
# Attempts at 0, +1, +3 and +5 s: a Redis that refuses answers at once, so the call
# fails before the SDK heartbeats the workflow task (at 8 s of its 10 s timeout, three
# history events each time); attempts that hang end at the patience.
_GATE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=2), maximum_attempts=4)
# The mailbox waits 2 min after a failed call, then 8, then 30 at most while they go
# on failing. Each wait costs the step about 20 events (the failed call, two or three
# claims, their workflow tasks, a timer): 2 waits an hour at most (decision 0043).
_GATE_BACKOFF_FIRST = timedelta(minutes=2)
_GATE_BACKOFF_FACTOR = 4
_GATE_BACKOFF_MAX = timedelta(minutes=30)


def _listed_size(values: list[str]) -> int:
    return sum(len(v) + 3 for v in values)  # each with quotes and a comma in a JSON list


class _GateFailures:
    """Failed gate calls in a row, per mailbox, in one step run; an answer ends the row."""

    def __init__(self) -> None:
        self._in_a_row: dict[str, int] = {}

    def failed(self, mailbox_id: str) -> timedelta:
        """How long the mailbox waits after this failure: 2 min, 8 min, then 30 min."""
        n = self._in_a_row.get(mailbox_id, 0)
        self._in_a_row[mailbox_id] = n + 1
        growth: int = _GATE_BACKOFF_FACTOR ** min(n, 10)  # bounded: a timedelta would overflow
        return min(_GATE_BACKOFF_FIRST * growth, _GATE_BACKOFF_MAX)

    def answered(self, mailbox_id: str) -> None:
        self._in_a_row.pop(mailbox_id, None)


async def _bounded_gate(gate_input: GateInput, failures: _GateFailures) -> GateResult:
    """The gate's answer, asked within _GATE_PATIENCE. A call that fails answers WAIT
    for a backoff instead: the send goes back to the queue and its mailbox waits on a
    durable timer, so a long Redis outage costs about 20 events per wait (two waits an
    hour at the cap) rather than a workflow task heartbeat every 8 s, and the run still
    reaches its continue-as-new check."""
    mailbox_id = gate_input.mailbox_id
    try:
        result: GateResult = await workflow.execute_local_activity(
            GATE_SEND, gate_input, result_type=GateResult,
            start_to_close_timeout=_GATE_ATTEMPT, schedule_to_close_timeout=_GATE_PATIENCE,
            retry_policy=_GATE_RETRY, summary=f"gate {gate_input.key}",
        )
    except FailureError as err:
        # A local activity that gives up raises its last failure itself (ApplicationError,
        # TimeoutError), not an ActivityError around it.
        if is_cancelled_exception(err):
            raise  # the step is being cancelled: not a failure to wait out
        wait = failures.failed(mailbox_id)
        reason = f"gate failed: {err.__cause__ or err}"
        workflow.logger.warning("%s for send %s; mailbox %s waits %s, the send goes back to the queue",
                                reason, gate_input.key, mailbox_id, wait)
        return GateResult(verdict=GateVerdict.WAIT, until=workflow.now() + wait, reason=reason[:500])
    failures.answered(mailbox_id)
    return result


@workflow.defn
class CampaignStepWorkflow:
    @workflow.init
    def __init__(self, inp: StepInput) -> None:
        self._inp = inp
        self._previous_done = inp.previous_done or (inp.step == 1 and not inp.awaits_close)
        self._added = 0  # prospects_added signals so far
        self._paused = inp.paused
        self._blocked: dict[str, datetime] = dict(inp.blocked)
        self._outcomes: dict[str, int] = dict(inp.outcomes)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._mailbox_of: dict[int, str] = {}  # in-flight prospect -> its mailbox
        # One gate call at a time per mailbox: when it says "wait", the mailbox's
        # other claimed sends go back to the queue without asking again.
        self._gate_locks: dict[str, asyncio.Lock] = {}
        self._wake = False
        self._ended = 0  # sends ended so far, to notice those that end during a claim
        self._held_prospects: list[str] = []  # this run's, for the search attributes
        self._held_mailboxes: list[str] = []
        self._watchdog_fired = False  # the last sleep ended by the stall check alone
        self._gate_failures = _GateFailures()  # per mailbox, in this run (decision 0043)
        # Prospects whose send is in its retry workflow, across runs (decision 0049).
        self._handed_off: set[int] = set(inp.handed_off)

    @workflow.run
    async def run(self, inp: StepInput) -> StepResult:
        if not inp.generation:
            return await self._run(inp)  # an older campaign's step: it awaits the result
        try:
            result = await self._run(inp)
        except BaseException as err:
            cancelled = isinstance(err, asyncio.CancelledError) or is_cancelled_exception(err)
            if cancelled or isinstance(err, FailureError):  # this start ends with it
                await self._report_end(StepEnded(step=inp.step, generation=inp.generation,
                                                 cancelled=cancelled,
                                                 failure="" if cancelled else str(err)[:500]))
            raise
        await self._report_end(StepEnded(step=inp.step, generation=inp.generation, result=result))
        return result

    async def _report_end(self, ended: StepEnded) -> None:
        """Tell the campaign's latest run that this start of the step has ended
        (decision 0048): the run that started it may have continued as new since."""
        campaign = workflow.get_external_workflow_handle(
            campaign_workflow_id(self._inp.id_prefix, self._inp.campaign_id))
        try:
            await campaign.signal(STEP_ENDED_SIGNAL, ended)
        except Exception:  # noqa: BLE001 - the campaign has ended: nobody waits for this step
            workflow.logger.info("campaign %s did not take step %d's end", self._inp.campaign_id,
                                 self._inp.step)

    async def _run(self, inp: StepInput) -> StepResult:
        started = 0
        while True:
            await workflow.wait_condition(lambda: not self._paused)
            now = workflow.now()
            self._blocked = {m: t for m, t in self._blocked.items() if t > now}
            room = min(inp.tuning.window - len(self._in_flight), inp.tuning.sends_per_run - started,
                       self._listable())
            ended = self._ended
            # The claim reads the ledger as it was when it ran: if the step before
            # ended meanwhile, the claim may have missed its last sends, and must
            # not be taken as "nothing left" (a signal can arrive with its answer).
            done_before_claim = self._previous_done
            added = self._added  # likewise for prospects added during the claim
            batch = await self._claim(now, room) if room > 0 else None
            if batch and batch.sends:
                self._hold(batch.sends)
                if self._watchdog_fired:
                    self._report_stall(batch.sends)
            self._watchdog_fired = False
            for send in batch.sends if batch else []:
                self._mailbox_of[send.prospect_id] = send.mailbox_id
                self._in_flight[send.prospect_id] = asyncio.create_task(self._send(send))
                started += 1
            if (started >= inp.tuning.sends_per_run or self._listable() <= 0
                    or workflow.info().is_continue_as_new_suggested()):
                await self._continue_as_new()
            if (batch and not batch.sends and batch.pending == 0 and not self._in_flight
                    and not self._handed_off):
                if done_before_claim and added == self._added:
                    break
            # Prospects added during the claim are claimed at once, like the last
            # sends of a step before that ended during it.
            await self._sleep(batch, room, now, ended_during_claim=self._ended != ended,
                              previous_done_during_claim=(self._previous_done and not done_before_claim)
                              or added != self._added)
        return StepResult(
            campaign_id=inp.campaign_id, step=inp.step, outcomes=self._outcomes, runs=inp.runs
        )

    async def _claim(self, now: datetime, room: int) -> DueSendsResult:
        batch: DueSendsResult = await workflow.execute_activity(
            DUE_SENDS,
            DueSendsInput(
                campaign_id=self._inp.campaign_id, step=self._inp.step, as_of=now, limit=room,
                per_mailbox=self._inp.tuning.per_mailbox,
                exclude_prospects=[*self._in_flight, *sorted(self._handed_off)],
                blocked_mailboxes=sorted({*self._blocked, *self._saturated()}),
            ),
            result_type=DueSendsResult,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_INFRA_RETRY,
        )
        return batch

    def _listable(self) -> int:
        """How many more sends this run can list in its search attributes.

        A search attribute value is limited in size (2 KB by default), so a run
        holds only as many sends as its prospect list can name; then it
        continues as new with an empty list. (Mailbox ids are listed while they
        fit: a campaign's pool is small and fixed.)
        """
        if not self._inp.tuning.search_attributes:
            return 1_000_000
        tuning = self._inp.tuning
        return ((tuning.attribute_budget - _listed_size(self._held_prospects))
                // (tuning.max_prospect_id_chars + 3))

    def _hold(self, sends: list[DueSend]) -> None:
        """List this page's prospects and mailboxes on the run: one upsert per page."""
        held = set(self._held_prospects)
        new_prospects = [p for p in dict.fromkeys(str(s.prospect_id) for s in sends) if p not in held]
        new_mailboxes = sorted({s.mailbox_id for s in sends} - set(self._held_mailboxes))
        if not self._inp.tuning.search_attributes or not (new_prospects or new_mailboxes):
            return
        self._held_prospects += new_prospects
        for mailbox in new_mailboxes:
            if _listed_size([*self._held_mailboxes, mailbox]) <= self._inp.tuning.attribute_budget:
                self._held_mailboxes.append(mailbox)
        workflow.upsert_search_attributes([
            PROSPECT_IDS_ATTR.value_set(list(self._held_prospects)),
            MAILBOX_IDS_ATTR.value_set(list(self._held_mailboxes)),
        ])

    def _saturated(self) -> set[str]:
        """Mailboxes with as many sends in flight as a claim may give them."""
        counts: dict[str, int] = {}
        for prospect in self._in_flight:
            mailbox = self._mailbox_of[prospect]
            counts[mailbox] = counts.get(mailbox, 0) + 1
        return {m for m, n in counts.items() if n >= self._inp.tuning.per_mailbox}

    async def _sleep(
        self, batch: DueSendsResult | None, room: int, now: datetime, ended_during_claim: bool,
        previous_done_during_claim: bool,
    ) -> None:
        """Sleep until there may be work: slots free up, a prospect falls due, a mailbox
        unblocks, the previous step sends more, or a signal arrives."""
        wakes = list(self._blocked.values())
        if batch and batch.next_due_at:
            wakes.append(batch.next_due_at)
        if not self._previous_done and self._inp.step > 1 and (batch is None or batch.sendable):
            # Whatever the step before sends from now on falls due a delay later.
            # (Step 1 of an open campaign has no step before: prospects added
            # come with a signal. With every mailbox paused or retired the step
            # before sends nothing: a resume tells this step, decision 0046.)
            wakes.append(now + max(self._inp.delay, self._inp.tuning.min_sleep))
        if batch is None or len(batch.sends) == room:
            threshold = self._inp.tuning.window // 2  # more may be due: refill when half free
        elif self._in_flight:
            # Fewer than asked: nothing else is due, or only for busy mailboxes.
            # Look again when half of those in flight have ended.
            threshold = len(self._in_flight) // 2
        elif batch is not None and batch.pending and ended_during_claim:
            # The claim counted sends that were in flight then and have ended since:
            # claim again now, or nothing would wake this step to see it is done.
            threshold = 0
        elif previous_done_during_claim:
            # The step before ended while the claim ran: claim once more with it
            # ended, since no timer for it is kept from now on.
            threshold = 0
        else:
            threshold = -1  # only a timer or a signal can bring work
        self._wake = False
        ready: Callable[[], bool] = lambda: self._wake or len(self._in_flight) <= threshold  # noqa: E731
        timeout = max(min(wakes) - now, timedelta(seconds=1)) if wakes else None
        # Nothing can wake an idle step but a signal: if a wake-up is ever lost
        # (a bug), it would sleep forever with work due. Claim once in a while
        # anyway. (patched: executions that began before kept their histories.)
        watchdog = timeout is None and not self._in_flight and workflow.patched(_STALL_CHECK_PATCH)
        if watchdog:
            timeout = self._inp.tuning.stall_check
        try:
            await workflow.wait_condition(ready, timeout=timeout)
        except TimeoutError:
            self._watchdog_fired = watchdog

    def _report_stall(self, found: list[DueSend]) -> None:
        """Due sends that no timer or signal would have claimed: a lost wake-up."""
        prospects = [s.prospect_id for s in found]
        workflow.logger.error(
            "step stalled: campaign %s step %d had %d due send(s) and nothing to wake it;"
            " claimed them after the stall check (prospects %s)",
            self._inp.campaign_id, self._inp.step, len(found), prospects,
        )
        workflow.metric_meter().create_counter(
            STEP_STALLS_METRIC, "Idle step workflows that found due sends only at the stall check."
        ).add(1)

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(lambda: not self._in_flight)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            self._inp.model_copy(
                update={
                    "previous_done": self._previous_done, "paused": self._paused,
                    "blocked": self._blocked, "outcomes": self._outcomes, "runs": self._inp.runs + 1,
                    "handed_off": sorted(self._handed_off),
                }
            ),
            # The next run lists only the sends it holds itself.
            search_attributes=(step_search_attributes(self._inp.campaign_id, self._inp.step)
                               if self._inp.tuning.search_attributes else None),
            # Whether it hears additions directly, for the client (decision 0048).
            memo=dict(workflow.memo()) if self._inp.generation else None,
        )

    async def _send(self, due: DueSend) -> None:
        key = SendKey(campaign_id=self._inp.campaign_id, step=self._inp.step,
                      prospect_id=due.prospect_id)
        try:
            await self._deliver(key, due.mailbox_id, due.closes_at)
        finally:
            self._ended += 1
            del self._in_flight[due.prospect_id]
            del self._mailbox_of[due.prospect_id]

    async def _gate(self, key: SendKey, mailbox_id: str, closes_at: datetime | None) -> GateResult | None:
        """The gate's answer, or None when the mailbox was blocked meanwhile. ``closes_at``:
        the recipient's window closes then, and the gate gives no slot past it (decision
        0051; an input field only, no new command, so histories replay as recorded)."""
        async with self._gate_locks.setdefault(mailbox_id, asyncio.Lock()):
            if self._blocked.get(mailbox_id, workflow.now()) > workflow.now():
                return None
            gate_input = GateInput(key=key, mailbox_id=mailbox_id, now=workflow.now(), closes_at=closes_at)
            result: GateResult
            if workflow.patched(_BOUNDED_GATE_PATCH):
                # Bounded; a failure waits on a timer (decision 0043). Runs that began
                # before keep the gate they had, unbounded, below.
                result = await _bounded_gate(gate_input, self._gate_failures)
            elif workflow.patched(_LOCAL_GATE_PATCH):
                # A local activity: one Redis script of a few milliseconds needs no
                # task queue round trip, and leaves one marker in the history
                # instead of three events (docs/decisions/0041). Re-running it after
                # a crash is safe: the reservation is keyed by the send.
                result = await workflow.execute_local_activity(
                    GATE_SEND, gate_input, result_type=GateResult,
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=_INFRA_RETRY,
                    summary=f"gate {key}",
                )
            else:
                result = await workflow.execute_activity(
                    GATE_SEND, gate_input, result_type=GateResult,
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=_INFRA_RETRY,
                    summary=f"gate {key}",
                )
            if result.verdict is GateVerdict.WAIT:
                assert result.until is not None
                self._block(mailbox_id, result.until)
            return result

    async def _deliver(self, key: SendKey, mailbox_id: str, closes_at: datetime | None) -> None:
        gate = await self._gate(key, mailbox_id, closes_at)
        if gate is None or gate.verdict is GateVerdict.WAIT:
            return  # back to the queue; the mailbox is skipped until the gate's instant
        if gate.until and gate.until > workflow.now():
            # A reserved slot (provider window, spacing, push-back): sleep until it.
            await workflow.sleep(
                gate.until - workflow.now(), summary=f"slot of {key}: {gate.reason or 'limits'}"
            )
        result = await self._attempts(key, mailbox_id, gate.reservation)
        if result is not None:
            await self._after_send(key, mailbox_id, result)

    async def _attempts(self, key: SendKey, mailbox_id: str, reservation: str) -> SendResult | None:
        """The send activity, under the send retry policy; None once a failed send is
        settled, or handed off.

        A soft bounce, and a retry whose place in the limits is later (decision 0042),
        end the execution unsent; the send then waits for its next attempt in a retry
        workflow of its own, so that this run never holds a send asleep between
        attempts and continues as new when it wants to (decision 0049). Runs that began
        before: a soft bounce retries inside the execution, and a retry waits for its
        place here, on a durable timer, with what is left of its attempts and schedule."""
        hands_off = workflow.patched(_HAND_OFF_PATCH)
        made = 0
        while True:
            try:
                result = await send_once(key, mailbox_id, reservation, made, self._inp.tuning,
                                         returns_soft_bounce=hands_off)
            except ActivityError as err:
                await self._settle_failed(key, err)
                return None
            if hands_off and result.outcome in (SendOutcome.SOFT_BOUNCED, SendOutcome.PLACE_LATER):
                await self._hand_off(key, mailbox_id, result)
                return None
            if result.outcome is not SendOutcome.PLACE_LATER:
                return result
            made, reservation = max(result.attempt - 1, 0), result.reservation
            if result.retry_at and result.retry_at > workflow.now():
                await workflow.sleep(result.retry_at - workflow.now(),
                                     summary=f"attempt {result.attempt} of {key} waits for its place:"
                                             f" {result.reason or 'a slot was busy'}")

    async def _hand_off(self, key: SendKey, mailbox_id: str, result: SendResult) -> None:
        """Give the send to its retry workflow, which outlives this run, and do not wait
        for it: the claim skips its prospect, and the step does not end, until that
        workflow hands it back (send_handed_back)."""
        at, made, reservation = next_attempt(result, self._inp.tuning.send_first_retry, workflow.now())
        # Before the start: its hand-back could arrive in the activation that starts it.
        self._handed_off.add(key.prospect_id)
        try:
            await workflow.start_child_workflow(
                SendRetryWorkflow.run,
                SendRetryInput(id_prefix=self._inp.id_prefix, key=key, mailbox_id=mailbox_id, retry_at=at,
                               attempts_made=made, reservation=reservation, tuning=self._inp.tuning),
                id=send_retry_workflow_id(self._inp.id_prefix, key.campaign_id, key.step, key.prospect_id),
                # It must outlive this run, which continues as new without waiting for it.
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"retries of {key} via {mailbox_id}",
            )
        except WorkflowAlreadyStartedError:
            # Already in its retry workflow (never expected: its prospect is not claimed
            # meanwhile); that one hands it back.
            workflow.logger.warning("send %s was handed off twice; its retry workflow runs", key)

    async def _after_send(self, key: SendKey, mailbox_id: str, result: SendResult) -> None:
        outcome = result.outcome
        self._outcomes[outcome.value] = self._outcomes.get(outcome.value, 0) + 1
        if outcome is SendOutcome.THROTTLED:
            # Not the recipient's fault: the host is pushed back with jitter (for
            # every worker, by the activity); the send goes again later with
            # all its attempts left.
            spread = self._inp.tuning.throttle_jitter.total_seconds()
            jitter = timedelta(seconds=workflow.random().uniform(0, spread))
            self._block(mailbox_id, result.retry_at or workflow.now() + jitter)
        elif outcome is SendOutcome.BUSY:
            # No connection or in-flight slot right now: they free up within seconds.
            self._block(mailbox_id, workflow.now() + timedelta(seconds=workflow.random().uniform(1, 5)))
        elif outcome is SendOutcome.MAILBOX_PAUSED:
            self._block(mailbox_id, workflow.now() + self._inp.tuning.paused_recheck)
        elif outcome is SendOutcome.SENDER_PROBLEM:
            await pause_mailbox(self._inp.id_prefix, mailbox_id, result)
            self._block(mailbox_id, workflow.now() + self._inp.tuning.paused_recheck)

    async def _settle_failed(self, key: SendKey, err: ActivityError) -> None:
        state = await settle_failed(key, err)
        self._outcomes[state] = self._outcomes.get(state, 0) + 1

    def _block(self, mailbox_id: str, until: datetime) -> None:
        self._blocked[mailbox_id] = max(until, self._blocked.get(mailbox_id, until))
        self._wake = True

    @workflow.signal
    def previous_step_done(self) -> None:
        self._previous_done = True
        self._wake = True

    @workflow.signal
    def prospects_added(self) -> None:
        """Prospects were added to the campaign: claim again. The campaign has
        restarted the steps before this one, so this one waits for them to end."""
        self._added += 1
        if self._inp.step > 1:
            self._previous_done = False
        self._wake = True

    @workflow.signal(name=STEP_PROSPECTS_ARRIVED_SIGNAL)
    def prospects_arrived(self) -> None:
        """Prospects were added, told by the client directly (decision 0048): claim
        again. Unlike prospects_added, the step before is not restarted by this: if it
        had ended, the client also told the campaign, which restarts it and tells
        this step prospects_added."""
        self._added += 1
        self._wake = True

    @workflow.signal(name=SEND_HANDED_BACK_SIGNAL)
    def send_handed_back(self, back: SendHandedBack) -> None:
        """A send's retry workflow has ended (decision 0049): its outcome counts, and
        its prospect may be claimed again (it went back to the queue) or the step end."""
        self._handed_off.discard(back.prospect_id)
        self._outcomes[back.outcome] = self._outcomes.get(back.outcome, 0) + 1
        self._ended += 1  # like a send in flight that ends: seen even during a claim
        self._wake = True

    @workflow.signal
    def delay_changed(self, delay: timedelta) -> None:
        """The step's delay was edited: claim again, so a due time the last claim
        gave (and the timer on it) is computed anew."""
        self._inp = self._inp.model_copy(update={"delay": delay})
        self._wake = True

    @workflow.signal
    def pause(self) -> None:
        self._paused = True

    @workflow.signal
    def resume(self) -> None:
        self._paused = False
        self._wake = True
