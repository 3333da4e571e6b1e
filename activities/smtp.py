"""The SMTP send activity: one SMTP transaction for one send, recorded around DATA.

SMTP is not idempotent, so the ledger brackets DATA: the attempt is recorded
before, DATA's start is marked just before the message goes, and the reply is
recorded after. An attempt that finds DATA started but no reply recorded (the
worker died in between) ends the send as ``unknown`` instead of resending:
for cold email a duplicate is worse than a miss.

Each attempt comes to an event or a refusal; what that means (ledger state,
retry, refund, breaker, push-back, pause) is decided by one table,
mail/outcomes.py, and applied here: a connection failure raises (the retry
policy waits 5 min, 30 min, 2 h), and so does a soft bounce unless the caller
asked for it as a result (decision 0049: it then waits on a durable timer);
everything else returns an outcome the workflow acts on.

Every SMTP transaction has its own place in the limits (decision 0042): the first
attempt brings the gate's, and a retry asks for its own (provider minute, mailbox
spacing, breaker; its day's place it keeps). A place that is not now, or a slot
that is busy, ends the attempt unsent as ``PLACE_LATER``: the workflow sleeps on a
durable timer until then, rather than the activity waiting on a worker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from jinja2 import TemplateError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bounce_guard import BounceGuard
from activities.gate import Gate
from activities.models import SEND_MAX_ATTEMPTS, GateVerdict, SendInput, SendKey, SendOutcome, SendResult
from activities.oauth_tokens import access_token
from config.names import SEND_EMAIL
from config.secrets import KeyRing
from limits import LimitStoreUnavailable
from limits.policy import LimitPolicy
from limits.store import LimitStore, generation_of, reserved_instant
from mail import unsubscribe
from mail.errors import SmtpError, SmtpHostBusy, SmtpRejected
from mail.message import OutgoingMail, build_message, normalize_address
from mail.oauth import HttpTokenEndpoint, TokenEndpoint, TokenRefreshFailed
from mail.outcomes import (
    FINAL_STATES,
    AttemptPolicy,
    Breaker,
    Event,
    LedgerState,
    Refused,
    Retry,
    SendDecision,
    decide,
    transaction_result,
)
from mail.replies import SmtpReply
from mail.transport import MailTransport, SmtpAccount
from specs.campaigns import REPLY_PREFIX
from specs.templates import render
from store import ledger
from store.accounts import MailboxRecord, SendingMailbox
from store.address_hash import every_hash
from store.ledger import Reply, SendContext
from store.secret_values import CredentialError
from store.sender_identity import SenderIdentity
from telemetry.metrics import CIRCUIT_OPEN, SENDS, SENDS_IN_FLIGHT, SMTP_DURATION, UNEXPECTED
from variants import spintax
from variants.choice import KEY_PURPOSE, spin_pick

log = structlog.get_logger(__name__)

_ATTEMPTS = AttemptPolicy(max_attempts=SEND_MAX_ATTEMPTS)
# A retry's place this close is taken at once (a short sleep here); a later one is
# waited for by the workflow, on a durable timer. Well under any provider's pacing
# gap (60 s / 30 = 2 s for "other"), so a send never leaves far from its place.
PLACE_NOW_SECONDS = 1.0
# A retry that finds a slot busy (host connection, workspace, the limit store) asks
# for its place again this many seconds later, at random: slots free up within seconds.
BUSY_RETRY_SECONDS = (1.0, 5.0)


class PlacePassed(Exception):
    """The transaction reached DATA too long after its place in the limits and no place
    was free now (decision 0042); DATA was not sent."""


class StopBeforeData(Exception):
    """Something said "stop" after the transaction began (docs/decisions/0021); DATA
    was not sent. ``found`` says what."""

    def __init__(self, found: ledger.DataStart) -> None:
        super().__init__(found.value)
        self.found = found


@dataclass
class _Attempt:
    """One run of the send activity: what applying a decision needs to know."""

    inp: SendInput
    number: int  # the send's attempt number, from 1, across its executions
    # The place in the limits this transaction holds ('' until it has one): given back
    # if nothing is sent.
    reservation: str = ""
    mailbox: MailboxRecord | None = None  # once read
    attempt_id: int | None = None  # once the transaction is recorded in the ledger

    @property
    def known_mailbox(self) -> MailboxRecord:
        assert self.mailbox is not None, "no limit of a mailbox is touched before it is read"
        return self.mailbox


class SendActivities:
    def __init__(
        self, pool: asyncpg.Pool, transport: MailTransport, store: LimitStore, policy: LimitPolicy,
        tokens: TokenEndpoint | None = None, *, gate: Gate, ring: KeyRing,
        unsubscribe_base_url: str = "", guard: BounceGuard | None = None,
    ) -> None:
        self._pool = pool
        self._gate = gate  # a retry's own place in the limits (decision 0042)
        # Signs the unsubscribe tokens too; without a base URL a message offers only the mailto form.
        self._unsubscribe_base_url = unsubscribe_base_url
        self._guard = guard  # judges the mailbox after each hard bounce (decision 0033)
        self._ring = ring  # opens the mailboxes' stored credentials (store/accounts.py)
        self._variant_key = ring.derived_key(KEY_PURPOSE)  # spintax words (decision 0052)
        self._transport = transport
        self._store = store
        self._policy = policy
        self._tokens = tokens or HttpTokenEndpoint()

    @activity.defn(name=SEND_EMAIL)
    async def send_email(self, inp: SendInput) -> SendResult:
        k, execution_attempt = inp.key, activity.info().attempt
        at = _Attempt(inp, inp.attempts_before + execution_attempt,
                      # Only an execution's first attempt holds the place it was given.
                      reservation=inp.reservation if execution_attempt == 1 else "")
        structlog.contextvars.bind_contextvars(
            campaign_id=k.campaign_id, step=k.step, prospect_id=k.prospect_id, attempt=at.number,
        )
        try:
            with SENDS_IN_FLIGHT.track_inprogress():
                return await self._send(at)
        except ApplicationError:
            raise  # a retry: counted when it was decided
        except Exception:
            _count(UNEXPECTED)
            raise
        finally:
            structlog.contextvars.unbind_contextvars("campaign_id", "step", "prospect_id", "attempt")

    async def _send(self, at: _Attempt) -> SendResult:
        k = at.inp.key
        ctx = await ledger.send_context(self._pool, k.campaign_id, k.step, k.prospect_id)
        structlog.contextvars.bind_contextvars(mailbox_id=ctx.mailbox_id)
        if ctx.state in FINAL_STATES:
            return _counted(SendResult(outcome=SendOutcome(ctx.state)))  # already done: a no-op
        if ctx.data_started:
            return _counted(await self._unknown(at.inp))
        # Read with the context (one round trip), and known before any outcome below
        # gives back a place in the mailbox's limits.
        at.mailbox = mailbox = ctx.mailbox.record
        structlog.contextvars.bind_contextvars(provider=mailbox.provider)
        if ctx.prospect_status != "active":
            return await self._apply(at, Event.PROSPECT_INACTIVE, note=f"prospect {ctx.prospect_status}")
        if ctx.campaign_paused:  # back to the queue unsent; its prospect keeps its place
            return await self._apply(at, Event.CAMPAIGN_PAUSED, error="campaign paused")
        if mailbox.paused:
            return await self._apply(at, Event.PAUSED, error=mailbox.pause_reason)
        identity = ctx.identity  # read with the context (store.sender_identity.for_send's columns)
        try:
            message = build_message(_outgoing(mailbox, ctx, identity, self._links(at, ctx, identity), k,
                                              self._variant_key))
        except (ValueError, TemplateError) as exc:
            # Import checks these; a message that still cannot be built will
            # never be, so it fails now instead of being retried.
            return await self._apply(at, Event.UNBUILDABLE, error=str(exc), note=f"message not built: {exc}")
        try:
            account = await self._account(ctx.mailbox)
        except TokenRefreshFailed as exc:  # the grant was revoked or the client changed
            return await self._apply(at, Event.TOKEN_REFUSED, error=f"token refresh: {exc}")
        except CredentialError as exc:  # its key was removed, or the value was altered
            return await self._apply(at, Event.CREDENTIAL_UNREADABLE, error=f"credentials: {exc}")
        if not at.reservation:
            waiting = await self._take_place(at)
            if waiting is not None:
                return waiting
        in_flight = f"workspace:{ctx.workspace_id}"
        lease = f"{k}#{at.number}"
        try:
            if not await self._take_lease(in_flight, lease, at):
                return await self._apply(at, Event.WORKSPACE_BUSY, error="workspace in-flight limit")
        except LimitStoreUnavailable as exc:
            # Fail closed: no limits, no send. The workflow asks the gate again,
            # which keeps retrying until the store is back (and rebuilt).
            return await self._apply(at, Event.LIMITS_DOWN, error=str(exc))
        try:
            return await self._transact(at, ctx, account, message)
        finally:
            await self._best_effort(self._store.release_lease(in_flight, lease))

    def _links(self, at: _Attempt, ctx: SendContext, identity: SenderIdentity) -> _Links:
        """This send's unsubscribe token as the one-click URL (when a base URL is set) and
        the mailto form (docs/decisions/0030)."""
        k = at.inp.key
        token = unsubscribe.sign(
            self._ring, unsubscribe.SendKey(ctx.workspace_id, k.campaign_id, k.step, k.prospect_id)
        )
        url = (unsubscribe.unsubscribe_url(self._unsubscribe_base_url, token)
               if self._unsubscribe_base_url else None)
        mailto = unsubscribe.mailto_url(normalize_address(identity.unsubscribe_mailto), token)
        return _Links(url, mailto)

    async def _best_effort(self, call: Awaitable[object]) -> None:
        """Limit bookkeeping after a transaction must not lose the transaction's
        outcome; a lease not released expires by itself."""
        try:
            await call
        except LimitStoreUnavailable as exc:
            log.warning("limit_store_unavailable", error=str(exc))

    async def _transact(
        self, at: _Attempt, ctx: SendContext, account: SmtpAccount, message: bytes
    ) -> SendResult:
        k, mailbox = at.inp.key, at.known_mailbox
        at.attempt_id = await ledger.begin_attempt(self._pool, k.campaign_id, k.step, k.prospect_id,
                                                   reserved_instant(at.reservation))
        # Stored addresses are normalized: lower-cased, each is its list entry (decision 0026).
        erased = every_hash(self._ring, ctx.prospect_email.lower())

        async def before_data() -> None:
            await self._keep_place(at)
            found = await ledger.mark_data_started(self._pool, k.campaign_id, k.step, k.prospect_id,
                                                   erased)
            if found is not ledger.DataStart.GO:
                raise StopBeforeData(found)

        try:
            reply = await _timed(mailbox, self._transport.send(
                account, mailbox.email, ctx.prospect_email, message, before_data=before_data))
        except PlacePassed as late:
            return await self._apply(at, Event.PLACE_PASSED, error=str(late))
        except StopBeforeData as stop:
            if stop.found is ledger.DataStart.PAUSED:
                return await self._apply(at, Event.PAUSED_BEFORE_DATA)
            if stop.found is ledger.DataStart.CAMPAIGN_PAUSED:
                return await self._apply(at, Event.CAMPAIGN_PAUSED_BEFORE_DATA, error="campaign paused")
            log.info("send_stopped_before_data", why=stop.found.value)
            if stop.found is ledger.DataStart.SUPPRESSED:  # the prospect's state says so too
                await ledger.suppress_prospect(self._pool, k.prospect_id, "suppressed")
            return await self._apply(at, Event.STOPPED_BEFORE_DATA, error=stop.found.value)
        except LimitStoreUnavailable as exc:  # the host's connection slots could not be asked
            return await self._apply(at, Event.HOST_BUSY, error=str(exc))
        except SmtpError as exc:
            came_to = transaction_result(exc)
            if came_to is None:
                raise
            if isinstance(exc, SmtpRejected):
                return await self._apply(at, came_to, reply=exc.reply)
            result = await self._apply(at, came_to, error=str(exc))
            if came_to is Event.OUTCOME_UNKNOWN:
                log.error("send_outcome_unknown", error=str(exc))
            return result
        result = await self._apply(at, Event.DELIVERED, reply=reply)
        log.info("send_accepted", code=reply.code)
        return result

    async def _apply(
        self, at: _Attempt, result: Event | Refused, *, reply: SmtpReply | None = None,
        error: str = "", note: str = "",
    ) -> SendResult:
        """Do what `decide` says this result means (docs/decisions/0021-send-outcomes-table.md).

        ``error`` is what went wrong (recorded with the attempt, and the result's
        reason); ``note`` is why a send that never began a transaction ended.
        """
        d = decide(result, at.number, _ATTEMPTS)
        detail = f"{reply.code} {reply.text}" if reply else error
        if d.breaker is not None:
            await self._connection_result(at, ok=d.breaker is Breaker.UP)
        retry_at = (await self._push_back(at.known_mailbox) if d.push_back
                    else _soon() if d.outcome is SendOutcome.PLACE_LATER else None)
        if d.ledger is not None:
            await self._record(at, d, reply, error, note)
        if d.suppress:
            await ledger.suppress_prospect(self._pool, at.inp.key.prospect_id, "hard_bounced")
            await self._judge_bounce_rate(at)
        if d.refund and at.reservation:
            await self._best_effort(self._store.refund(at.known_mailbox.provider, at.reservation))
        if d.releases_day:
            await self._release_day(at)
        _count(d.metric)
        if d.retry is Retry.SOFT_BOUNCE and at.inp.returns_soft_bounce:
            # The caller sleeps until the next attempt on a durable timer, outside any
            # execution, so nothing waits on a step run (decision 0049).
            return SendResult(outcome=SendOutcome.SOFT_BOUNCED, code=reply.code if reply else None,
                              reply=detail, attempt=at.number)
        if d.retry is not None:
            # No cause chain (`from None`): the reply is in the message, and the chain's
            # stack traces made the encrypted failure larger than the server keeps for
            # a retry's last failure ("Failure exceeds size limit": the reply was lost).
            raise ApplicationError(f"{d.recorded}: {detail}", type=d.retry.value) from None
        assert d.outcome is not None
        return SendResult(
            outcome=d.outcome, code=reply.code if reply else None,
            # A send out of attempts shows what ended it.
            reply=detail if d.exhausted else (reply.text if reply else ""),
            reason=(d.pause_reason.text(detail) if d.pause_reason
                    else "" if d.exhausted else error),
            retry_at=retry_at, pause=d.pause, attempt=at.number,
        )

    async def _release_day(self, at: _Attempt) -> None:
        """Nothing was sent: the send's place in its mailbox's day goes back, in the
        ledger first (what a rebuild counts), then in Redis, so that a mailbox whose cap
        binds sends exactly its cap (a held place would go unused until tomorrow)."""
        k = at.inp.key
        await ledger.release_day(self._pool, k.campaign_id, k.step, k.prospect_id)
        if at.mailbox is not None:  # else its limits were never touched
            await self._best_effort(self._store.release_day(at.mailbox.id, str(k)))

    async def _judge_bounce_rate(self, at: _Attempt) -> None:
        """After a hard bounce is recorded: the bounce-rate guard. Its failure must not
        lose the send's outcome (a retry would find the send final and judge nothing),
        so it is logged instead; the next hard bounce judges again."""
        if self._guard is None:
            return
        try:
            await self._guard.after_bounce(at.known_mailbox.id)
        except Exception as exc:  # noqa: BLE001  # logged, never raised: see above
            log.error("bounce_guard_failed", error=str(exc))

    async def _record(
        self, at: _Attempt, d: SendDecision, reply: SmtpReply | None, error: str, note: str
    ) -> None:
        """The attempt's outcome and the send's new state; a send that never began a
        transaction is settled instead, with the note saying why."""
        assert d.ledger is not None
        k = at.inp.key
        if at.attempt_id is None:
            await ledger.settle_open(self._pool, k.campaign_id, k.step, k.prospect_id, d.ledger, note)
            return
        assert d.recorded is not None
        recorded = Reply(reply.code, reply.enhanced, reply.text) if reply else Reply(None, None, error)
        await ledger.finish_attempt(
            self._pool, k.campaign_id, k.step, k.prospect_id, at.attempt_id, d.ledger, d.recorded,
            recorded,
        )

    async def _push_back(self, mailbox: MailboxRecord) -> datetime:
        """Not the recipient's fault: back the whole host off, with jitter so that
        the sends it pushes back do not all return together."""
        jitter = self._policy.throttle_jitter.total_seconds() * random.random()
        retry_at = datetime.now(UTC) + timedelta(seconds=jitter)
        await self._best_effort(self._store.push_back(mailbox.smtp_host, retry_at))
        return retry_at

    async def _account(self, sending: SendingMailbox) -> SmtpAccount:
        mailbox = sending.record
        grant = sending.grant(self._ring)
        token = (await access_token(self._pool, self._tokens, mailbox.id, grant, ring=self._ring)
                 if grant else None)
        password = None if grant else sending.password(self._ring)
        return SmtpAccount(
            mailbox_id=mailbox.id, host=mailbox.smtp_host, port=mailbox.smtp_port,
            security=mailbox.security,  # type: ignore[arg-type]  # checked by the schema
            username=mailbox.username, password=password, oauth_token=token,
            max_connections=self._policy.connections(mailbox.provider),
        )

    async def _take_place(self, at: _Attempt) -> SendResult | None:
        """A retry's own place in the limits: taken now (None), or PLACE_LATER with the
        instant the workflow sleeps until. It keeps its day's place (the store knows the
        send) but not its spacing or provider slot: those are for the transaction that
        really goes out, in the minute it goes (decision 0042)."""
        k, mailbox = at.inp.key, at.known_mailbox
        try:
            place = await self._gate.ask(mailbox.id, str(k), datetime.now(UTC))
        except LimitStoreUnavailable as exc:  # fail closed: no limits, no send
            return await self._apply(at, Event.LIMITS_DOWN, error=str(exc))
        wait = (place.until - datetime.now(UTC)).total_seconds() if place.until else 0.0
        if place.verdict is GateVerdict.GO and wait <= PLACE_NOW_SECONDS:
            at.reservation = place.reservation
            if wait > 0:
                await asyncio.sleep(wait)
            return None
        log.info("retry_waits_for_its_place", until=str(place.until), reason=place.reason)
        return SendResult(outcome=SendOutcome.PLACE_LATER, retry_at=place.until, reason=place.reason,
                          reservation=place.reservation, attempt=at.number)

    async def _keep_place(self, at: _Attempt) -> None:
        """Right before DATA: a transaction held back past its place (a hung transaction
        of the same mailbox held its connection, a slow connect) must not add itself to a
        later minute that is full. Within the lateness allowed it goes; later, it asks for
        a place now, and gives the late one back; no place now raises PlacePassed."""
        placed = reserved_instant(at.reservation)
        now = datetime.now(UTC)
        if placed is None or now - placed <= self._policy.place_lateness:
            return
        late, mailbox = now - placed, at.known_mailbox
        await self._best_effort(self._store.refund(mailbox.provider, at.reservation))
        at.reservation = ""
        try:
            place = await self._gate.ask(mailbox.id, str(at.inp.key), now)
        except LimitStoreUnavailable as exc:
            raise PlacePassed(f"{late.total_seconds():.1f} s late for its place; limits: {exc}") from exc
        if place.verdict is GateVerdict.GO:
            at.reservation = place.reservation
            wait = (place.until - datetime.now(UTC)).total_seconds() if place.until else 0.0
            if wait <= PLACE_NOW_SECONDS:
                await asyncio.sleep(max(wait, 0.0))
                assert at.attempt_id is not None
                await ledger.move_place(self._pool, at.attempt_id, reserved_instant(at.reservation))
                return
        raise PlacePassed(f"{late.total_seconds():.1f} s late for its place; the next is at"
                          f" {place.until:%H:%M:%S} ({place.reason or 'limits'})")

    async def _take_lease(self, scope: str, lease: str, at: _Attempt) -> bool:
        """A workspace in-flight slot, now or not at all: a transaction must not leave
        long after its place (a first attempt goes back to the queue, a retry asks for a
        place again shortly). Its provider place must still be one the store remembers:
        granted before the store lost its state, it was forgotten (docs/decisions/0029),
        and the send asks again."""
        ttl = timedelta(seconds=self._policy.workspace_lease_seconds)
        return await self._store.acquire_lease(
            scope, lease, self._policy.workspace_in_flight, datetime.now(UTC), ttl,
            generation_of(at.reservation),
        )

    async def _connection_result(self, at: _Attempt, ok: bool) -> None:
        """Feed the host's circuit breaker: a reply means the host is up. The attempt
        has ended: its connection is open at most for its idle time from now."""
        p, mailbox, now = self._policy, at.known_mailbox, datetime.now(UTC)
        attempt = str(at.attempt_id) if at.attempt_id is not None else ""
        try:
            opened = await self._store.record_connection(
                mailbox.smtp_host, ok, now, p.breaker_failures, p.breaker_open_for,
                attempt, now + p.connection_idle,
            )
        except LimitStoreUnavailable as exc:
            log.warning("limit_store_unavailable", error=str(exc))
            return
        CIRCUIT_OPEN.labels(host=mailbox.smtp_host).set(1 if opened else 0)
        if opened and not ok:
            log.warning("circuit_open", host=mailbox.smtp_host)

    async def _unknown(self, inp: SendInput) -> SendResult:
        """DATA began on an earlier attempt and no reply was recorded: never resend."""
        k, why = inp.key, "a previous attempt began DATA and never recorded a reply"
        state = await ledger.settle_open(
            self._pool, k.campaign_id, k.step, k.prospect_id, LedgerState.UNKNOWN, why
        )
        log.error("send_outcome_unknown", reason=why, state=state)
        return SendResult(outcome=SendOutcome(state), reason=why)


def _soon() -> datetime:
    """When a retry that found a slot busy asks for its place again."""
    return datetime.now(UTC) + timedelta(seconds=random.uniform(*BUSY_RETRY_SECONDS))


def _count(outcome: str) -> None:
    """One send attempt's outcome class, under the provider bound once its mailbox was read."""
    provider = structlog.contextvars.get_contextvars().get("provider", "unresolved")
    SENDS.labels(provider=provider, outcome=outcome).inc()


