-- What the inbox trusts (docs/decisions/0050, issue 22).

-- Whose Authentication-Results header vouches for a sender: the mailbox provider's
-- authserv-id ('mx.google.com'), 'topmost' for a provider that writes none (Microsoft
-- 365), NULL: no header is believed, and a message matched by its From address alone
-- only stops the one sequence it names.
ALTER TABLE mailboxes ADD COLUMN inbox_authserv_id text
    CHECK (inbox_authserv_id IS NULL OR inbox_authserv_id ~ '^[a-z0-9.-]{1,253}$');
UPDATE mailboxes SET inbox_authserv_id = 'mx.google.com'
    WHERE lower(imap_host) IN ('imap.gmail.com', 'imap.googlemail.com');
UPDATE mailboxes SET inbox_authserv_id = 'topmost'
    WHERE lower(imap_host) IN ('outlook.office365.com', 'outlook.office.com', 'imap-mail.outlook.com');

-- Whether the message was proof enough to act in full. A message that is not is kept,
-- linked to the send it names (for `trace`), with its reason in detail, and counts in
-- no rate (the deliverability guard, the complaint rate, replies per step). Rows from
-- before this migration were acted on in full: true.
ALTER TABLE inbound_messages ADD COLUMN proven boolean NOT NULL DEFAULT true;
