-- What a reply means (docs/decisions/0053, issue 25): its intent class, what the
-- campaign does about each class, postponements of a prospect's next step, and the
-- addresses a referral names (for export).

-- The intent of a person's message (reply, auto_reply, unsubscribe, other): class,
-- confidence and a short reason naming the rule. Never its text. return_date: the day
-- an out-of-office reply says the person is back, when it says one.
ALTER TABLE inbound_messages
    ADD COLUMN intent text CHECK (intent IN ('interested', 'meeting', 'question', 'not_interested',
                                             'unsubscribe', 'wrong_person', 'referral', 'out_of_office',
                                             'other')),
    ADD COLUMN intent_confidence real CHECK (intent_confidence BETWEEN 0 AND 1),
    ADD COLUMN intent_reason text,
    ADD COLUMN return_date date,
    -- What on_reply did about it: stop, stop_workspace, suppress, postpone, ignore (NULL:
    -- unmatched, or before this migration).
    ADD COLUMN action text;
CREATE INDEX inbound_messages_intent ON inbound_messages (campaign_id, step, intent) WHERE intent IS NOT NULL;

-- The campaign's on_reply block as validated at import: {"actions": {class: action},
-- "postpone_buffer_days": n, "postpone_buffer_seconds": n, "postpone_default_seconds": n,
-- "postpone_max": n}. Empty: every default (specs/on_reply.py).
ALTER TABLE campaigns ADD COLUMN on_reply jsonb NOT NULL DEFAULT '{}';

