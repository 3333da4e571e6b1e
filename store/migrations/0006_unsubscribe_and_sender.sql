-- One-click unsubscribe and the sender's identity (docs/decisions/0030, 0031).
-- Every column is new and nullable or defaulted: existing rows keep sending as before.

ALTER TABLE mailboxes
    -- The From header's display name, and a Reply-To address (NULL: none).
    ADD COLUMN from_name text CHECK (from_name !~ '[\r\n]'),
    ADD COLUMN reply_to text CHECK (reply_to !~ '[\r\n]'),
    -- Where the List-Unsubscribe mailto form writes (NULL: the mailbox itself).
    ADD COLUMN unsubscribe_mailto text CHECK (unsubscribe_mailto !~ '[\r\n]');

ALTER TABLE campaigns
    -- Overrides the mailboxes' from_name for this campaign's messages.
    ADD COLUMN from_name text CHECK (from_name !~ '[\r\n]'),
    -- 'header': List-Unsubscribe only; 'header_and_footer': also a footer line in the body.
    ADD COLUMN unsubscribe text NOT NULL DEFAULT 'header'
        CHECK (unsubscribe IN ('header', 'header_and_footer'));
