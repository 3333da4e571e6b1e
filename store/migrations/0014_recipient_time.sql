-- Recipients' working time (issue 23, docs/decisions/0051).
--
-- New columns only, every one NULL or with a constant default: existing campaigns read
-- as before (no schedule: the mailbox's window alone; no zone: the mailbox's). The
-- CHECK on timezone_source reads every prospect once while the table is locked: on a
-- very large table migrate in a quiet moment.

-- Where a prospect is: its IANA zone (NULL: its mailbox's, the campaign's default when
-- it has none), how that was found (timezone, phone, country, default), and for
-- holidays its country (ISO alpha-2) and subdivision.
ALTER TABLE prospects
    ADD COLUMN timezone text,
    ADD COLUMN timezone_source text NOT NULL DEFAULT 'default'
        CHECK (timezone_source IN ('timezone', 'phone', 'country', 'default')),
    ADD COLUMN country text,
    ADD COLUMN subdivision text;

-- The recipient's window (the campaign file's `schedule:`, as worktime.schedule.Schedule
-- writes it); NULL: none, the mailbox's window alone decides, as before.
-- default_timezone: the zone of prospects whose own was not found (NULL: their mailbox's).
ALTER TABLE campaigns ADD COLUMN schedule jsonb, ADD COLUMN default_timezone text;

-- A delay in business days. delay_seconds then holds a lower bound of it (n days less
-- 3 hours), which the ledger's due time and the trigger of migration 0009 keep as for
-- any delay; the claim makes it exact from the previous send (store/open_work.py).
ALTER TABLE steps ADD COLUMN delay_business_days integer
    CHECK (delay_business_days IS NULL OR delay_business_days BETWEEN 1 AND 260);

