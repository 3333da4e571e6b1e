"""What a send worker runs: its workflows, and its activities built over shared clients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis

from activities.bounce_guard import BounceGuard
from activities.gate import GateActivities
from activities.ledger import LedgerActivities
from activities.mailbox import MailboxActivities
from activities.smtp import SendActivities
from activities.step_watch import StepWatchActivities
from config.secrets import key_ring
from config.settings import Settings
from limits.host_slots import HostSlots
from limits.policy import connection_lease, policy_from
from limits.redis_store import RedisLimitStore
from mail.transport import MailTransport, SmtpTimeouts
from workflows.campaign import CampaignWorkflow
from workflows.campaign_step import CampaignStepWorkflow
from workflows.mailbox import MailboxWorkflow
from workflows.send_retry import SendRetryWorkflow

if TYPE_CHECKING:
    from inbox.listen import InboxListener

WORKFLOWS: Sequence[type] = (CampaignWorkflow, CampaignStepWorkflow, MailboxWorkflow, SendRetryWorkflow)


def build_transport(settings: Settings, redis: aioredis.Redis) -> MailTransport:
    """The SMTP transport, its connections counted against each host's shared limit."""
    return MailTransport(
        SmtpTimeouts.from_settings(settings),
        idle_seconds=settings.smtp_idle_seconds,
        slots=HostSlots(RedisLimitStore(redis, settings.task_queue), connection_lease(settings)),
    )


def build_activities(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, transport: MailTransport,
    temporal: Client | None = None,
) -> list[Callable[..., Any]]:
    """The send worker's activities; with ``temporal``, a mailbox's resume tells the
    campaigns that use it to claim again (decision 0046)."""
    store = RedisLimitStore(redis, settings.task_queue)
    policy = policy_from(settings)
    ledger = LedgerActivities(pool, key_ring(settings.secret_keys))
    gate = GateActivities(pool, store, policy, settings.paused_recheck_seconds,
                          settings.send_start_to_close_seconds)
    mailbox = MailboxActivities(pool, store, temporal, settings.task_queue)
    steps = StepWatchActivities(temporal)
    guard = BounceGuard(pool, settings.task_queue, settings.bounce_guard_window,
                        settings.bounce_guard_rate, block_rate=settings.bounce_guard_block_rate)
    send = SendActivities(pool, transport, store, policy, gate=gate, ring=key_ring(settings.secret_keys),
                          unsubscribe_base_url=settings.unsubscribe_base_url, guard=guard)
    return [
        ledger.due_sends, ledger.settle_send, ledger.set_campaign_state, ledger.finish_campaign,
        gate.gate_send, mailbox.apply_mailbox_state, send.send_email, steps.steps_running,
    ]


# -- the maintenance worker (its own task queue; started by Temporal schedules) --
# Imported here, not above, to keep this section apart from the send worker's.
from temporalio.client import Client  # noqa: E402

from mail.oauth import TokenEndpoint  # noqa: E402


def maintenance_workflows() -> list[type]:
    from workflows.cleanup import CleanupWorkflow
    from workflows.health_check import HealthCheckWorkflow
    from workflows.inbox_poll import InboxPollWorkflow
    from workflows.reconcile import ReconcileWorkflow
    from workflows.variants_judge import VariantsWorkflow
    from workflows.webhook import WebhookWorkflow

    return [CleanupWorkflow, HealthCheckWorkflow, ReconcileWorkflow, InboxPollWorkflow, WebhookWorkflow,
            VariantsWorkflow]


def build_maintenance_activities(
    settings: Settings, pool: asyncpg.Pool, temporal: Client, tokens: TokenEndpoint | None = None
) -> list[Callable[..., Any]]:
    """Cleanup, reconciliation (PostgreSQL, Temporal) and health checks (SMTP, OAuth2)."""
    from activities.health import MailboxHealth
    from activities.inbox import InboxActivities
    from activities.maintenance import LedgerMaintenance
    from activities.variants import VariantJudge
    from mail.oauth import HttpTokenEndpoint
    from mail.sender_dns import TxtLookup

    ledger = LedgerMaintenance(pool, temporal, settings.task_queue)
    health = MailboxHealth(pool, temporal, settings.task_queue, SmtpTimeouts.from_settings(settings),
                           tokens or HttpTokenEndpoint(), ring=key_ring(settings.secret_keys),
                           dns=TxtLookup(settings.dns_resolver))
    inbox = InboxActivities(pool, key_ring(settings.secret_keys), settings.webhook_url,
                            settings.webhook_secret, tokens,
                            BounceGuard(pool, settings.task_queue, settings.bounce_guard_window,
                                        settings.bounce_guard_rate,
                                        block_rate=settings.bounce_guard_block_rate),
                            webhook_include_address=settings.webhook_include_address)
    return [ledger.cleanup_ledger, ledger.reconcile_sends, health.check_mailboxes, inbox.poll_inboxes,
            inbox.deliver_webhook, VariantJudge(pool).judge_variants]


def build_inbox_listener(
    settings: Settings, pool: asyncpg.Pool, tokens: TokenEndpoint | None = None
) -> InboxListener | None:
    """The IMAP IDLE watchers of this process (inbox/listen.py), or None when
    OUTREACH_INBOX_IDLE is false. Each pass they start is followed like a scheduled one
    (metrics, the deliverability guard)."""
    if not settings.inbox_idle:
        return None
    from datetime import timedelta

    from activities.inbox import InboxActivities
    from inbox.listen import InboxListener, ListenLimits
    from inbox.poll import PollLimits

    ring = key_ring(settings.secret_keys)
    inbox = InboxActivities(pool, ring, tokens=tokens,
                            guard=BounceGuard(pool, settings.task_queue, settings.bounce_guard_window,
                                              settings.bounce_guard_rate,
                                              block_rate=settings.bounce_guard_block_rate))
    limits = PollLimits(max_message_bytes=settings.inbox_max_message_bytes,
                        match_window=timedelta(days=settings.reply_match_days),
                        timeout=settings.imap_timeout_seconds)
    return InboxListener(pool, ring, limits, inbox.after_pass,
                         ListenLimits(max_connections=settings.inbox_idle_connections), tokens=inbox.tokens)
