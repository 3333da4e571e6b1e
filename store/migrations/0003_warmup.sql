-- Warm-up ramp for new mailboxes: `warmup_start` sends on the first day,
-- `warmup_increment` more each day after `warmup_began`, never above daily_limit.
-- NULL start: no ramp.
ALTER TABLE mailboxes
    ADD COLUMN warmup_start integer CHECK (warmup_start > 0),
    ADD COLUMN warmup_increment integer NOT NULL DEFAULT 0 CHECK (warmup_increment >= 0),
    ADD COLUMN warmup_began timestamptz NOT NULL DEFAULT now();
