-- Every SMTP transaction has its own place in the limits (docs/decisions/0042): each
-- attempt records the instant of the place it held (the provider slot the gate or the
-- send activity reserved for it), so a minute as a provider saw it can be set against
-- the places the engine granted for it. NULL: an attempt recorded before this column.
ALTER TABLE send_attempts ADD COLUMN place_at timestamptz;