-- Each time an out-of-office reply moved a prospect's next step; counted against
-- postpone_max, shown by `outreach trace`.
CREATE TABLE postponements (
    id           bigserial PRIMARY KEY,
    inbound_id   bigint NOT NULL,           -- inbound_messages.id (no key: the inbox is truncated alone)
    campaign_id  text NOT NULL,
    prospect_id  bigint NOT NULL REFERENCES prospects (id) ON DELETE CASCADE,
    step         integer NOT NULL,          -- the step moved
    due_before   timestamptz NOT NULL,
    due_after    timestamptz NOT NULL,
    reason       text NOT NULL,             -- 'return date 2026-03-16 + 1 business day', 'no date: 7 days'
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX postponements_prospect ON postponements (prospect_id);

-- Someone else named by a reply: exported by `outreach inbox referrals`. Erased with
-- the prospect and with the referred address itself (store/erasure.py).
CREATE TABLE referrals (
    inbound_id     bigint PRIMARY KEY,      -- inbound_messages.id
    workspace_id   text NOT NULL,
    campaign_id    text NOT NULL,
    prospect_id    bigint NOT NULL REFERENCES prospects (id) ON DELETE CASCADE,
    referred_email text,                    -- NULL: a name without an address
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX referrals_workspace ON referrals (workspace_id, created_at);

-- Events a CRM can use (issue 25 part 4): one row per event, written by the database
-- where the fact is written (so every path that writes it is covered), delivered by the
-- webhook in seq order, and replayed from here by `outreach webhook replay`. The id is
-- stable (the fact's own key), so a fact written twice is one event and a receiver
-- deduplicates by it. Ids only: the address is joined at delivery, and only with
-- OUTREACH_WEBHOOK_INCLUDE_ADDRESS=true.
CREATE TABLE webhook_events (
    seq           bigserial UNIQUE,
    id            text PRIMARY KEY,
    type          text NOT NULL CHECK (type IN ('sent', 'hard_bounced', 'replied', 'unsubscribed',
                                                'complained', 'postponed')),
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    campaign_id   text NOT NULL,
    step          integer,
    prospect_id   bigint NOT NULL,
    mailbox_id    text,
    intent        text,                 -- replied: the reply's intent class
    due_at        timestamptz,          -- postponed: when the next step now goes
    proven        boolean NOT NULL DEFAULT true,
    delivered_at  timestamptz
);
CREATE INDEX webhook_events_undelivered ON webhook_events (seq) WHERE delivered_at IS NULL;
-- What `webhook replay` reads, and what the inbox pass forgets after the reply-matching
-- window (delivered or not: without a webhook, events are never delivered).
CREATE INDEX webhook_events_occurred ON webhook_events (occurred_at);

CREATE FUNCTION webhook_event_sent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (id, type, occurred_at, campaign_id, step, prospect_id, mailbox_id)
    VALUES ('sent:' || NEW.campaign_id || ':' || NEW.step || ':' || NEW.prospect_id, 'sent', NEW.sent_at,
            NEW.campaign_id, NEW.step, NEW.prospect_id, NEW.mailbox_id)
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER sent_messages_webhook_event AFTER INSERT ON sent_messages
    FOR EACH ROW EXECUTE FUNCTION webhook_event_sent();

-- A hard bounce at SMTP time or by a proven DSN (both turn the ledger row), one event.
CREATE FUNCTION webhook_event_hard_bounce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (id, type, campaign_id, step, prospect_id, mailbox_id)
    VALUES ('hard_bounced:' || NEW.campaign_id || ':' || NEW.step || ':' || NEW.prospect_id, 'hard_bounced',
            NEW.campaign_id, NEW.step, NEW.prospect_id, NEW.mailbox_id)
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER sends_webhook_hard_bounce AFTER INSERT OR UPDATE OF state ON sends FOR EACH ROW
    WHEN (NEW.state = 'hard_bounced') EXECUTE FUNCTION webhook_event_hard_bounce();

-- What the inbox recorded about a send: a reply (with its intent), a proven hard DSN
-- (also when retention no longer keeps the ledger row), a proven complaint.
CREATE FUNCTION webhook_event_inbound() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text := CASE WHEN NEW.class = 'reply' THEN 'replied'
                      WHEN NEW.class = 'bounce' AND NEW.verdict = 'hard' AND NEW.proven THEN 'hard_bounced'
                      WHEN NEW.class = 'complaint' AND NEW.proven THEN 'complained' END;
BEGIN
    IF kind IS NULL OR NEW.campaign_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_events (id, type, occurred_at, campaign_id, step, prospect_id, mailbox_id, intent, proven)
    VALUES (CASE WHEN kind = 'hard_bounced'
                 THEN 'hard_bounced:' || NEW.campaign_id || ':' || NEW.step || ':' || NEW.prospect_id
                 ELSE kind || ':inbound:' || NEW.id END,
            kind, NEW.recorded_at, NEW.campaign_id, NEW.step, NEW.prospect_id, NEW.mailbox_id, NEW.intent,
            NEW.proven)
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER inbound_messages_webhook_event AFTER INSERT ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION webhook_event_inbound();

-- Unsubscribed by the one-click link, the mailto form, or an opt-out in words.
CREATE FUNCTION webhook_event_unsubscribed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (id, type, campaign_id, prospect_id, mailbox_id)
    VALUES ('unsubscribed:' || NEW.id, 'unsubscribed', NEW.campaign_id, NEW.id, NEW.mailbox_id)
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER prospects_webhook_unsubscribed AFTER UPDATE OF status ON prospects FOR EACH ROW
    WHEN (NEW.status = 'unsubscribed' AND OLD.status IS DISTINCT FROM 'unsubscribed')
    EXECUTE FUNCTION webhook_event_unsubscribed();

CREATE FUNCTION webhook_event_postponed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_events (id, type, occurred_at, campaign_id, step, prospect_id, mailbox_id, due_at)
    SELECT 'postponed:' || NEW.id, 'postponed', NEW.created_at, NEW.campaign_id, NEW.step, NEW.prospect_id,
           i.mailbox_id, NEW.due_after
    FROM (SELECT 1) one LEFT JOIN inbound_messages i ON i.id = NEW.inbound_id
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER postponements_webhook_event AFTER INSERT ON postponements
    FOR EACH ROW EXECUTE FUNCTION webhook_event_postponed();

-- Inbound events the old webhook had not delivered yet: carried over, in their order.
INSERT INTO webhook_events (id, type, occurred_at, campaign_id, step, prospect_id, mailbox_id, proven)
SELECT CASE WHEN class = 'reply' THEN 'replied:inbound:' || id
            WHEN class = 'bounce' THEN 'hard_bounced:' || campaign_id || ':' || step || ':' || prospect_id
            WHEN class = 'complaint' THEN 'complained:inbound:' || id
            ELSE 'unsubscribed:' || prospect_id END,
       CASE class WHEN 'reply' THEN 'replied' WHEN 'bounce' THEN 'hard_bounced'
                  WHEN 'complaint' THEN 'complained' ELSE 'unsubscribed' END,
       recorded_at, campaign_id, step, prospect_id, mailbox_id, proven
FROM inbound_messages
WHERE webhook_sent_at IS NULL AND campaign_id IS NOT NULL AND prospect_id IS NOT NULL
  AND (class IN ('reply', 'complaint', 'unsubscribe') OR (class = 'bounce' AND verdict = 'hard'))
ORDER BY id
ON CONFLICT (id) DO NOTHING;
