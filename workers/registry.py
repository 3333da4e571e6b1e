"""What a send worker runs: its workflows, and its activities built over shared clients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from activities.gate import GateActivities
from activities.ledger import LedgerActivities
from activities.mailbox import MailboxActivities
from activities.smtp import SendActivities
from config.settings import Settings
from limits.host_slots import HostSlots
from limits.policy import policy_from
from limits.redis_store import RedisLimitStore
from mail.transport import MailTransport, SmtpTimeouts
from workflows.campaign import CampaignWorkflow
from workflows.campaign_step import CampaignStepWorkflow
from workflows.mailbox import MailboxWorkflow

WORKFLOWS: Sequence[type] = (CampaignWorkflow, CampaignStepWorkflow, MailboxWorkflow)


def build_transport(settings: Settings, redis: aioredis.Redis) -> MailTransport:
    """The SMTP transport, its connections counted against each host's shared limit."""
    # A slot outlives the longest transaction plus the idle time of its connection.
    ttl = timedelta(seconds=settings.send_start_to_close_seconds + settings.smtp_idle_seconds + 30)
    return MailTransport(
        SmtpTimeouts.from_settings(settings),
        idle_seconds=settings.smtp_idle_seconds,
        slots=HostSlots(RedisLimitStore(redis, settings.task_queue), ttl),
    )


def build_activities(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, transport: MailTransport
) -> list[Callable[..., Any]]:
    store = RedisLimitStore(redis, settings.task_queue)
    policy = policy_from(settings)
    ledger = LedgerActivities(pool)
    gate = GateActivities(pool, store, policy, settings.paused_recheck_seconds,
                          settings.send_start_to_close_seconds)
    mailbox = MailboxActivities(pool, store)
    send = SendActivities(pool, transport, store, policy)
    return [
        ledger.due_sends, ledger.settle_send, ledger.set_campaign_state,
        gate.gate_send, mailbox.apply_mailbox_state, send.send_email,
    ]
