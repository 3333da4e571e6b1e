"""Names shared by client, workers and workflows: task queues, workflow ids, Redis keys,
search attributes.

Kept in one place so no string literal for them appears anywhere else.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey


def send_task_queue(prefix: str) -> str:
    return f"{prefix}-sends"


def campaign_workflow_id(prefix: str, campaign_id: str) -> str:
    return f"{prefix}-campaign-{campaign_id}"


def step_workflow_id(prefix: str, campaign_id: str, step: int) -> str:
    return f"{prefix}-campaign-{campaign_id}-step-{step}"


def mailbox_workflow_id(prefix: str, mailbox_id: str) -> str:
    return f"{prefix}-mailbox-{mailbox_id}"


def send_retry_workflow_id(prefix: str, campaign_id: str, step: int, prospect_id: int) -> str:
    """The one workflow that holds a send between attempts (decision 0049): one per send,
    so a second hand-off of the same send finds it running instead of starting another."""
    return f"{prefix}-send-{campaign_id}-{step}-{prospect_id}"


# The mailbox workflow's type and the health check's signals, by name: the health-check
# activity signals-with-start by these, since an activity never imports a workflow
# (docs/decisions/0022). MailboxWorkflow is declared with the same constants.
MAILBOX_WORKFLOW = "MailboxWorkflow"
PAUSE_SIGNAL = "pause"  # an operator's pause, or a sender problem a send met
HEALTH_PAUSE_SIGNAL = "health_pause"
HEALTH_RESUME_SIGNAL = "health_resume"
# The campaign workflow's "claim again" signal, by name for the mailbox activity that
# tells a resumed mailbox's campaigns (decision 0046); CampaignWorkflow declares it so.
CAMPAIGN_CLAIM_AGAIN_SIGNAL = "prospects_added"
# A send's retry workflow tells its step the send is back (decision 0049), by name: the
# step starts that workflow, so the workflow does not import the step.
SEND_HANDED_BACK_SIGNAL = "send_handed_back"
# A step's report of its end to its campaign, and the client's direct word to a step
# that prospects were added (decision 0048).
STEP_ENDED_SIGNAL = "step_ended"
STEP_PROSPECTS_ARRIVED_SIGNAL = "prospects_arrived"
# The memo key a step of a campaign that continues as new carries: it hears additions
# from the client directly.
STEP_HEARS_ADDITIONS_MEMO = "hears_additions"


def maintenance_task_queue(prefix: str) -> str:
    return f"{prefix}-maintenance"


def schedule_id(prefix: str, job: str) -> str:
    """The Temporal schedule of a maintenance job (cleanup, health-check, reconcile)."""
    return f"{prefix}-schedule-{job}"


def maintenance_workflow_id(prefix: str, job: str) -> str:
    # The schedule appends the scheduled time, so each run has its own id.
    return f"{prefix}-maintenance-{job}"


# Counted by step workflows through Temporal's metric meter, so it is served on
# the SDK's endpoint (telemetry/exporter.py), not ours.
STEP_STALLS_METRIC = "outreach_step_stalls"


def redis_key(prefix: str, *parts: str) -> str:
    """A Redis key of this installation: ``{prefix}:part:part``."""
    return ":".join((prefix, *parts))


# Search attributes (docs/decisions/0014): ids only, never an address or content.
# Registered by `outreach dev` and `outreach search-attributes register`.
CAMPAIGN_ID_ATTR = SearchAttributeKey.for_keyword("OutreachCampaignId")
STEP_ATTR = SearchAttributeKey.for_int("OutreachStep")
# The mailboxes and prospects whose sends one step-workflow run has held.
MAILBOX_IDS_ATTR = SearchAttributeKey.for_keyword_list("OutreachMailboxIds")
PROSPECT_IDS_ATTR = SearchAttributeKey.for_keyword_list("OutreachProspectIds")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    CAMPAIGN_ID_ATTR, STEP_ATTR, MAILBOX_IDS_ATTR, PROSPECT_IDS_ATTR,
)


# Activity names: the send path. Every recorded workflow history holds them, so a
# value never changes; workflows and test doubles use these, never the strings.
DUE_SENDS = "due_sends"
SETTLE_SEND = "settle_send"
SET_CAMPAIGN_STATE = "set_campaign_state"
FINISH_CAMPAIGN = "finish_campaign"
STEPS_RUNNING = "steps_running"
GATE_SEND = "gate_send"
SEND_EMAIL = "send_email"
APPLY_MAILBOX_STATE = "apply_mailbox_state"

# Activity names: maintenance
# (workflows/cleanup.py, health_check.py, reconcile.py; recorded in their histories: never rename)
CLEANUP_LEDGER = "cleanup_ledger"
CHECK_MAILBOXES = "check_mailboxes"
RECONCILE_SENDS = "reconcile_sends"
POLL_INBOXES = "poll_inboxes"
DELIVER_WEBHOOK = "deliver_webhook"
JUDGE_VARIANTS = "judge_variants"  # workflows/variants_judge.py (docs/decisions/0052)
