"""What a send worker runs: its workflows, and its activities built over shared clients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from activities.gate import GateActivities
from activities.ledger import LedgerActivities
from activities.mailbox import MailboxActivities
from activities.smtp import SendActivities
from config.settings import Settings
from limits.mailbox_budget import MailboxBudget
from mail.transport import MailTransport
from workflows.campaign import CampaignWorkflow
from workflows.campaign_step import CampaignStepWorkflow
from workflows.mailbox import MailboxWorkflow

WORKFLOWS: Sequence[type] = (CampaignWorkflow, CampaignStepWorkflow, MailboxWorkflow)


def build_activities(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, transport: MailTransport
) -> list[Callable[..., Any]]:
    budget = MailboxBudget(redis, settings.task_queue)
    ledger = LedgerActivities(pool)
    gate = GateActivities(pool, budget, settings.paused_recheck_seconds)
    mailbox = MailboxActivities(pool, budget)
    send = SendActivities(pool, transport)
    return [
        ledger.due_sends, ledger.settle_send, ledger.set_campaign_state,
        gate.gate_send, mailbox.apply_mailbox_state, send.send_email,
    ]
