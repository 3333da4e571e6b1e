"""The one data converter used by every client and worker.

Values become JSON by pydantic, then every payload is encrypted by the codec
(config/codec.py), and failures carry their message and stack trace as an
encrypted payload too: an SMTP reply text (which may name the recipient) is
never stored in the clear by Temporal. See docs/decisions/0016.
"""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from config.codec import PayloadEncryption
from config.secrets import key_ring
from config.settings import Settings, get_settings


def payload_encryption(settings: Settings | None = None) -> PayloadEncryption:
    """The codec under the settings' keys; NoSecretKeys without any (never plaintext)."""
    return PayloadEncryption(key_ring((settings or get_settings()).secret_keys))


def data_converter(settings: Settings | None = None) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=payload_encryption(settings),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
