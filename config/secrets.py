"""The secret keys: AES-256-GCM keys with ids, newest first (docs/decisions/0015).

``OUTREACH_SECRET_KEYS`` holds ``id:base64key`` entries separated by commas,
e.g. ``k2:...,k1:...``. The first one encrypts; every one decrypts, so a key
can be rotated in (prepend it, run ``outreach keys rotate``) and then retired
(drop it from the list) without a moment when stored values cannot be read.

Two users share this ring: credentials at rest (store/secret_values.py) and
Temporal payloads (config/codec.py). Each binds its ciphertext to where it
belongs with associated data, so a value copied elsewhere does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets as _secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16  # AES-GCM's authentication tag, at the end of every ciphertext
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class SecretKeyError(Exception):
    """The keys are missing or malformed, or a value cannot be decrypted."""


class NoSecretKeys(SecretKeyError):
    def __init__(self) -> None:
        super().__init__(
            "OUTREACH_SECRET_KEYS is not set: credentials and Temporal payloads are stored"
            " encrypted and there is no key to do it with. Create one with"
            " `outreach keys generate` and set it in the environment (or .env)."
        )


class UnknownKeyId(SecretKeyError):
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"a value is encrypted under key id {key_id!r}, which is not in OUTREACH_SECRET_KEYS;"
            " add that key back (after the newest) to read it"
        )


@dataclass(frozen=True)
class KeyRing:
    # (key id, key) pairs, newest first; never printed.
    keys: tuple[tuple[str, bytes], ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise NoSecretKeys()
        ids = [k for k, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise SecretKeyError(f"OUTREACH_SECRET_KEYS names a key id twice: {ids}")

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        entries = [e.strip() for e in value.split(",") if e.strip()]
        if not entries:
            raise NoSecretKeys()
        keys: list[tuple[str, bytes]] = []
        for n, entry in enumerate(entries, 1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise SecretKeyError(
                    f"OUTREACH_SECRET_KEYS entry {n} is not 'id:base64key'"
                    " (id: 1-32 letters, digits, '_', '.', '-')"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise SecretKeyError(f"OUTREACH_SECRET_KEYS key {key_id!r} is not base64") from None
            if len(key) != KEY_BYTES:
                raise SecretKeyError(
                    f"OUTREACH_SECRET_KEYS key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            keys.append((key_id, key))
        return cls(tuple(keys))

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    def _key(self, key_id: str) -> bytes:
        for kid, key in self.keys:
            if kid == key_id:
                return key
        raise UnknownKeyId(key_id)

    def derived_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` alone (e.g. keyed Message-IDs), from the newest key:
        HMAC-SHA256 of the purpose's name, so it reveals nothing about the ring."""
        return hmac.new(self.keys[0][1], f"outreach:{purpose}".encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext + tag) under the newest key."""
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        return key_id, nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)

    def decrypt(self, key_id: str, blob: bytes, associated_data: bytes) -> bytes:
        key = self._key(key_id)
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            # Shorter than a nonce and a tag: AESGCM would raise its own ValueError about
            # the nonce, which callers (the codec server, credentials) do not expect.
            raise SecretKeyError(
                f"a value under key id {key_id!r} is {len(blob)} bytes, shorter than any"
                f" ciphertext ({NONCE_BYTES + TAG_BYTES}): it was cut short or is not one"
            )
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise SecretKeyError(
                f"a value under key id {key_id!r} failed authentication: the key with that id"
                " is not the one it was encrypted with, or the value was altered or moved"
            ) from None


def generate_entry(key_id: str) -> str:
    """A new ``id:base64key`` entry for OUTREACH_SECRET_KEYS."""
    if not _KEY_ID.match(key_id):
        raise SecretKeyError(f"key id {key_id!r}: use 1-32 letters, digits, '_', '.', '-'")
    return f"{key_id}:{base64.b64encode(_secrets.token_bytes(KEY_BYTES)).decode()}"


def key_ring(value: str | None) -> KeyRing:
    """The ring from a setting's value; NoSecretKeys if it is empty."""
    return KeyRing.parse(value or "")
