"""The key ring (config/secrets.py) and the credential tokens built on it
(store/secret_values.py): parsing, rotation, tampering, binding, unknown keys."""

from __future__ import annotations

import base64

import pytest

from config.secrets import (
    KEY_BYTES,
    KeyRing,
    NoSecretKeys,
    SecretKeyError,
    UnknownKeyId,
    generate_entry,
    key_ring,
)
from store.secret_values import CredentialError, key_id_of, open_, seal

OLD, NEW = generate_entry("k1"), generate_entry("k2")
COLUMN = "mailboxes.password"


def b64(n: int) -> str:
    return base64.b64encode(b"\x01" * n).decode()


@pytest.mark.parametrize("value", ["", "  ", ",", None])
def test_no_keys_is_its_own_error(value: str | None) -> None:
    with pytest.raises(NoSecretKeys, match="OUTREACH_SECRET_KEYS is not set"):
        key_ring(value)


@pytest.mark.parametrize(("value", "message"), [
    (b64(32), "entry 1 is not 'id:base64key'"),
    (f"k1:{b64(32)},bad id:{b64(32)}", "entry 2 is not 'id:base64key'"),
    (f"{'x' * 33}:{b64(32)}", "entry 1 is not 'id:base64key'"),
    ("k1:not base64!", "key 'k1' is not base64"),
    (f"k1:{b64(16)}", "key 'k1' is 16 bytes; AES-256 needs 32"),
    (f"k1:{b64(32)},k1:{b64(32)}", "names a key id twice"),
])
def test_malformed_keys_are_named(value: str, message: str) -> None:
    with pytest.raises(SecretKeyError, match=message) as caught:
        KeyRing.parse(value)
    assert b64(32) not in str(caught.value)  # a key never appears in an error


def test_a_generated_entry_parses_and_the_key_is_never_printed() -> None:
    ring = key_ring(f" {NEW} , {OLD} ")
    assert (ring.current_id, ring.ids) == ("k2", ("k2", "k1"))
    assert len(ring.keys[0][1]) == KEY_BYTES
    secret = NEW.split(":", 1)[1]
    assert secret not in repr(ring) and secret not in str(ring)
    with pytest.raises(SecretKeyError, match="key id 'no good'"):
        generate_entry("no good")


def test_rotation_newest_encrypts_every_key_decrypts() -> None:
    before = key_ring(OLD)
    key_id, blob = before.encrypt(b"hunter2", b"ad")
    assert key_id == "k1"

    rotated = key_ring(f"{NEW},{OLD}")
    assert rotated.decrypt(key_id, blob, b"ad") == b"hunter2"  # the old value still reads
    new_id, new_blob = rotated.encrypt(b"hunter2", b"ad")
    assert new_id == "k2" and new_blob != blob
    assert key_ring(NEW).decrypt(new_id, new_blob, b"ad") == b"hunter2"

    with pytest.raises(UnknownKeyId, match="key id 'k1'") as caught:
        key_ring(NEW).decrypt(key_id, blob, b"ad")  # the old key retired
    assert caught.value.key_id == "k1"


def test_tampered_ciphertext_fails_authentication() -> None:
    ring = key_ring(NEW)
    key_id, blob = ring.encrypt(b"hunter2", b"ad")
    for position in (0, 12, len(blob) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(SecretKeyError, match="failed authentication"):
            ring.decrypt(key_id, bytes(tampered), b"ad")


def test_a_blob_shorter_than_nonce_and_tag_is_a_secret_key_error_not_a_value_error() -> None:
    # The codec server answers SecretKeyError with 400; AESGCM's own ValueError about the
    # nonce was a different type to every caller (issue "Trust only what is proven").
    ring = key_ring(NEW)
    key_id, empty = ring.encrypt(b"", b"ad")
    assert len(empty) == 28 and ring.decrypt(key_id, empty, b"ad") == b""  # the shortest there is
    for blob in (b"", b"short", b"\x00" * 7, b"\x00" * 11, b"\x00" * 12, empty[:-1]):
        with pytest.raises(SecretKeyError, match="key id 'k2'") as caught:
            ring.decrypt(key_id, blob, b"ad")
        assert type(caught.value) is SecretKeyError


def test_wrong_associated_data_or_key_fails_authentication() -> None:
    ring = key_ring(NEW)
    key_id, blob = ring.encrypt(b"hunter2", b"mailboxes.password:mb-1")
    with pytest.raises(SecretKeyError, match="failed authentication"):
        ring.decrypt(key_id, blob, b"mailboxes.password:mb-2")
    impostor = key_ring(generate_entry("k2"))  # same id, another key
    with pytest.raises(SecretKeyError, match="key id 'k2' failed authentication"):
        impostor.decrypt(key_id, blob, b"mailboxes.password:mb-1")


def test_a_sealed_value_is_a_token_under_the_newest_key() -> None:
    ring = key_ring(f"{NEW},{OLD}")
    token = seal(ring, "hunter2", table_column=COLUMN, mailbox_id="mb-1")
    assert token.startswith("enc:v1:k2:") and "hunter2" not in token
    assert key_id_of(token) == "k2" and key_id_of("hunter2") is None
    assert open_(ring, token, table_column=COLUMN, mailbox_id="mb-1") == "hunter2"
    assert seal(ring, "hunter2", table_column=COLUMN, mailbox_id="mb-1") != token  # fresh nonce


@pytest.mark.parametrize(("column", "mailbox_id"), [
    (COLUMN, "mb-2"), ("mailboxes.oauth_refresh_token", "mb-1"),
])
def test_a_token_moved_to_another_row_or_column_does_not_open(column: str, mailbox_id: str) -> None:
    ring = key_ring(NEW)
    token = seal(ring, "hunter2", table_column=COLUMN, mailbox_id="mb-1")
    with pytest.raises(CredentialError, match=f"mailbox '{mailbox_id}', {column}: .*failed authentication"):
        open_(ring, token, table_column=column, mailbox_id=mailbox_id)


def test_a_token_under_a_removed_key_names_the_key_and_the_mailbox() -> None:
    token = seal(key_ring(OLD), "hunter2", table_column=COLUMN, mailbox_id="mb-1")
    with pytest.raises(CredentialError) as caught:
        open_(key_ring(NEW), token, table_column=COLUMN, mailbox_id="mb-1")
    message = str(caught.value)
    assert "'mb-1'" in message and "key id 'k1'" in message and "\n" not in message


def test_plaintext_and_broken_tokens_are_refused_not_used() -> None:
    ring = key_ring(NEW)
    with pytest.raises(CredentialError, match="in the clear.*outreach keys rotate"):
        open_(ring, "hunter2", table_column=COLUMN, mailbox_id="mb-1")
    for broken in ("enc:v1:k2", "enc:v1:k2:***"):
        with pytest.raises(CredentialError, match="not a valid encrypted value"):
            open_(ring, broken, table_column=COLUMN, mailbox_id="mb-1")
