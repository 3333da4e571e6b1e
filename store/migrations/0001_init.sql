-- The business data (workspaces, mailboxes, campaigns, steps, prospects) and
-- the send ledger: one row per (campaign, step, prospect), the source of truth
-- for what was sent.

CREATE TABLE workspaces (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailboxes (
    id            text PRIMARY KEY,
    email         text NOT NULL,
    provider      text NOT NULL CHECK (provider IN ('gmail', 'outlook', 'yahoo', 'other')),
    smtp_host     text NOT NULL,
    smtp_port     integer NOT NULL CHECK (smtp_port BETWEEN 1 AND 65535),
    security      text NOT NULL CHECK (security IN ('tls', 'starttls', 'none')),
    username      text,
    -- Exactly one of the two may be set: the secret itself, or the name of the
    -- environment variable of the worker that holds it. Read only by
    -- store.mailboxes.smtp_account (one place, to be encrypted later).
    password      text,
    password_env  text,
    daily_limit   integer NOT NULL CHECK (daily_limit > 0),
    timezone      text NOT NULL,
    window_start  time NOT NULL,
    window_end    time NOT NULL,
    window_days   smallint[] NOT NULL,          -- ISO weekdays, 1 = Monday
    paused        boolean NOT NULL DEFAULT false,
    pause_reason  text,
    paused_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE campaigns (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    workspace_id  text NOT NULL REFERENCES workspaces (id),
    state         text NOT NULL DEFAULT 'created'
                  CHECK (state IN ('created', 'running', 'paused', 'completed', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);

CREATE TABLE campaign_mailboxes (
    campaign_id  text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    mailbox_id   text NOT NULL REFERENCES mailboxes (id),
    PRIMARY KEY (campaign_id, mailbox_id)
);

CREATE TABLE steps (
    campaign_id    text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    step           integer NOT NULL CHECK (step >= 1),
    subject        text NOT NULL,
    body           text NOT NULL,
    delay_seconds  bigint NOT NULL DEFAULT 0 CHECK (delay_seconds >= 0),
    PRIMARY KEY (campaign_id, step)
);

CREATE TABLE prospects (
    id           bigserial PRIMARY KEY,
    campaign_id  text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    email        text NOT NULL,
    fields       jsonb NOT NULL DEFAULT '{}',
    -- Assigned once at import, so every follow-up leaves from the same mailbox.
    mailbox_id   text NOT NULL REFERENCES mailboxes (id),
    status       text NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'hard_bounced', 'unsubscribed', 'replied')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX prospects_campaign_email ON prospects (campaign_id, lower(email));

CREATE TABLE sends (
    campaign_id         text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    step                integer NOT NULL,
    prospect_id         bigint NOT NULL REFERENCES prospects (id) ON DELETE CASCADE,
    mailbox_id          text NOT NULL REFERENCES mailboxes (id),
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'sending', 'sent', 'soft_bounced',
                                         'hard_bounced', 'failed', 'unknown', 'skipped')),
    attempts            integer NOT NULL DEFAULT 0,
    last_code           integer,
    last_enhanced       text,
    last_reply          text,
    message_id          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    first_attempt_at    timestamptz,
    -- Set just before DATA, cleared when the reply is recorded: a row that
    -- still has it on a later attempt means the outcome of DATA is unknown.
    data_started_at     timestamptz,
    sent_at             timestamptz,
    finished_at         timestamptz,
    PRIMARY KEY (campaign_id, step, prospect_id)
);
-- The step scheduler: "step k-1 sent at least the delay ago" per campaign.
CREATE INDEX sends_scheduler ON sends (campaign_id, step, sent_at) WHERE state = 'sent';
-- Retention cleanup: finished rows by state and age.
CREATE INDEX sends_cleanup ON sends (state, finished_at);
-- Rebuilding a mailbox's daily count after Redis lost it.
CREATE INDEX sends_mailbox_day ON sends (mailbox_id, first_attempt_at);

-- Every SMTP transaction of a send, for tracing: what was tried, when, and what
-- the server answered.
CREATE TABLE send_attempts (
    id           bigserial PRIMARY KEY,
    campaign_id  text NOT NULL,
    step         integer NOT NULL,
    prospect_id  bigint NOT NULL,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text,
    code         integer,
    enhanced     text,
    reply        text,
    FOREIGN KEY (campaign_id, step, prospect_id)
        REFERENCES sends (campaign_id, step, prospect_id) ON DELETE CASCADE
);
CREATE INDEX send_attempts_send ON send_attempts (campaign_id, step, prospect_id);