def _counted(result: SendResult) -> SendResult:
    _count(result.outcome.value)
    return result


async def _timed(mailbox: MailboxRecord, transaction: Awaitable[SmtpReply]) -> SmtpReply:
    """The SMTP latency of a transaction that reached a server (no free connection: not timed)."""
    started, reached = time.monotonic(), True
    try:
        return await transaction
    except SmtpHostBusy:
        reached = False
        raise
    finally:
        if reached:
            SMTP_DURATION.labels(provider=mailbox.provider).observe(time.monotonic() - started)


@dataclass(frozen=True)
class _Links:
    url: str | None  # the one-click https address, when the worker has a base URL
    mailto: str

    @property
    def visible(self) -> str:
        """What a footer or ``{{ unsubscribe_url }}`` shows: the page, else the mailto."""
        return self.url or self.mailto


def _templates(ctx: SendContext, key: SendKey, variant_key: bytes) -> tuple[str, str]:
    """The send's subject and body templates, spintax resolved by the keyed hash
    (docs/decisions/0052): the same words on every attempt. A threading follow-up
    takes "Re: " and step 1's subject as this prospect's step 1 resolved it."""
    if not ctx.spun:
        return ctx.subject or "", ctx.body  # a campaign from before variants: as stored

    def spun(text: str, step: int, variant: str, part: str) -> str:
        pick = spin_pick(variant_key, key.campaign_id, step, key.prospect_id, variant, part)
        return spintax.resolve(spintax.parse(text), pick)

    body = spun(ctx.body, key.step, ctx.variant, "body")
    if ctx.subject is not None:
        return spun(ctx.subject, key.step, ctx.variant, "subject"), body
    return REPLY_PREFIX + spun(ctx.first_subject or "", 1, ctx.first_variant, "subject"), body


def _outgoing(
    mailbox: MailboxRecord, ctx: SendContext, identity: SenderIdentity, links: _Links, key: SendKey,
    variant_key: bytes,
) -> OutgoingMail:
    fields = {"email": ctx.prospect_email, **ctx.fields, "unsubscribe_url": links.visible}
    earlier = ctx.earlier_message_ids
    subject, body = _templates(ctx, key, variant_key)
    body = render(body, fields)
    return OutgoingMail(
        from_address=mailbox.email, to_address=ctx.prospect_email,
        subject=render(subject, fields),
        body=unsubscribe.with_footer(body, links.visible) if identity.footer else body,
        message_id=ctx.message_id, in_reply_to=earlier[-1] if earlier else None,
        references=earlier, from_name=identity.from_name, reply_to=identity.reply_to,
        unsubscribe_url=links.url, unsubscribe_mailto=links.mailto,
    )
