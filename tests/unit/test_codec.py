"""The payload codec and its codec server: what leaves a process is ciphertext
under the newest key, any key of the ring reads it back, and nothing else does."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import click
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from activities.models import SendOutcome, SendResult
from client.codec_server import MAX_REQUEST_BYTES, build_app, configured_hosts, host_rules, serving
from client.devstack import KEYS_VAR, ensure_dev_key
from config.codec import ENCODING, KEY_ID, PayloadEncryption
from config.converter import data_converter
from config.secrets import KeyRing, NoSecretKeys, SecretKeyError, UnknownKeyId, generate_entry
from config.settings import Settings

REPLY = "4.2.0 <zq5-codec@example.com> greylisted, try again later"
OLD, NEW = generate_entry("k1"), generate_entry("k2")


def ring(*entries: str) -> KeyRing:
    return KeyRing.parse(",".join(entries))


def result() -> SendResult:
    return SendResult(outcome=SendOutcome.SENT, code=250, reply=REPLY)


async def test_values_round_trip_and_leave_as_ciphertext_under_the_newest_key_id() -> None:
    converter = data_converter(Settings(secret_keys=f"{NEW},{OLD}"))
    [payload] = await converter.encode([result()])
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID] == b"k2"
    assert set(payload.metadata) == {"encoding", KEY_ID}  # not even the inner encoding shows
    assert b"zq5-codec" not in payload.SerializeToString()
    assert await converter.decode([payload], [SendResult]) == [result()]


async def test_the_same_value_encrypts_differently_each_time() -> None:
    codec = PayloadEncryption(ring(NEW))
    [plain] = data_converter(Settings(secret_keys=NEW)).payload_converter.to_payloads([result()])
    first, second = await codec.encode([plain, plain])
    assert first.data != second.data  # a fresh nonce each time


async def test_a_payload_under_an_older_key_decodes_after_rotation() -> None:
    [before] = await PayloadEncryption(ring(OLD)).encode([Payload(data=b"kept")])
    rotated = PayloadEncryption(ring(NEW, OLD))
    assert (await rotated.decode([before]))[0].data == b"kept"
    [after] = await rotated.encode([Payload(data=b"new")])
    assert after.metadata[KEY_ID] == b"k2"


async def test_a_payload_under_a_key_no_longer_in_the_ring_names_its_key_id() -> None:
    [sealed] = await PayloadEncryption(ring(OLD)).encode([Payload(data=b"x")])
    with pytest.raises(UnknownKeyId, match="'k1'"):
        await PayloadEncryption(ring(NEW)).decode([sealed])


async def test_altered_ciphertext_or_a_swapped_key_id_fails_authentication() -> None:
    codec = PayloadEncryption(ring(NEW, OLD))
    [sealed] = await codec.encode([Payload(data=b"x")])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(SecretKeyError, match="failed authentication"):
        await codec.decode([flipped])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID] = b"k1"
    with pytest.raises(SecretKeyError, match="failed authentication"):
        await codec.decode([relabelled])
    nameless = Payload()
    nameless.CopyFrom(sealed)
    del nameless.metadata[KEY_ID]
    with pytest.raises(SecretKeyError, match="encryption-key-id"):
        await codec.decode([nameless])


async def test_payloads_written_before_encryption_still_decode() -> None:
    old = data_converter(Settings(secret_keys=NEW)).payload_converter.to_payloads([result()])
    assert await PayloadEncryption(ring(NEW)).decode(old) == old


def test_without_keys_the_converter_refuses_instead_of_writing_plaintext() -> None:
    for empty in ("", " , "):
        with pytest.raises(NoSecretKeys, match="OUTREACH_SECRET_KEYS is not set"):
            data_converter(Settings(secret_keys=empty))


async def test_a_failure_message_travels_encrypted_and_comes_back() -> None:
    converter = data_converter(Settings(secret_keys=NEW))
    failure = Failure()
    try:
        raise ApplicationError(f"soft_bounced: 451 {REPLY}", type="SoftBounce")
    except ApplicationError as exc:
        await converter.encode_failure(exc, failure)
    wire = failure.SerializeToString()
    assert b"zq5-codec" not in wire and b"greylisted" not in wire
    assert failure.message == "Encoded failure"
    assert failure.application_failure_info.type == "SoftBounce"  # a class name, kept for retries
    back = await converter.decode_failure(failure)
    assert isinstance(back, ApplicationError) and REPLY in str(back)


# -- the codec server -------------------------------------------------------------

UI = "http://127.0.0.1:8233"
STRANGER = "http://evil.example.com"


@pytest.fixture
async def codec_url() -> AsyncIterator[str]:
    async with serving(build_app(PayloadEncryption(ring(NEW, OLD)), [UI], None), "127.0.0.1", 0) as url:
        yield url


async def post(url: str, payloads: list[Payload], **headers: str) -> tuple[int, dict[str, str], str]:
    body = json_format.MessageToJson(Payloads(payloads=payloads))
    async with aiohttp.ClientSession() as http, http.post(
        url, data=body, headers={"Content-Type": "application/json", **headers}
    ) as response:
        return response.status, dict(response.headers), await response.text()


def payloads_of(text: str) -> list[Payload]:
    return list(json_format.Parse(text, Payloads()).payloads)


async def test_codec_server_decodes_what_a_worker_encoded_at_both_paths(codec_url: str) -> None:
    converter = data_converter(Settings(secret_keys=f"{NEW},{OLD}"))
    sealed = await converter.encode([result()])
    for path in ("/decode", "/default/decode"):
        status, headers, text = await post(codec_url + path, sealed, Origin=UI, **{"X-Namespace": "default"})
        assert status == 200, text
        assert headers["Access-Control-Allow-Origin"] == UI
        [opened] = payloads_of(text)
        assert opened.metadata["encoding"] == b"json/plain"
        assert REPLY.encode() in opened.data
    status, _, text = await post(codec_url + "/encode", [Payload(data=b"x")])
    assert status == 200
    [encoded] = payloads_of(text)
    assert encoded.metadata[KEY_ID] == b"k2"


async def test_codec_server_answers_the_web_ui_preflight_and_only_for_its_origin(codec_url: str) -> None:
    asked = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}
    async with aiohttp.ClientSession() as http:
        async with http.options(codec_url + "/default/decode", headers={"Origin": UI, **asked}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == UI
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            allowed = {h.strip() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"content-type", "x-namespace", "authorization"} <= allowed
        async with http.options(codec_url + "/decode", headers={"Origin": STRANGER, **asked}) as r:
            assert "Access-Control-Allow-Origin" not in r.headers
    _, headers, _ = await post(codec_url + "/decode", [], Origin=STRANGER)
    assert "Access-Control-Allow-Origin" not in headers


async def test_codec_server_with_a_token_refuses_requests_without_it() -> None:
    app = build_app(PayloadEncryption(ring(NEW)), [UI], "tok-123")
    [sealed] = await PayloadEncryption(ring(NEW)).encode([Payload(data=b"x")])
    async with serving(app, "127.0.0.1", 0) as url:
        status, headers, _ = await post(url + "/decode", [sealed], Origin=UI)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
        assert headers["Access-Control-Allow-Origin"] == UI  # so the UI can tell why
        assert (await post(url + "/decode", [sealed], Authorization="Bearer wrong"))[0] == 401
        status, _, text = await post(url + "/decode", [sealed], Authorization="Bearer tok-123")
        assert status == 200 and payloads_of(text)[0].data == b"x"


async def test_codec_server_says_what_is_wrong_with_a_bad_request(codec_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(codec_url + "/decode", data=b"{not json") as r:
        assert r.status == 400 and "Payloads" in (await r.json())["error"]
    [stranger] = await PayloadEncryption(ring(generate_entry("k9"))).encode([Payload(data=b"x")])
    status, _, text = await post(codec_url + "/decode", [stranger])
    assert status == 400 and "'k9'" in text


# -- the development key of `outreach dev` / `outreach demo` ---------------------------


def test_dev_stack_without_a_key_generates_one_once_into_dot_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEYS_VAR, os.environ[KEYS_VAR])  # put back after the test
    env_file = tmp_path / ".env"
    env_file.write_text("OUTREACH_UI_URL=http://127.0.0.1:8233\nOUTREACH_SECRET_KEYS=\n")
    settings = ensure_dev_key(Settings(secret_keys=""), env_file)
    KeyRing.parse(settings.secret_keys)
    assert env_file.read_text().splitlines() == [
        "OUTREACH_UI_URL=http://127.0.0.1:8233", f"OUTREACH_SECRET_KEYS={settings.secret_keys}",
    ]
    assert os.environ[KEYS_VAR] == settings.secret_keys  # what a process it starts inherits
    monkeypatch.delenv(KEYS_VAR)
    assert Settings(_env_file=env_file).secret_keys == settings.secret_keys
    written = env_file.read_text()
    kept = Settings(_env_file=env_file)
    assert ensure_dev_key(kept, env_file) == kept
    assert env_file.read_text() == written


def test_dev_stack_with_a_malformed_key_stops_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(click.ClickException, match="not 'id:base64key'"):
        ensure_dev_key(Settings(secret_keys="no-colon-here"), tmp_path / ".env")
    assert not (tmp_path / ".env").exists()


async def test_the_codec_server_decodes_a_request_larger_than_aiohttps_default_limit(
    codec_url: str,
) -> None:
    many = [Payload(metadata={"encoding": b"json/plain"}, data=b"x" * 4096)] * 400
    sealed = await PayloadEncryption(ring(NEW)).encode(many)
    body = json_format.MessageToJson(Payloads(payloads=sealed)).encode()
    assert len(body) > 2**20  # over aiohttp's default client_max_size
    async with aiohttp.ClientSession() as http, http.post(
        codec_url + "/decode", data=io.BytesIO(body), headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 200, await response.text()
        assert len(payloads_of(await response.text())) == 400


# -- the codec server on a public address (docs/decisions/0045) ------------------------


async def test_codec_server_answers_only_its_own_host_names(codec_url: str) -> None:
    port = codec_url.rsplit(":", 1)[1]
    # A page whose DNS name was rebound to 127.0.0.1 sends its own name as Host.
    for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1.evil.example.com", "", "a b"):
        status, _, text = await post(codec_url + "/encode", [Payload(data=b"x")], Host=host, Origin=UI)
        assert status == 421, host
        assert "OUTREACH_CODEC_ALLOWED_HOSTS" in text
    async with aiohttp.ClientSession() as http, http.options(
        codec_url + "/decode", headers={"Host": "evil.example.com", "Origin": UI}) as r:
        assert r.status == 421 and "Access-Control-Allow-Origin" not in r.headers
    # Its loopback names, at any port: a published port may not be the one it listens on.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.:8081", "[::1]:8081", "127.0.0.1"):
        assert (await post(codec_url + "/encode", [Payload(data=b"x")], Host=host))[0] == 200, host


async def test_codec_server_answers_the_names_it_is_given() -> None:
    app = build_app(PayloadEncryption(ring(NEW)), [UI], None,
                    allowed_hosts=["codec.example.com", "ui.example.com:8443"])
    async with serving(app, "127.0.0.1", 0) as url:
        for host, status in [("codec.example.com", 200), ("codec.example.com:443", 200),
                             ("ui.example.com:8443", 200), ("ui.example.com:443", 421),
                             ("ui.example.com", 421), ("localhost:1", 200), ("other.example.com", 421)]:
            assert (await post(url + "/encode", [], Host=host))[0] == status, host


def test_codec_server_host_names_from_its_options_and_settings() -> None:
    assert configured_hosts("127.0.0.1", "") == ["127.0.0.1"]
    assert configured_hosts("0.0.0.0", " codec.example.com , ui.example.com:8443,") == [
        "codec.example.com", "ui.example.com:8443"]  # a wildcard names no host
    assert configured_hosts("::1", "") == ["[::1]"]
    with pytest.raises(ValueError, match="http://codec.example.com"):
        host_rules(["http://codec.example.com"])


async def test_codec_server_gives_400_for_ciphertext_that_cannot_be_decrypted(codec_url: str) -> None:
    for data in (b"", b"short", b"\x00" * 11, b"\x00" * 12, b"\x00" * 40):
        sealed = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k2"}, data=data)
        status, _, text = await post(codec_url + "/decode", [sealed])
        assert status == 400, (data, text)
        assert "error" in json.loads(text) and "Traceback" not in text


async def test_codec_server_gives_400_for_a_body_that_is_not_utf8_json(codec_url: str) -> None:
    for body in (b"\xff\xfe{}", b"[" * 100_000, b'{"payloads": 1}', b"null"):
        async with aiohttp.ClientSession() as http, http.post(codec_url + "/decode", data=body) as r:
            assert r.status == 400, body[:20]
            assert "Payloads" in (await r.json())["error"]


async def test_codec_server_bounds_a_body_with_413() -> None:
    assert MAX_REQUEST_BYTES == Settings().codec_max_body_bytes == 4 * 2**20  # was 256 MiB
    app = build_app(PayloadEncryption(ring(NEW)), [UI], None, max_body_bytes=64 * 1024)
    big = json_format.MessageToJson(Payloads(payloads=[Payload(data=b"x" * 100_000)])).encode()

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it is read
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    async with serving(app, "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
        for data in (big, streamed()):
            async with http.post(url + "/decode", data=data, headers={"Origin": UI}) as r:
                assert r.status == 413
                assert r.headers["Access-Control-Allow-Origin"] == UI  # so the Web UI can say why
