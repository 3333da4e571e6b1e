"""Mailbox health checks: log in to each mailbox's SMTP server, refresh OAuth2 tokens,
and pause or resume the mailbox through its MailboxWorkflow.

The workflow is reached by name (its type and signals in config/names.py), never by
importing its class: an activity does not know the workflows (docs/decisions/0022).

A mailbox whose login is refused (535, ...) or which is refused as a sender is
paused with the reason (``auth_failed: ...``, ``sender_problem: ...``); one a
health check paused and which logs in again is resumed. An operator's pause is
never touched: such mailboxes are not even checked. A connection failure is
transient (the host circuit breaker deals with it) and changes nothing.

Each run also looks up every mailbox's SPF, DKIM and DMARC records (as
`outreach mailboxes check-dns` does): a problem is logged and counted
(``outreach_sender_dns_problems``), never a pause: DNS is the operator's to fix,
and mail still goes out without a perfect record.
"""

from __future__ import annotations

import asyncio
import ssl

import asyncpg
import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.maintenance_models import HealthCheckInput, HealthCheckResult
from activities.models import PAUSED_BY_HEALTH_CHECK, MailboxInput
from activities.oauth_tokens import access_token
from config.names import (
    CHECK_MAILBOXES,
    HEALTH_PAUSE_SIGNAL,
    HEALTH_RESUME_SIGNAL,
    MAILBOX_WORKFLOW,
    mailbox_workflow_id,
    send_task_queue,
)
from config.secrets import KeyRing, key_ring
from config.settings import get_settings
from mail.errors import SmtpConfigError, SmtpConnectionFailed, SmtpRejected
from mail.oauth import TokenEndpoint, TokenRefreshFailed
from mail.outcomes import PauseReason
from mail.probe import TokenSource, probe_account
from mail.replies import ReplyClass
from mail.sender_dns import RECORDS, TxtLookup
from mail.transport import SmtpAccount, SmtpTimeouts
from store import accounts, sender_dns
from store.secret_values import CredentialError
from telemetry.metrics import SENDER_DNS_PROBLEMS

log = structlog.get_logger(__name__)


def pause_reason(exc: Exception) -> str | None:
    """The reason to pause a mailbox for, or None if the failure is not the mailbox's."""
    if isinstance(exc, SmtpRejected):
        summary = f"{exc.reply.code} {exc.reply.text}"
        if exc.stage == "auth":
            return PauseReason.AUTH_FAILED.text(summary)
        if exc.reply_class in (ReplyClass.SENDER_PROBLEM, ReplyClass.QUOTA):
            return PauseReason(exc.reply_class.value).text(summary)
        return None
    if isinstance(exc, TokenRefreshFailed):
        return PauseReason.AUTH_FAILED.text(f"token refresh: {exc}")
    if isinstance(exc, SmtpConfigError):
        return PauseReason.CONFIG_ERROR.text(str(exc))
    if isinstance(exc, CredentialError):  # its key was removed, or the value was altered
        return PauseReason.CONFIG_ERROR.text(f"credentials: {exc}")
    return None


