-- Issue 13's last three parts: erasure entries on the do-not-contact list
-- (docs/decisions/0032), each mailbox's DKIM selector for `mailboxes check-dns`,
-- and where the bounce-rate guard's window starts (docs/decisions/0033).

-- An erased address is kept only as a keyed hash: 'hmac:<key id>:<64 hex>', the
-- HMAC-SHA256 of its canonical entry under a key of the secret key ring
-- (store/address_hash.py). It never equals an address or '@domain', so the
-- equality checks on entry are unchanged.
ALTER TABLE suppressions
    DROP CONSTRAINT suppressions_entry_check,
    ADD CONSTRAINT suppressions_entry_check
        CHECK (entry ~ '^[^@]*@[^@]+$' OR entry ~ '^hmac:[A-Za-z0-9_.-]{1,32}:[0-9a-f]{64}$'),
    DROP CONSTRAINT suppressions_source_check,
    ADD CONSTRAINT suppressions_source_check
        CHECK (source IN ('manual', 'unsubscribe', 'hard_bounce', 'reply', 'complaint', 'import',
                          'erasure'));

ALTER TABLE mailboxes
    -- The DKIM selector whose record `<selector>._domainkey.<domain>` the DNS check reads.
    ADD COLUMN dkim_selector text,
    -- Set when an operator resumes a mailbox the bounce guard paused: the guard then
    -- counts only sends begun after it, never the old bounces that paused it.
    ADD COLUMN bounce_guard_since timestamptz;

-- Import reads a scope's erasure entries to hash its new prospects' addresses against
-- them; they are few beside the plain entries.
CREATE INDEX suppressions_hashed ON suppressions (workspace_id) WHERE entry LIKE 'hmac:%';
