"""Unsubscribe tokens (mail/unsubscribe.py): they round-trip under the ring that signed
them and under any ring still holding the key, and nothing else verifies."""

from __future__ import annotations

import base64

import pytest

from config.secrets import KeyRing, generate_entry, key_ring
from mail.unsubscribe import (
    MAX_TOKEN_CHARS,
    TAG_BYTES,
    BadToken,
    SendKey,
    mailto_url,
    sign,
    token_in_subject,
    unsubscribe_url,
    verify,
)

K1 = generate_entry("k1")
K2 = generate_entry("k2")
SEND = SendKey("acme", "cmp-0123456789", 2, 41_234)


def ring(*entries: str) -> KeyRing:
    return key_ring(",".join(entries))


def test_a_token_round_trips_and_is_stable_for_a_send() -> None:
    r = ring(K1)
    token = sign(r, SEND)
    assert verify(r, token) == SEND
    assert sign(r, SEND) == token  # every attempt of the send carries the same link
    assert sign(r, SendKey("acme", "cmp-0123456789", 3, 41_234)) != token


def test_a_token_stays_valid_while_its_key_is_in_the_ring() -> None:
    old = sign(ring(K1), SEND)
    rotated = ring(K2, K1)  # a new key in front; the old one still listed
    assert verify(rotated, old) == SEND
    assert verify(rotated, sign(rotated, SEND)) == SEND
    with pytest.raises(BadToken, match="not in the ring"):
        verify(ring(K2), old)  # the old key dropped: its links end


def test_a_token_signed_by_a_foreign_key_with_the_same_id_is_refused() -> None:
    foreign = sign(ring(generate_entry("k1")), SEND)
    with pytest.raises(BadToken, match="tag"):
        verify(ring(K1), foreign)


def test_every_single_character_change_is_refused() -> None:
    r = ring(K1)
    token = sign(r, SEND)
    for i in range(len(token)):
        for replacement in ("A", "z", "-"):
            if token[i] == replacement:
                continue
            tampered = token[:i] + replacement + token[i + 1:]
            with pytest.raises(BadToken):
                verify(r, tampered)


def test_a_field_rewritten_and_re_encoded_is_refused() -> None:
    # The body is readable base64: changing the prospect id and keeping the tag must fail.
    r = ring(K1)
    raw = base64.urlsafe_b64decode(sign(r, SEND) + "==")
    forged = raw.replace(b"41234", b"41235")
    assert forged != raw
    with pytest.raises(BadToken, match="tag"):
        verify(r, base64.urlsafe_b64encode(forged).rstrip(b"=").decode())


@pytest.mark.parametrize("bad", [
    "", "   ", "not a token", "abc", "a" * (MAX_TOKEN_CHARS + 1), "ab/cd", "ab+cd==", "é" * 30,
])
def test_garbage_is_refused(bad: str) -> None:
    with pytest.raises(BadToken):
        verify(ring(K1), bad)


def test_a_truncated_token_is_refused() -> None:
    r = ring(K1)
    token = sign(r, SEND)
    for cut in (1, 2, 5, 22, len(token) // 2, len(token) - 1):
        with pytest.raises(BadToken):
            verify(r, token[:-cut])


def test_an_unknown_key_id_is_refused() -> None:
    with pytest.raises(BadToken, match="not in the ring"):
        verify(ring(K2), sign(ring(K1), SEND))


def test_the_token_never_contains_the_address_and_travels_unchanged() -> None:
    r = ring(K1)
    token = sign(r, SEND)
    decoded = base64.urlsafe_b64decode(token + "==")
    # What the token says (the tag after it is random bytes, which may hold any byte).
    assert b"@" not in decoded[:-TAG_BYTES] and "@" not in token
    assert token.replace("-", "").replace("_", "").isalnum()  # URL path and subject safe
    assert unsubscribe_url("https://u.example.com/", token) == f"https://u.example.com/u/{token}"
    mailto = mailto_url("sales@example.com", token)
    assert mailto == f"mailto:sales@example.com?subject=unsubscribe%20{token}"


def test_the_inbox_reader_finds_the_token_in_a_reply_subject() -> None:
    r = ring(K1)
    token = sign(r, SEND)
    assert token_in_subject(f"unsubscribe {token}") == token
    assert token_in_subject(f"Re: Unsubscribe {token}") == token
    found = token_in_subject(f"RE: unsubscribe {token}")
    assert found is not None and verify(r, found) == SEND
    assert token_in_subject("Re: your offer") is None


def test_ids_that_cannot_be_signed_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be put"):
        sign(ring(K1), SendKey("ac\x1fme", "cmp-1", 1, 1))
