-- Credentials encrypted at rest (docs/decisions/0015). The columns stay text:
-- each value becomes a token 'enc:v1:<key id>:<base64>' that the application
-- seals and opens with OUTREACH_SECRET_KEYS (store/secret_values.py). SQL has
-- no key, so values written before this migration stay as they are until
-- `outreach keys rotate` seals them; reading one fails until then.

COMMENT ON COLUMN mailboxes.password IS
    'encrypted (enc:v1:<key id>:...); read only by store.accounts';
COMMENT ON COLUMN mailboxes.password_env IS
    'the name of a worker environment variable holding the password; not a secret';
COMMENT ON COLUMN mailboxes.oauth_client_secret IS
    'encrypted (enc:v1:<key id>:...); read only by store.accounts';
COMMENT ON COLUMN mailboxes.oauth_refresh_token IS
    'encrypted (enc:v1:<key id>:...); read only by store.accounts';
COMMENT ON COLUMN mailboxes.oauth_access_token IS
    'encrypted (enc:v1:<key id>:...); read only by store.accounts';

-- Refuse a credential written in the clear, whoever writes it. A trigger on
-- the credential columns rather than a CHECK: a CHECK is evaluated on every
-- update of the row, so a row still holding an old plaintext value could not
-- even be paused until `keys rotate` ran; this fires only when a credential
-- column is written.
CREATE FUNCTION mailboxes_credentials_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF left(NEW.password, 7) <> 'enc:v1:'
       OR left(NEW.oauth_client_secret, 7) <> 'enc:v1:'
       OR left(NEW.oauth_refresh_token, 7) <> 'enc:v1:'
       OR left(NEW.oauth_access_token, 7) <> 'enc:v1:' THEN
        RAISE EXCEPTION 'mailbox %: credentials must be stored encrypted (enc:v1:...), not in the clear', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER mailboxes_credentials_sealed
    BEFORE INSERT OR UPDATE OF password, oauth_client_secret, oauth_refresh_token, oauth_access_token
    ON mailboxes FOR EACH ROW EXECUTE FUNCTION mailboxes_credentials_sealed();
