"""Credentials at rest: each value a text token ``enc:v1:<key id>:<base64(nonce|ciphertext)>``.

The key id says which key of the ring opens it, so keys rotate value by value.
The associated data binds a value to its column and mailbox
(``mailboxes.password`` of ``mb-1``): a token copied to another row or column
does not decrypt. See docs/decisions/0015.
"""

from __future__ import annotations

import base64
import binascii

from config.secrets import KeyRing, SecretKeyError
from store import StoreError

PREFIX = "enc:v1:"

# Every column that holds a credential (all in ``mailboxes``, keyed by id).
# ``password_env`` only names a worker's environment variable: not a secret.
CREDENTIAL_COLUMNS = (
    "password", "oauth_client_secret", "oauth_refresh_token", "oauth_access_token", "imap_password",
)


class CredentialError(StoreError):
    """A stored credential cannot be read: no key for it, tampered, moved, or in the clear."""


def _associated_data(table_column: str, mailbox_id: str) -> bytes:
    return f"outreach:credential:v1:{table_column}:{mailbox_id}".encode()


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def key_id_of(stored: str) -> str | None:
    """The key id a token is under, or None for a value stored in the clear."""
    if not is_sealed(stored):
        return None
    return stored[len(PREFIX):].partition(":")[0]


def seal(ring: KeyRing, value: str, *, table_column: str, mailbox_id: str) -> str:
    """``value`` encrypted under the ring's newest key, as a text token."""
    key_id, blob = ring.encrypt(value.encode(), _associated_data(table_column, mailbox_id))
    return f"{PREFIX}{key_id}:{base64.b64encode(blob).decode()}"


def open_(ring: KeyRing, stored: str, *, table_column: str, mailbox_id: str) -> str:
    """The value of a token ``seal`` made for this column and mailbox.

    Raises CredentialError naming the mailbox and column (and the key id, when
    that key is missing or does not fit); a value from before encryption is
    refused, not used: ``outreach keys rotate`` seals it.
    """
    where = f"mailbox {mailbox_id!r}, {table_column}"
    if not is_sealed(stored):
        raise CredentialError(
            f"{where} is stored in the clear (from before credentials were encrypted);"
            " run `outreach keys rotate` to encrypt it"
        )
    key_id, sep, encoded = stored[len(PREFIX):].partition(":")
    try:
        if not sep:
            raise ValueError
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise CredentialError(f"{where} is not a valid encrypted value") from None
    try:
        plaintext = ring.decrypt(key_id, blob, _associated_data(table_column, mailbox_id))
    except SecretKeyError as exc:
        raise CredentialError(f"{where}: {exc}") from None
    return plaintext.decode()
