-- A campaign pause is a stop (docs/decisions/0044): the operator's command writes it here
-- before it returns, and the check right before DATA reads it, as it reads a mailbox's
-- pause. `state` follows it ('paused' exactly while this is true, for a running campaign).
ALTER TABLE campaigns ADD COLUMN paused boolean NOT NULL DEFAULT false;
UPDATE campaigns SET paused = true WHERE state = 'paused';
