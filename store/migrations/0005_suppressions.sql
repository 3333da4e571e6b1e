-- The do-not-contact list (docs/decisions/0026): addresses and whole domains that
-- no campaign may write to, per workspace and globally, and the prospect states
-- that come with it.

CREATE TABLE suppressions (
    id            bigserial PRIMARY KEY,
    -- NULL is the global scope, which every workspace obeys.
    workspace_id  text REFERENCES workspaces (id) ON DELETE CASCADE,
    -- 'local@domain' (one address) or '@domain' (every address of the domain), in
    -- the canonical form of store/suppressions.py: email-validator's normalized
    -- form, lower-cased. Prospect addresses are stored normalized the same way, so
    -- lower(prospects.email) meets an entry with a plain equality.
    entry         text NOT NULL CHECK (entry ~ '^[^@]*@[^@]+$'),
    source        text NOT NULL CHECK (source IN ('manual', 'unsubscribe', 'hard_bounce', 'reply',
                                                  'complaint', 'import')),
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- One entry per scope; the global scope (NULL) counts as one scope.
    CONSTRAINT suppressions_scope_entry UNIQUE NULLS NOT DISTINCT (workspace_id, entry)
);
-- Enforcement looks an address up by entry (its own and its domain's) in two
-- scopes at once: entry first, so one probe finds every scope holding it.
-- (suppressions_scope_entry serves listing, exporting and removing by scope.)
CREATE INDEX suppressions_entry ON suppressions (entry, workspace_id);

-- Prospect states: 'suppressed' (on the list, at import or when a step meets it)
-- and 'stopped' join the earlier four. A wider set: every existing row satisfies it.
ALTER TABLE prospects
    DROP CONSTRAINT prospects_status_check,
    ADD CONSTRAINT prospects_status_check
        CHECK (status IN ('active', 'replied', 'hard_bounced', 'unsubscribed', 'suppressed', 'stopped'));
