"""The SMTP send activity: one SMTP transaction for one send, recorded around DATA.

SMTP is not idempotent, so the ledger brackets DATA: the attempt is recorded
before, DATA's start is marked just before the message goes, and the reply is
recorded after. An attempt that finds DATA started but no reply recorded (the
worker died in between) ends the send as ``unknown`` instead of resending:
for cold email a duplicate is worse than a miss.

Retryability is decided here: a soft bounce or a connection failure raises
(the retry policy waits 5 min, 30 min, 2 h); everything else returns an
outcome the workflow acts on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from jinja2 import TemplateError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import FINAL_OUTCOMES, SEND_MAX_ATTEMPTS, SendInput, SendOutcome, SendResult
from activities.oauth_tokens import access_token
from config.secrets import KeyRing
from limits import LimitStoreUnavailable
from limits.policy import LimitPolicy
from limits.store import LimitStore
from mail.errors import (
    SmtpConfigError,
    SmtpConnectionFailed,
    SmtpHostBusy,
    SmtpOutcomeUnknown,
    SmtpRejected,
)
from mail.message import OutgoingMail, build_message
from mail.oauth import HttpTokenEndpoint, TokenEndpoint, TokenRefreshFailed
from mail.replies import ReplyClass, SmtpReply
from mail.transport import MailTransport, SmtpAccount
from specs.templates import render
from store import accounts, ledger
from store.accounts import MailboxRecord
from store.ledger import Reply, SendContext
from store.secret_values import CredentialError
from telemetry.metrics import CIRCUIT_OPEN, RAISED_OUTCOMES, SENDS, SENDS_IN_FLIGHT, SMTP_DURATION

log = structlog.get_logger(__name__)

# How long a retry waits for a host connection slot (well inside the activity's
# start-to-close, which also covers the workspace slot wait and the transaction).
HOST_BUSY_PATIENCE_SECONDS = 30.0


class MailboxPausedBeforeData(Exception):
    """The mailbox was paused after the transaction began; DATA was not sent."""


class SendActivities:
    def __init__(
        self, pool: asyncpg.Pool, transport: MailTransport, store: LimitStore, policy: LimitPolicy,
        tokens: TokenEndpoint | None = None, *, ring: KeyRing,
    ) -> None:
        self._pool = pool
        self._ring = ring  # opens the mailboxes' stored credentials (store/accounts.py)
        self._transport = transport
        self._store = store
        self._policy = policy
        self._tokens = tokens or HttpTokenEndpoint()

    @activity.defn(name="send_email")
    async def send_email(self, inp: SendInput) -> SendResult:
        k = inp.key
        structlog.contextvars.bind_contextvars(
            campaign_id=k.campaign_id, step=k.step, prospect_id=k.prospect_id,
            attempt=activity.info().attempt,
        )
        try:
            with SENDS_IN_FLIGHT.track_inprogress():
                result = await self._send(inp)
        except ApplicationError as exc:
            _count(RAISED_OUTCOMES.get(exc.type or "", "error"))
            raise
        except Exception:
            _count("error")
            raise
        finally:
            structlog.contextvars.unbind_contextvars("campaign_id", "step", "prospect_id", "attempt")
        _count(result.outcome.value)
        return result

    async def _send(self, inp: SendInput) -> SendResult:
        k = inp.key
        ctx = await ledger.send_context(self._pool, k.campaign_id, k.step, k.prospect_id)
        structlog.contextvars.bind_contextvars(mailbox_id=ctx.mailbox_id)
        if ctx.state in {o.value for o in FINAL_OUTCOMES}:
            return SendResult(outcome=SendOutcome(ctx.state))  # already done: a no-op
        if ctx.data_started:
            return await self._unknown(inp, "a previous attempt began DATA and never recorded a reply")
        if ctx.prospect_status != "active":
            await self._settle(inp, "skipped", f"prospect {ctx.prospect_status}")
            return SendResult(outcome=SendOutcome.SKIPPED)
        mailbox = await accounts.mailbox_record(self._pool, ctx.mailbox_id)
        structlog.contextvars.bind_contextvars(provider=mailbox.provider)
        if mailbox.paused:
            return await self._unused(inp, mailbox, SendResult(
                outcome=SendOutcome.MAILBOX_PAUSED, reason=mailbox.pause_reason))
        try:
            message = build_message(_outgoing(mailbox, ctx))
        except (ValueError, TemplateError) as exc:
            # Import checks these; a message that still cannot be built will
            # never be, so it fails now instead of being retried.
            await self._settle(inp, "failed", f"message not built: {exc}")
            return SendResult(outcome=SendOutcome.FAILED, reason=str(exc))
        try:
            account = await self._account(mailbox)
        except TokenRefreshFailed as exc:  # the grant was revoked or the client changed
            return SendResult(outcome=SendOutcome.SENDER_PROBLEM,
                              reason=f"auth_failed: token refresh: {exc}"[:300])
        except CredentialError as exc:  # its key was removed, or the value was altered
            return SendResult(outcome=SendOutcome.SENDER_PROBLEM,
                              reason=f"config_error: credentials: {exc}"[:300])
        in_flight = f"workspace:{ctx.workspace_id}"
        lease = f"{k}#{activity.info().attempt}"
        try:
            if not await self._wait_for_lease(in_flight, lease):
                return await self._unused(inp, mailbox, SendResult(
                    outcome=SendOutcome.BUSY, reason="workspace in-flight limit"))
        except LimitStoreUnavailable as exc:
            # Fail closed: no limits, no send. The workflow asks the gate again,
            # which keeps retrying until the store is back (and rebuilt).
            return SendResult(outcome=SendOutcome.BUSY, reason=str(exc))
        try:
            return await self._transact(inp, mailbox, ctx, account, message)
        finally:
            await self._best_effort(self._store.release_lease(in_flight, lease))

    async def _unused(self, inp: SendInput, mailbox: MailboxRecord, result: SendResult) -> SendResult:
        """Nothing was sent: give back the provider slot the gate reserved for it."""
        if inp.reservation and activity.info().attempt == 1:
            await self._best_effort(self._store.refund(mailbox.provider, inp.reservation))
        return result

    async def _best_effort(self, call: Awaitable[object]) -> None:
        """Limit bookkeeping after a transaction must not lose the transaction's
        outcome; a lease not released expires by itself."""
        try:
            await call
        except LimitStoreUnavailable as exc:
            log.warning("limit_store_unavailable", error=str(exc))

    async def _transact(
        self, inp: SendInput, mailbox: MailboxRecord, ctx: SendContext, account: SmtpAccount,
        message: bytes,
    ) -> SendResult:
        k = inp.key
        attempt_id = await ledger.begin_attempt(self._pool, k.campaign_id, k.step, k.prospect_id)

        async def before_data() -> None:
            if not await ledger.mark_data_started(self._pool, k.campaign_id, k.step, k.prospect_id):
                raise MailboxPausedBeforeData(mailbox.id)

        try:
            reply = await self._send_patiently(mailbox, account, ctx.prospect_email, message,
                                               before_data)
        except MailboxPausedBeforeData:
            await self._finish(inp, attempt_id, "queued", "mailbox_paused", None)
            return await self._unused(inp, mailbox, SendResult(outcome=SendOutcome.MAILBOX_PAUSED))
        except (SmtpHostBusy, LimitStoreUnavailable) as exc:
            await self._finish(inp, attempt_id, "queued", "host_busy", None, str(exc))
            if activity.info().attempt > 1:  # a retry must not start over with 4 new attempts
                raise ApplicationError(f"host busy: {exc}", type="HostBusy") from None
            return await self._unused(inp, mailbox, SendResult(outcome=SendOutcome.BUSY,
                                                               reason=str(exc)))
        except SmtpOutcomeUnknown as exc:
            await self._connection_result(mailbox, ok=False)
            await self._finish(inp, attempt_id, "unknown", "unknown", None, str(exc))
            log.error("send_outcome_unknown", error=str(exc))
            return SendResult(outcome=SendOutcome.UNKNOWN, reason=str(exc))
        except SmtpRejected as exc:
            await self._connection_result(mailbox, ok=True)
            return await self._rejected(inp, mailbox, attempt_id, exc)
        except SmtpConfigError as exc:
            await self._finish(inp, attempt_id, "queued", "config_error", None, str(exc))
            # MailboxWorkflow.pause knows this kind: a later good health check lifts it.
            return SendResult(outcome=SendOutcome.SENDER_PROBLEM,
                              reason=f"config_error: {exc}"[:300])
        except SmtpConnectionFailed as exc:
            await self._connection_result(mailbox, ok=False)
            return await self._retry_or_fail(inp, attempt_id, "connection", None, str(exc))
        await self._connection_result(mailbox, ok=True)
        await self._finish(inp, attempt_id, "sent", "sent", reply)
        log.info("send_accepted", code=reply.code)
        return SendResult(outcome=SendOutcome.SENT, code=reply.code, reply=reply.text)

    async def _account(self, mailbox: MailboxRecord) -> SmtpAccount:
        grant = await accounts.oauth_grant(self._pool, mailbox.id, ring=self._ring)
        token = (await access_token(self._pool, self._tokens, mailbox.id, grant, ring=self._ring)
                 if grant else None)
        password = (None if grant
                    else await accounts.mailbox_password(self._pool, mailbox.id, ring=self._ring))
        return SmtpAccount(
            mailbox_id=mailbox.id, host=mailbox.smtp_host, port=mailbox.smtp_port,
            security=mailbox.security,  # type: ignore[arg-type]  # checked by the schema
            username=mailbox.username, password=password, oauth_token=token,
            max_connections=self._policy.connections(mailbox.provider),
        )

    async def _send_patiently(
        self, mailbox: MailboxRecord, account: SmtpAccount, rcpt: str, message: bytes,
        before_data: Callable[[], Awaitable[None]],
    ) -> SmtpReply:
        """The transaction; a retry that finds every connection slot of the host taken
        waits a little for one instead of spending one of the recipient's attempts on
        it (a killed worker's connection leases hold slots until they expire: found by
        the chaos suite). A first attempt gives the send back to the workflow at once."""
        patience = 0.0 if activity.info().attempt == 1 else HOST_BUSY_PATIENCE_SECONDS
        deadline = time.monotonic() + patience
        while True:
            try:
                return await _timed(mailbox, self._transport.send(
                    account, mailbox.email, rcpt, message, before_data=before_data
                ))
            except SmtpHostBusy:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(random.uniform(0.5, 2.0))

    async def _wait_for_lease(self, scope: str, lease: str) -> bool:
        """A workspace in-flight slot; a first attempt gives up at once (the workflow
        tries again shortly), a retry waits a little for one."""
        patience = 0.0 if activity.info().attempt == 1 else 60.0
        deadline = time.monotonic() + patience
        ttl = timedelta(seconds=self._policy.workspace_lease_seconds)
        while not await self._store.acquire_lease(
            scope, lease, self._policy.workspace_in_flight, datetime.now(UTC), ttl
        ):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(random.uniform(0.2, 1.0))
        return True

    async def _connection_result(self, mailbox: MailboxRecord, ok: bool) -> None:
        """Feed the host's circuit breaker: a reply means the host is up."""
        p = self._policy
        try:
            opened = await self._store.record_connection(
                mailbox.smtp_host, ok, datetime.now(UTC), p.breaker_failures, p.breaker_open_for
            )
        except LimitStoreUnavailable as exc:
            log.warning("limit_store_unavailable", error=str(exc))
            return
        CIRCUIT_OPEN.labels(host=mailbox.smtp_host).set(1 if opened else 0)
        if opened and not ok:
            log.warning("circuit_open", host=mailbox.smtp_host)

    async def _rejected(
        self, inp: SendInput, mailbox: MailboxRecord, attempt_id: int, exc: SmtpRejected
    ) -> SendResult:
        reply = exc.reply
        kind = reply.reply_class
        summary = f"{reply.code} {reply.text}"
        if kind is ReplyClass.HARD_BOUNCE:
            await self._finish(inp, attempt_id, "hard_bounced", kind.value, reply)
            await ledger.suppress_prospect(self._pool, inp.key.prospect_id, "hard_bounced")
            return SendResult(outcome=SendOutcome.HARD_BOUNCED, code=reply.code, reply=reply.text)
        if kind is ReplyClass.THROTTLED:
            # Not the recipient's fault: back the whole host off, with jitter so
            # that the sends it pushes back do not all return together.
            jitter = self._policy.throttle_jitter.total_seconds() * random.random()
            retry_at = datetime.now(UTC) + timedelta(seconds=jitter)
            await self._best_effort(self._store.push_back(mailbox.smtp_host, retry_at))
            await self._finish(inp, attempt_id, "queued", kind.value, reply)
            return SendResult(outcome=SendOutcome.THROTTLED, code=reply.code, reply=reply.text,
                              retry_at=retry_at)
        if kind in (ReplyClass.SENDER_PROBLEM, ReplyClass.QUOTA):
            # The mailbox's fault, never the recipient's: pause it, keep the send.
            await self._finish(inp, attempt_id, "queued", kind.value, reply)
            label = "auth_failed" if exc.stage == "auth" else kind.value
            return SendResult(outcome=SendOutcome.SENDER_PROBLEM, code=reply.code,
                              reply=reply.text, reason=f"{label}: {summary}"[:300])
        return await self._retry_or_fail(inp, attempt_id, kind.value, reply, summary)

    async def _retry_or_fail(
        self, inp: SendInput, attempt_id: int, outcome: str, reply: SmtpReply | None, summary: str
    ) -> SendResult:
        """A soft bounce or a connection failure: retry by raising, or fail on the last attempt."""
        if activity.info().attempt >= SEND_MAX_ATTEMPTS:
            await self._finish(inp, attempt_id, "failed", outcome, reply, summary)
            return SendResult(outcome=SendOutcome.FAILED, code=reply.code if reply else None,
                              reply=summary)
        state = "soft_bounced" if reply is not None else "queued"
        await self._finish(inp, attempt_id, state, outcome, reply, summary)
        # No cause chain (`from None`): the reply is in the message, and the chain's
        # stack traces made the encrypted failure larger than the server keeps for
        # a retry's last failure ("Failure exceeds size limit": the reply was lost).
        raise ApplicationError(
            f"{outcome}: {summary}", type="SoftBounce" if reply else "SmtpConnection"
        ) from None

    async def _unknown(self, inp: SendInput, why: str) -> SendResult:
        k = inp.key
        state = await ledger.settle_open(self._pool, k.campaign_id, k.step, k.prospect_id, "unknown", why)
        log.error("send_outcome_unknown", reason=why, state=state)
        return SendResult(outcome=SendOutcome(state), reason=why)

    async def _settle(self, inp: SendInput, state: str, why: str) -> None:
        k = inp.key
        await ledger.settle_open(self._pool, k.campaign_id, k.step, k.prospect_id, state, why)

    async def _finish(
        self, inp: SendInput, attempt_id: int, state: str, outcome: str,
        reply: SmtpReply | None, text: str = "",
    ) -> None:
        k = inp.key
        recorded = Reply(reply.code, reply.enhanced, reply.text) if reply else Reply(None, None, text)
        await ledger.finish_attempt(
            self._pool, k.campaign_id, k.step, k.prospect_id, attempt_id, state, outcome, recorded
        )


def _count(outcome: str) -> None:
    """One send attempt's outcome class, under the provider bound once its mailbox was read."""
    provider = structlog.contextvars.get_contextvars().get("provider", "unresolved")
    SENDS.labels(provider=provider, outcome=outcome).inc()


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


def _outgoing(mailbox: MailboxRecord, ctx: SendContext) -> OutgoingMail:
    fields = {"email": ctx.prospect_email, **ctx.fields}
    earlier = ctx.earlier_message_ids
    return OutgoingMail(
        from_address=mailbox.email, to_address=ctx.prospect_email,
        subject=render(ctx.subject, fields), body=render(ctx.body, fields),
        message_id=ctx.message_id, in_reply_to=earlier[-1] if earlier else None,
        references=earlier,
    )
