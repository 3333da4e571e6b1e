-- Variants of a step, spintax and a winner chosen on replies (docs/decisions/0052, issue 24).
-- Numbered 0015: 0014 is another change's; the runner applies any missing version in order.

-- A step's versions, in the file's order (the keyed choice walks them in this order).
-- Campaigns created before this migration have none: their sends read steps.subject and
-- steps.body as before, and their sends' variant is '' (the implicit one).
CREATE TABLE step_variants (
    campaign_id  text NOT NULL,
    step         integer NOT NULL,
    name         text NOT NULL,                 -- '' for a step written without variants
    position     integer NOT NULL,
    weight       double precision NOT NULL CHECK (weight > 0),
    -- NULL in a follow-up: "Re: " and the subject this prospect's step 1 had.
    subject      text CHECK (subject !~ '[\r\n]'),
    body         text NOT NULL,
    -- Retired (by `campaigns update`): no new prospect gets it; its sends and figures stay.
    retired_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, step, name),
    FOREIGN KEY (campaign_id, step) REFERENCES steps (campaign_id, step) ON DELETE CASCADE
);

-- The winner rule of a step, and its decision: by the rule (the variants schedule) or by
-- an operator (`outreach campaigns variants --pick`); NULL winner: none yet.
ALTER TABLE steps
    ADD COLUMN winner_metric text CHECK (winner_metric IN ('reply_rate', 'positive_reply_rate')),
    ADD COLUMN winner_min_sends integer CHECK (winner_min_sends >= 30),
    ADD COLUMN winner_confidence double precision CHECK (winner_confidence >= 0.5 AND winner_confidence < 1),
    ADD COLUMN winner text,
    ADD COLUMN winner_by text CHECK (winner_by IN ('rule', 'operator')),
    ADD COLUMN winner_at timestamptz,
    ADD COLUMN winner_figures jsonb;

-- Every decision and every reset, with its figures, for `campaigns status`.
CREATE TABLE step_winner_decisions (
    id           bigserial PRIMARY KEY,
    campaign_id  text NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    step         integer NOT NULL,
    winner       text,                          -- NULL: a reset
    decided_by   text NOT NULL CHECK (decided_by IN ('rule', 'operator')),
    figures      jsonb NOT NULL DEFAULT '{}',
    decided_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX step_winner_decisions_step ON step_winner_decisions (campaign_id, step, decided_at);

-- The variant each send was given when it was claimed (fixed there, like its Message-ID).
-- A constant default: no table rewrite, and every earlier send is the implicit variant.
ALTER TABLE sends ADD COLUMN variant text NOT NULL DEFAULT '';
