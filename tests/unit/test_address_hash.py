"""Erasure entries' keyed hashes (store/address_hash.py, docs/decisions/0032)."""

from __future__ import annotations

import hashlib
import re

from config.secrets import generate_entry, key_ring
from specs.suppressions import canonical_entry
from store.address_hash import current_hash, every_hash, is_hashed, key_id_of

K1, K2 = generate_entry("k1"), generate_entry("k2")
SCHEMA_CHECK = re.compile(r"^hmac:[A-Za-z0-9_.-]{1,32}:[0-9a-f]{64}$")  # migration 0007


def test_a_hash_names_its_key_and_matches_under_the_rotated_ring_only_while_the_key_is_in_it() -> None:
    entry = "zed@example.org"
    made = current_hash(key_ring(K1), entry)
    assert SCHEMA_CHECK.match(made) and is_hashed(made) and key_id_of(made) == "k1"
    assert made == current_hash(key_ring(K1), entry)  # deterministic under one key
    assert made in every_hash(key_ring(f"{K2},{K1}"), entry)  # after `keys rotate`
    assert made not in every_hash(key_ring(K2), entry)  # the key dropped
    assert made != current_hash(key_ring(K1), "zed2@example.org")


def test_without_the_key_the_hash_is_not_the_plain_digest_and_holds_nothing_of_the_address() -> None:
    made = current_hash(key_ring(K1), "zed@example.org")
    assert hashlib.sha256(b"zed@example.org").hexdigest() not in made
    assert "zed" not in made and "example" not in made
    # Exported lists carry the form as it is, and it reads back unchanged.
    assert canonical_entry(f"  {made} ") == made
    assert not is_hashed("hmac:k1:zed@example.org")
