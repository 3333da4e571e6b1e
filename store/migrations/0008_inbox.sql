-- Reading each mailbox's inbox (docs/decisions/0034-0036): IMAP settings, a
-- durable cursor per mailbox and folder, the record of our sent Message-IDs that
-- replies are matched against, what was found, and what a campaign does about it.

-- IMAP settings. NULL imap_host: the inbox is not read. Username and password
-- default (at read time) to the SMTP ones; imap_password is encrypted like them.
ALTER TABLE mailboxes
    ADD COLUMN imap_host text,
    ADD COLUMN imap_port integer CHECK (imap_port BETWEEN 1 AND 65535),
    ADD COLUMN imap_security text CHECK (imap_security IN ('tls', 'starttls', 'none')),
    ADD COLUMN imap_username text,
    ADD COLUMN imap_password text,
    ADD COLUMN imap_password_env text,
    ADD COLUMN imap_folders text[] NOT NULL DEFAULT '{INBOX}',
    ADD CONSTRAINT mailboxes_imap_complete CHECK (
        imap_host IS NULL OR (imap_port IS NOT NULL AND imap_security IS NOT NULL));

COMMENT ON COLUMN mailboxes.imap_password IS
    'encrypted (enc:v1:<key id>:...); read only by store.inbound';

-- The credential trigger of 0004, now also for imap_password.
CREATE OR REPLACE FUNCTION mailboxes_credentials_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF left(NEW.password, 7) <> 'enc:v1:'
       OR left(NEW.oauth_client_secret, 7) <> 'enc:v1:'
       OR left(NEW.oauth_refresh_token, 7) <> 'enc:v1:'
       OR left(NEW.oauth_access_token, 7) <> 'enc:v1:'
       OR left(NEW.imap_password, 7) <> 'enc:v1:' THEN
        RAISE EXCEPTION 'mailbox %: credentials must be stored encrypted (enc:v1:...), not in the clear', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER mailboxes_credentials_sealed ON mailboxes;
CREATE TRIGGER mailboxes_credentials_sealed
    BEFORE INSERT OR UPDATE OF password, oauth_client_secret, oauth_refresh_token, oauth_access_token,
                               imap_password
    ON mailboxes FOR EACH ROW EXECUTE FUNCTION mailboxes_credentials_sealed();

-- Where reading a folder has got to. A new uidvalidity means the UIDs were
-- renumbered: the folder is read again from read_since and deduplicated by Message-ID.
CREATE TABLE inbox_cursors (
    mailbox_id   text NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    folder       text NOT NULL,
    uidvalidity  bigint,               -- NULL: never examined (a failed first pass)
    last_uid     bigint NOT NULL DEFAULT 0,
    read_at      timestamptz,          -- the last pass that finished
    error        text,                 -- why the last pass failed (NULL after a good one)
    error_at     timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, folder)
);

-- Every Message-ID we sent, for as long as replies matter (OUTREACH_REPLY_MATCH_DAYS):
-- the ledger deletes sent rows after a week and has no index on message_id.
CREATE TABLE sent_messages (
    message_id   text PRIMARY KEY,
    campaign_id  text NOT NULL,
    step         integer NOT NULL,
    prospect_id  bigint NOT NULL REFERENCES prospects (id) ON DELETE CASCADE,
    mailbox_id   text NOT NULL,
    recipient    text NOT NULL,
    sent_at      timestamptz NOT NULL
);
-- The fallback match (From equals a prospect this mailbox wrote to) and bounces
-- naming only the original recipient.
CREATE INDEX sent_messages_recipient ON sent_messages (mailbox_id, lower(recipient), sent_at);
CREATE INDEX sent_messages_age ON sent_messages (sent_at);

-- Written by the database when a send becomes 'sent', so every path that records
-- a send (the activity, reconciliation, a replayed outcome) is covered.
CREATE FUNCTION sends_record_sent_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sent_messages (message_id, campaign_id, step, prospect_id, mailbox_id, recipient, sent_at)
    SELECT NEW.message_id, NEW.campaign_id, NEW.step, NEW.prospect_id, NEW.mailbox_id, p.email,
           coalesce(NEW.sent_at, now())
    FROM prospects p WHERE p.id = NEW.prospect_id
    ON CONFLICT (message_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER sends_record_sent_message
    AFTER INSERT OR UPDATE OF state ON sends FOR EACH ROW
    WHEN (NEW.state = 'sent') EXECUTE FUNCTION sends_record_sent_message();

INSERT INTO sent_messages (message_id, campaign_id, step, prospect_id, mailbox_id, recipient, sent_at)
SELECT s.message_id, s.campaign_id, s.step, s.prospect_id, s.mailbox_id, p.email, s.sent_at
FROM sends s JOIN prospects p ON p.id = s.prospect_id
WHERE s.state = 'sent' AND s.sent_at IS NOT NULL
ON CONFLICT (message_id) DO NOTHING;

-- What the inbox held: one row per message, with its one class. No body is kept.
CREATE TABLE inbound_messages (
    id           bigserial PRIMARY KEY,
    mailbox_id   text NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    folder       text NOT NULL,
    uidvalidity  bigint NOT NULL,
    uid          bigint NOT NULL,
    message_id   text,
    class        text NOT NULL CHECK (class IN ('reply', 'auto_reply', 'bounce', 'unsubscribe',
                                                'complaint', 'other')),
    -- For a bounce: 'hard', 'blocked', 'soft' or 'delayed'; for the rest NULL.
    verdict      text,
    campaign_id  text,
    step         integer,
    prospect_id  bigint,
    matched_by   text,                 -- 'thread', 'from', 'recipient' or NULL
    detail       text,                 -- a short why (status code, the rule that matched)
    received_at  timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    acted        boolean NOT NULL DEFAULT false,
    -- When OUTREACH_WEBHOOK_URL accepted it (replies, bounces, unsubscribes, complaints).
    webhook_sent_at  timestamptz,
    UNIQUE (mailbox_id, folder, uidvalidity, uid)
);
CREATE INDEX inbound_messages_webhook ON inbound_messages (id)
    WHERE webhook_sent_at IS NULL AND class IN ('reply', 'bounce', 'unsubscribe', 'complaint');
-- A renumbered folder read again finds the same messages: one row each.
CREATE UNIQUE INDEX inbound_messages_message_id ON inbound_messages (mailbox_id, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX inbound_messages_prospect ON inbound_messages (prospect_id) WHERE prospect_id IS NOT NULL;
CREATE INDEX inbound_messages_recorded ON inbound_messages (recorded_at);

-- What a campaign does about a reply: stop this campaign's sequence for the
-- prospect ('campaign', the default), every campaign of the workspace, or nothing.
ALTER TABLE campaigns
    ADD COLUMN stop_on_reply text NOT NULL DEFAULT 'campaign'
        CHECK (stop_on_reply IN ('campaign', 'workspace', 'none')),
    ADD COLUMN stop_on_auto_reply boolean NOT NULL DEFAULT false;
