-- Maintenance: who paused a mailbox, OAuth2 credentials for XOAUTH2, and the
-- index retention cleanup walks (see docs/decisions/0010, 0012).

-- 'operator' or 'health_check' (NULL when not paused): a health check resumes
-- only the mailboxes it paused itself.
ALTER TABLE mailboxes
    ADD COLUMN paused_by text CHECK (paused_by IN ('operator', 'health_check')),
    ADD COLUMN auth_kind text NOT NULL DEFAULT 'password' CHECK (auth_kind IN ('password', 'oauth2')),
    ADD COLUMN oauth_provider text CHECK (oauth_provider IN ('google', 'microsoft')),
    ADD COLUMN oauth_client_id text,
    -- Secrets, read only by store.accounts (one place, to be encrypted later).
    ADD COLUMN oauth_client_secret text,
    ADD COLUMN oauth_refresh_token text,
    ADD COLUMN oauth_access_token text,
    ADD COLUMN oauth_expires_at timestamptz,
    ADD CONSTRAINT mailboxes_oauth_complete CHECK (
        auth_kind = 'password'
        OR (oauth_provider IS NOT NULL AND oauth_client_id IS NOT NULL
            AND oauth_refresh_token IS NOT NULL));

UPDATE mailboxes SET paused_by = 'operator' WHERE paused;

-- Retention cleanup deletes finished rows campaign by campaign (only finished
-- campaigns' rows may go: the step scheduler reads a running campaign's sent
-- rows). This index gives each batch an exact range; it replaces sends_cleanup,
-- which could only be walked across every campaign at once.
DROP INDEX IF EXISTS sends_cleanup;
CREATE INDEX sends_retention ON sends (campaign_id, state, finished_at)
    WHERE finished_at IS NOT NULL;

-- Reconciliation looks at open sends only: a small partial index keeps that
-- cheap however large the ledger grows.
CREATE INDEX sends_open ON sends (campaign_id) WHERE state IN ('queued', 'sending', 'soft_bounced');
