"""Settings read from ``OUTREACH_*`` environment variables.

Every default that shapes sending (timeouts, caps, windows) lives here, so an
operator changes behaviour with configuration, not code.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # A .env in the working directory is read too (`outreach dev` writes its
    # development key there); real environment variables win over it.
    model_config = SettingsConfigDict(env_prefix="OUTREACH_", extra="ignore", env_file=".env")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    # The Temporal Web UI, for the addresses `outreach trace` prints.
    ui_url: str = "http://127.0.0.1:8233"
    # A prefix, not a full name: task queues and workflow ids start with it, so
    # two installations can share one Temporal server without meeting.
    task_queue: str = "outreach"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/outreach"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis Sentinel (docs/production.md): "host:port,host:port,..." of the
    # sentinels; then the primary is the one they name for the master below,
    # and redis_url gives only its credentials, database and TLS settings.
    redis_sentinels: str = ""
    redis_sentinel_master: str = "outreach"
    # The sentinels' own password (their `requirepass`), if they have one.
    redis_sentinel_password: str = Field(default="", repr=False)
    # AES-256-GCM keys as "id:base64key" entries, newest first (config/secrets.py).
    # They encrypt stored credentials and every Temporal payload; without them
    # credentials are refused rather than stored in the clear.
    secret_keys: str = Field(default="", repr=False)

    # SMTP timeouts (seconds): connect / greeting / each socket read or write.
    smtp_connect_timeout: float = 60.0
    smtp_greeting_timeout: float = 30.0
    smtp_socket_timeout: float = 60.0
    # A pooled SMTP connection idle this long is closed rather than reused.
    smtp_idle_seconds: float = 30.0
    # Run the send worker's workflows in temporalio's sandbox. It guards against
    # non-deterministic workflow code at a price of about a quarter of the worker's
    # CPU; the tests and the replay tests always run them in it (docs/decisions/0041).
    workflow_sandbox: bool = False

    # The send activity's own bounds (layer two of the three timeouts).
    send_start_to_close_seconds: float = 120.0
    # The first retry of a soft bounce; later ones follow x6 up to 2 h. Only
    # tests have reason to shorten it.
    send_first_retry_seconds: float = 300.0
    # Room for 4 attempts at +5 min, +35 min, +2 h 35 min, plus queueing.
    send_schedule_to_close_seconds: float = 4 * 3600.0

    # Step workflows: sends in flight per step run, and sends per run before
    # continue-as-new (keeps each history a few thousand events).
    step_window: int = Field(default=50, ge=1)
    step_sends_per_run: int = Field(default=300, ge=1)
    # Sends of one mailbox in flight per step: its SMTP transactions run one at
    # a time anyway, and a capped mailbox then wastes at most this many gate calls.
    step_per_mailbox: int = Field(default=3, ge=1)
    # How long a paused mailbox's sends wait before the gate is asked again.
    paused_recheck_seconds: float = 10.0
    # A step with nothing due sleeps at least this long (guards delay 0).
    step_min_sleep_seconds: float = 2.0
    # An idle step with no timer and nothing in flight claims again after this
    # long anyway; finding due sends then is a stall, logged and counted.
    step_stall_check_seconds: float = Field(default=600.0, gt=0)
    # A campaign's workflow continues as new past this many history events (decision
    # 0048); it looks at its step workflows after this long without a report.
    campaign_events_per_run: int = Field(default=2_000, ge=100)
    campaign_step_check_seconds: float = Field(default=3600.0, gt=0)

    default_daily_limit: int = Field(default=40, ge=1)

    # Prometheus: our metrics on this port, the Temporal SDK's on the next one
    # (telemetry/exporter.py); 0 turns both off.
    metrics_port: int = Field(default=9464, ge=0, le=65534)
    metrics_host: str = "0.0.0.0"

    # Maintenance schedules (see docs/decisions/0010-0013). Their values travel
    # in the schedules' workflow arguments: `outreach schedules apply` changes
    # them without restarting a worker.
    retention_sent_days: float = Field(default=7.0, ge=0)
    # failed, hard_bounced and unknown rows
    retention_failed_days: float = Field(default=30.0, ge=0)
    cleanup_batch_size: int = Field(default=2000, ge=1)
    cleanup_interval_seconds: float = Field(default=300.0, gt=0)
    health_check_interval_seconds: float = Field(default=300.0, gt=0)
    reconcile_interval_seconds: float = Field(default=600.0, gt=0)
    # The variants schedule (docs/decisions/0052): how often it judges the steps' winner
    # rules and refreshes the figures per variant, and how old a send must be before its
    # replies count (younger ones have had no time to be answered).
    variants_interval_seconds: float = Field(default=3600.0, gt=0)
    variants_reply_window_days: float = Field(default=3.0, ge=0)
    # Each maintenance run's bound (the activity's start-to-close and the
    # workflow's execution timeout).
    maintenance_timeout_seconds: float = Field(default=240.0, gt=0)
    health_check_concurrency: int = Field(default=10, ge=1)
    # Temporal's own retention of closed workflows, set by `schedules apply`.
    namespace_retention_days: int = Field(default=30, ge=1)

    # Shared limits (limits/policy.py has the meaning of each).
    limit_gmail_per_minute: int = 150
    limit_outlook_per_minute: int = 100
    limit_yahoo_per_minute: int = 50
    limit_other_per_minute: int = 30
    limit_provider_scale_unit: int = 150
    limit_provider_window_seconds: float = 62.0
    # A transaction that reaches DATA later than this after its place asks for a new
    # one, and goes only if that is now (decision 0042). Keep it within the provider
    # window's margin over the provider's own minute (62 - 60 s), less the DATA transfer.
    limit_place_lateness_seconds: float = Field(default=1.5, ge=0)
    limit_gmail_connections: int = 15
    limit_outlook_connections: int = 10
    limit_other_connections: int = 5
    limit_workspace_in_flight: int = 50
    limit_breaker_failures: int = 5
    limit_breaker_open_seconds: float = 300.0
    limit_throttle_jitter_seconds: float = 300.0
    limit_reservation_horizon_seconds: float = 600.0
    # After Redis lost its data, every host is held back this long (as if pushed
    # back) while what it forgot is restored from the ledger (docs/decisions/0029).
    limit_restore_hold_seconds: float = Field(default=30.0, ge=0)
    # 1.0 spreads a mailbox's daily cap evenly over its window with random
    # gaps; 0 sends as fast as the other limits allow (tests, demos).
    mailbox_spacing: float = Field(default=1.0, ge=0)

    # Input files (specs/bounds.py, docs/decisions/0018): what an import accepts.
    # A campaign or mailboxes YAML file, or a prospects CSV file.
    max_input_file_bytes: int = Field(default=64 * 2**20, ge=1)
    # Prospects of one campaign (CSV rows or inline items).
    max_prospects: int = Field(default=500_000, ge=1)
    # One prospect field (a CSV cell), and a whole row of them.
    max_field_chars: int = Field(default=2_000, ge=1)
    max_row_chars: int = Field(default=20_000, ge=1)
    # A subject and a body, as written and as rendered for each prospect; the
    # message builder's own ceilings (mail/message.py) are the upper bounds.
    max_subject_chars: int = Field(default=300, ge=1, le=998)
    max_body_bytes: int = Field(default=200_000, ge=1, le=1_000_000)

    # One-click unsubscribe (docs/decisions/0030): the public address of
    # `outreach unsubscribe-server`, e.g. https://unsubscribe.example.com; each message
    # links BASE/u/TOKEN. Empty: messages carry only the mailto form (the worker warns).
    unsubscribe_base_url: str = ""
    # Requests one client address may make to the unsubscribe server: a burst, then
    # this many a minute (a token bucket per address). Generous: a mailbox provider
    # posts its users' one-clicks from a few addresses of its own.
    unsubscribe_rate_per_minute: float = Field(default=120.0, gt=0)
    unsubscribe_burst: int = Field(default=60, ge=1)
    # Reverse proxies in front of the unsubscribe server ("ip,ip/len,..."): a request
    # from one of them is counted against the client its X-Forwarded-For names.
    unsubscribe_trusted_proxies: str = ""
    # What the unsubscribe and codec servers defend by themselves when a public address
    # reaches them (client/http_guard.py, docs/decisions/0045). A connection must send
    # its request headers within the header timeout (from connecting, or from its last
    # answer); a body gets 408 once nothing arrived for the body timeout, or once it is
    # not complete the body total after the headers.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_total_seconds: float = Field(default=30.0, gt=0)
    # Open connections per client address (per /64 for IPv6; a trusted proxy only counts
    # in the total) and in all; beyond them a connection is closed before it is read.
    # The total is also held under half the process's file-descriptor limit.
    http_max_connections_per_client: int = Field(default=20, ge=1)
    http_max_connections: int = Field(default=1000, ge=1)
    # The codec server: the largest request body (one Payloads JSON message) and the
    # Host names it answers besides localhost, 127.0.0.1, [::1] and its --host
    # ("name" for any port, "name:port"; comma-separated). Any other Host gets 421,
    # so a web page cannot reach it through a DNS name rebound to this machine.
    codec_max_body_bytes: int = Field(default=4 * 2**20, ge=1024)
    codec_allowed_hosts: str = ""

    @field_validator("unsubscribe_base_url")
    @classmethod
    def _unsubscribe_base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.fullmatch(r"https?://[A-Za-z0-9._~:/%@\[\]-]+", value):
            raise ValueError(f"OUTREACH_UNSUBSCRIBE_BASE_URL: {value!r} is not an http(s) URL"
                             " (no query, spaces or quotes)")
        return value

    @field_validator("unsubscribe_trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        proxy_networks(value)  # refuse a malformed list at start
        return value
    # The deliverability guard (docs/decisions/0033): a mailbox with more hard
    # bounces among its last `window` sends than `rate` x `window` is paused.
    bounce_guard_window: int = Field(default=50, ge=1)
    bounce_guard_rate: float = Field(default=0.05, ge=0, le=1)
    # The same for sends the recipients' servers blocked later (a DSN's 5.7.x, read from
    # the inbox): the address is fine, the sender is not trusted.
    bounce_guard_block_rate: float = Field(default=0.05, ge=0, le=1)
    # `mailboxes check-dns`: the DNS server to ask, "host:port"; empty is the system's.
    dns_resolver: str = ""
    # Reading inboxes (inbox/, docs/decisions/0034): how often each mailbox's folders are
    # read, the largest message read whole (larger ones are classified from their
    # headers), how long a sent Message-ID is kept for matching replies, and the
    # bound on each IMAP command.
    inbox_poll_seconds: float = Field(default=60.0, gt=0)
    inbox_max_message_bytes: int = Field(default=2 * 2**20, ge=1024)
    reply_match_days: float = Field(default=90.0, gt=0)
    imap_timeout_seconds: float = Field(default=30.0, gt=0)
    # IMAP IDLE (inbox/listen.py): each worker process keeps one connection per mailbox
    # folder (at most inbox_idle_connections) where the server offers IDLE, and reads a
    # mailbox within seconds of an arrival; false: only the poll schedule reads.
    inbox_idle: bool = True
    inbox_idle_connections: int = Field(default=50, ge=1)
    # Replies, bounces, unsubscribes and complaints POSTed here (HMAC-SHA256 of the body
    # with the secret in X-Outreach-Signature) by the `webhook` schedule; empty: none.
    webhook_url: str = Field(default="", repr=False)
    webhook_secret: str = Field(default="", repr=False)
    # Events carry ids only; true adds the prospect's address for receivers that need it.
    webhook_include_address: bool = False

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: str) -> str:
        sentinel_addresses(value)  # refuse a malformed list at start, not at the first send
        return value


def sentinel_addresses(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` (IPv6 hosts in brackets) as (host, port) pairs."""
    found = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"OUTREACH_REDIS_SENTINELS: {item!r} is not host:port")
        found.append((host.strip("[]"), int(port)))
    return found


def proxy_networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``ip,ip/len,...`` as networks."""
    try:
        return [ipaddress.ip_network(p.strip(), strict=False) for p in value.split(",") if p.strip()]
    except ValueError as exc:
        raise ValueError(f"OUTREACH_UNSUBSCRIBE_TRUSTED_PROXIES: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