class MailboxHealth:
    def __init__(
        self, pool: asyncpg.Pool, temporal: Client, id_prefix: str, timeouts: SmtpTimeouts,
        tokens: TokenEndpoint, tls_context: ssl.SSLContext | None = None,
        ring: KeyRing | None = None, dns: TxtLookup | None = None,
    ) -> None:
        self._pool = pool
        self._dns = dns or TxtLookup(get_settings().dns_resolver)
        # Opens the mailboxes' stored credentials (store/accounts.py); by default
        # the ring of OUTREACH_SECRET_KEYS.
        self._ring = ring or key_ring(get_settings().secret_keys)
        self._temporal = temporal
        self._prefix = id_prefix
        self._timeouts = timeouts
        self._tokens = tokens
        self._tls = tls_context

    @activity.defn(name=CHECK_MAILBOXES)
    async def check_mailboxes(self, inp: HealthCheckInput) -> HealthCheckResult:
        targets = await accounts.mailboxes_to_check(self._pool)
        gate = asyncio.Semaphore(inp.concurrency)
        verdicts = await asyncio.gather(*(self._check(mid, by, gate) for mid, by in targets))
        result = HealthCheckResult(checked=len(targets), healthy=0)
        for mailbox_id, verdict in zip((t[0] for t in targets), verdicts, strict=True):
            if verdict in ("healthy", "resumed"):
                result.healthy += 1
            if verdict in ("paused", "resumed", "unreachable"):
                getattr(result, verdict).append(mailbox_id)
        log.info("mailboxes_checked", checked=result.checked, healthy=result.healthy,
                 paused=result.paused, resumed=result.resumed, unreachable=result.unreachable)
        await self._check_dns()
        return result

    async def _check_dns(self) -> None:
        """The sending domains' records: logged and counted, never a pause, and never a
        failed health check (a DNS outage is not the mailboxes')."""
        try:
            reports = await sender_dns.check_senders(self._pool, self._dns)
        except Exception as exc:  # noqa: BLE001  # see the docstring
            log.warning("sender_dns_check_failed", error=str(exc))
            return
        for record in RECORDS:
            failing = sum(1 for r in reports if any(f.record == record for f in r.errors))
            SENDER_DNS_PROBLEMS.labels(record=record).set(failing)
        for report in reports:
            for f in report.findings:
                if f.level != "ok":
                    (log.warning if f.level == "error" else log.info)(
                        "sender_dns_problem", mailbox_id=report.mailbox_id, domain=report.domain,
                        record=f.record, level=f.level, detail=f.detail)

    async def _check(self, mailbox_id: str, paused_by: str | None, gate: asyncio.Semaphore) -> str:
        async with gate:
            try:
                await self._probe(mailbox_id)
            except (SmtpRejected, SmtpConfigError, TokenRefreshFailed, CredentialError) as exc:
                reason = pause_reason(exc)
                if reason is None:
                    log.warning("mailbox_check_refused", mailbox_id=mailbox_id, error=str(exc))
                    return "unreachable"
                if paused_by != PAUSED_BY_HEALTH_CHECK:
                    await self._signal(mailbox_id, HEALTH_PAUSE_SIGNAL, reason)
                    log.warning("mailbox_paused_by_health_check", mailbox_id=mailbox_id, reason=reason)
                    return "paused"
                return "failing"  # still paused by an earlier run
            except SmtpConnectionFailed as exc:
                log.warning("mailbox_unreachable", mailbox_id=mailbox_id, error=str(exc))
                return "unreachable"
            activity.heartbeat(mailbox_id)
            if paused_by == PAUSED_BY_HEALTH_CHECK:
                await self._signal(mailbox_id, HEALTH_RESUME_SIGNAL)
                log.info("mailbox_resumed_by_health_check", mailbox_id=mailbox_id)
                return "resumed"
            return "healthy"

    async def _probe(self, mailbox_id: str) -> None:
        record = await accounts.mailbox_record(self._pool, mailbox_id)
        grant = await accounts.oauth_grant(self._pool, mailbox_id, ring=self._ring)
        password = (None if grant
                    else await accounts.mailbox_password(self._pool, mailbox_id, ring=self._ring))
        account = SmtpAccount(
            mailbox_id=mailbox_id, host=record.smtp_host, port=record.smtp_port,
            security=record.security,  # type: ignore[arg-type]  # checked by the schema
            username=record.username, password=password,
        )
        token: TokenSource | None = None
        if grant is not None:
            access = await self._access_token(mailbox_id, grant)

            async def token_source() -> str:
                return access

            token = token_source
        await probe_account(account, self._timeouts, self._tls, token)

    async def _access_token(self, mailbox_id: str, grant: accounts.OAuthGrant) -> str:
        return await access_token(self._pool, self._tokens, mailbox_id, grant, ring=self._ring)

    async def _signal(self, mailbox_id: str, signal: str, *args: str) -> None:
        """Signal the mailbox's workflow, starting it first if it is not running."""
        record = await accounts.mailbox_record(self._pool, mailbox_id)
        paused_by = await accounts.pause_source(self._pool, mailbox_id)
        await self._temporal.start_workflow(
            MAILBOX_WORKFLOW,
            MailboxInput(mailbox_id=mailbox_id, paused=record.paused, reason=record.pause_reason,
                         paused_by=paused_by or ""),
            id=mailbox_workflow_id(self._prefix, mailbox_id),
            task_queue=send_task_queue(self._prefix),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=signal,
            start_signal_args=list(args),
        )
