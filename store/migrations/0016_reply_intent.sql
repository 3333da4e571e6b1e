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
