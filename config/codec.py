"""The payload codec: every Temporal payload leaves the process AES-256-GCM encrypted.

The whole serialized payload (its metadata and data) becomes the ciphertext; what
the server stores is ``encoding: binary/encrypted``, the key id, and opaque bytes.
Keys come from the key ring of config/secrets.py: the newest encrypts, every key
in the ring decrypts (docs/decisions/0016).
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from config.secrets import KeyRing, SecretKeyError

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# Binds the ciphertext to its use: a credential encrypted under the same ring
# (with its own associated data) does not decrypt as a payload, nor the reverse.
ASSOCIATED_DATA = b"outreach temporal payload: " + ENCODING


class PayloadEncryption(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        key_id, blob = self.ring.encrypt(payload.SerializeToString(), ASSOCIATED_DATA)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=blob)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            # Written before payloads were encrypted (a history from an older
            # version): nothing to decrypt. Everything written now is sealed.
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        if not key_id:
            raise SecretKeyError(f"an encrypted Temporal payload has no {KEY_ID!r} in its metadata")
        return Payload.FromString(self.ring.decrypt(key_id, payload.data, ASSOCIATED_DATA))
