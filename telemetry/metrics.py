"""Every metric the workers export, defined once; activities only increment them.

Labels are bounded sets only: provider, outcome, limit, host (bounded by the
mailbox set), pause reason (classified). Campaign, mailbox, prospect and send
ids never become labels: they would give every send its own time series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from mail.outcomes import PauseKind, PauseReason

SENDS = Counter(
    "outreach_sends", "Send attempts by mailbox provider and outcome class.", ["provider", "outcome"]
)
SMTP_DURATION = Histogram(
    "outreach_smtp_duration_seconds", "One SMTP transaction, connect to reply.", ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 120),
)
GATE_WAITS = Counter(
    "outreach_gate_waits", "Gate answers 'wait', by the limit that said so.", ["limit", "provider"]
)
CIRCUIT_OPEN = Gauge(
    "outreach_circuit_open", "1 while a host's circuit breaker is open or half-open.", ["host"]
)
MAILBOXES_PAUSED = Gauge("outreach_mailboxes_paused", "Paused mailboxes by reason class.", ["reason"])
SENDS_IN_FLIGHT = Gauge("outreach_sends_in_flight", "Send activities running in this worker.")
BACKLOG = Gauge(
    "outreach_backlog_sends",
    "Sends of running campaigns due now: open ledger rows plus first steps not yet claimed.",
)
UNKNOWN_SENDS = Gauge("outreach_unknown_sends", "Sends whose SMTP outcome is unknown (ledger rows).")
LIMIT_STORE_RESTORES = Counter(
    "outreach_limit_store_restores",
    "Times this worker restored the limit store from the ledger after it lost its state.",
)
BOUNCE_GUARD_PAUSES = Counter(
    "outreach_bounce_guard_pauses",
    "Mailboxes the deliverability guard paused for their hard-bounce rate (docs/decisions/0033).",
    ["provider"],
)
SENDER_DNS_PROBLEMS = Gauge(
    "outreach_sender_dns_problems",
    "Mailboxes whose sending domain's SPF, DKIM or DMARC record the last health check found"
    " missing or wrong, by record.",
    ["record"],
)

# The inbox reader (inbox/, issue 14). Its alerts are per mailbox (an inbox not read, a
# complaint rate), so these carry the mailbox id: bounded by the mailbox set, like host.
INBOUND = Counter(
    "outreach_inbound_messages", "Inbound messages recorded, by mailbox and class.", ["mailbox", "class"]
)
REPLY_TO_STOP = Histogram(
    "outreach_reply_to_stop_seconds",
    "From a message's arrival in the inbox (IMAP INTERNALDATE) to its prospect's sequence stopped.",
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
# A DSN's verdict per mailbox: 'blocked' (the recipient's server refused us) is what a
# per-mailbox block rate counts; 'hard' stops and lists the address.
INBOUND_BOUNCES = Counter(
    "outreach_inbound_bounces", "DSNs read from the inbox, by mailbox and verdict.", ["mailbox", "verdict"]
)
# Inbound messages short of proof (docs/decisions/0050): recorded, acted on at most by
# stopping the one sequence they name. `why` is inbox.evidence.Short (a handful of values).
INBOUND_UNPROVEN = Counter(
    "outreach_inbound_unproven",
    "Inbound messages that were not proof enough to act in full, by mailbox, class and why.",
    ["mailbox", "class", "why"],
)
# What replies mean (inbox/intent.py, issue 25): intent is one of nine classes and action
# one of five on_reply actions, so the series stay bounded by the mailbox set.
REPLY_INTENTS = Counter(
    "outreach_reply_intents",
    "Matched replies by mailbox, intent class and the on_reply action taken.",
    ["mailbox", "intent", "action"],
)
POSTPONEMENTS = Counter(
    "outreach_postponements", "Prospects' next steps moved by an out-of-office reply, by mailbox.",
    ["mailbox"],
)
IMAP_ERRORS = Counter("outreach_imap_errors", "Inbox passes that failed, by mailbox.", ["mailbox"])
INBOX_LAST_READ = Gauge(
    "outreach_inbox_last_read_timestamp_seconds", "When the mailbox's inbox was last read in full.",
    ["mailbox"],
)
COMPLAINT_RATE = Gauge(
    "outreach_complaint_rate", "Complaints over sends of the mailbox in the last 24 hours.", ["mailbox"]
)
# Per step variant of each running or paused campaign with variants (docs/decisions/0052):
# the figures of store/variant_stats.py, one series per figure. Bounded by the running
# campaigns' variants; refreshed every minute by every worker (dashboards take max).
VARIANT_FIGURES = Gauge(
    "outreach_variant_figures", "Figures per step variant of running campaigns (sent, replied, ...).",
    ["campaign", "step", "variant", "figure"],
)

# outreach_sends' outcome: a send's outcome, a raised attempt's (mail.outcomes.Retry),
# or this for an attempt that raised anything else.
UNEXPECTED = "error"

PAUSE_REASONS = tuple(r.value for r in PauseReason)


def pause_class(reason: str) -> str:
    """A paused mailbox's reason as a bounded label; free text from an operator is 'operator'."""
    head = reason.split(":", 1)[0].strip()
    return head if head in PAUSE_REASONS else PauseKind.OPERATOR.value


def exported_names() -> set[str]:
    """The series names Prometheus sees (counters get ``_total``, histograms their parts)."""
    names: set[str] = set()
    for metric in (SENDS, SMTP_DURATION, GATE_WAITS, CIRCUIT_OPEN, MAILBOXES_PAUSED,
                   SENDS_IN_FLIGHT, BACKLOG, UNKNOWN_SENDS, LIMIT_STORE_RESTORES,
                   BOUNCE_GUARD_PAUSES, SENDER_DNS_PROBLEMS, INBOUND, REPLY_TO_STOP, INBOUND_BOUNCES,
                   INBOUND_UNPROVEN, IMAP_ERRORS, INBOX_LAST_READ, COMPLAINT_RATE, VARIANT_FIGURES,
                   REPLY_INTENTS, POSTPONEMENTS):
        for family in metric.collect():
            for sample in family.samples:
                names.add(sample.name)
            names.add(family.name + ("_total" if family.type == "counter" else ""))
            if family.type == "histogram":
                names.update(f"{family.name}_{part}" for part in ("bucket", "sum", "count"))
    return names
