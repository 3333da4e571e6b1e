-- Operator controls on a running campaign (docs/decisions/0039, 0040).

ALTER TABLE campaigns
    -- An open campaign stays running with nothing left to send, waiting for
    -- prospects added later, until the operator closes it (closed_at).
    ADD COLUMN is_open    boolean NOT NULL DEFAULT false,
    ADD COLUMN closed_at  timestamptz,
    -- 'workspace': a prospect already active in another running campaign of the
    -- same workspace is skipped at import, so nobody gets two sequences at once.
    ADD COLUMN dedupe     text NOT NULL DEFAULT 'campaign' CHECK (dedupe IN ('campaign', 'workspace'));

-- Why an operator stopped a prospect (`outreach prospects stop --reason`).
ALTER TABLE prospects ADD COLUMN stop_reason text;

-- Workspace dedupe looks an address up across a workspace's campaigns.
CREATE INDEX prospects_email ON prospects (lower(email)) WHERE status = 'active';

-- A retired mailbox sends nothing more: its prospects in unfinished campaigns
-- moved to the campaign's other mailboxes or stopped ('mailbox_retired').
ALTER TABLE mailboxes ADD COLUMN retired_at timestamptz;
