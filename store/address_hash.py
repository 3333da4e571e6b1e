"""Keyed hashes of addresses, for the erasure entries of the do-not-contact list
(docs/decisions/0032).

An erased address is kept only as ``hmac:<key id>:<hex>``: HMAC-SHA256 of its
canonical entry (specs/suppressions.py) under a key derived from one key of the
secret key ring. Without the key the hash cannot be turned back into the address,
nor can a guessed address be tested against it. A check hashes under every key of
the ring, so an entry made before ``keys rotate`` still matches while its key is in
``OUTREACH_SECRET_KEYS``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from config.secrets import KeyRing

PREFIX = "hmac:"
_HASHED = re.compile(r"^hmac:([A-Za-z0-9_.-]{1,32}):[0-9a-f]{64}$")  # the schema's CHECK too
# The ring's keys are AES keys; the hash uses a key derived for this one purpose.
_PURPOSE = b"outreach: erased address v1"


def is_hashed(entry: str) -> bool:
    return _HASHED.match(entry) is not None


def key_id_of(entry: str) -> str:
    found = _HASHED.match(entry)
    if found is None:
        raise ValueError(f"{entry!r} is not a hashed entry")
    return found.group(1)


def hasher(key_id: str, key: bytes) -> Callable[[str], str]:
    """Hashes entries under one key (its derived key made once, for an import's many)."""
    derived = hmac.new(key, _PURPOSE, hashlib.sha256).digest()

    def hash_entry(entry: str) -> str:
        return f"{PREFIX}{key_id}:{hmac.new(derived, entry.encode(), hashlib.sha256).hexdigest()}"

    return hash_entry


def hashed(key_id: str, key: bytes, entry: str) -> str:
    return hasher(key_id, key)(entry)


def current_hash(ring: KeyRing, entry: str) -> str:
    """The hash an erasure stores: under the ring's newest key."""
    key_id, key = ring.keys[0]
    return hashed(key_id, key, entry)


def every_hash(ring: KeyRing, entry: str) -> list[str]:
    """The hash under each key of the ring: what a check looks for."""
    return [hashed(key_id, key, entry) for key_id, key in ring.keys]
