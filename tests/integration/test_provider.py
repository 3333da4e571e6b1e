"""The local provider (inbox/provider.py) driven by a plain aiosmtplib client:
its limits, its scripted replies and faults, and its records."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from localsmtp.provider import AcceptedRecord, HostBehaviour, Provider

FROM = "jane@sender.example"


def raw(message_id: str, to: str = "bob@example.com") -> bytes:
    headers = f"From: {FROM}\r\nTo: {to}\r\nSubject: Hello\r\nMessage-ID: <{message_id}>\r\n"
    return f"{headers}\r\nHi\r\n".encode()


def client(provider: Provider, host: str, timeout: float = 5) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=provider.port(host), start_tls=False,
                           local_hostname="client.sender.example", timeout=timeout)


async def send(provider: Provider, host: str, message_id: str, to: str = "bob@example.com") -> None:
    async with client(provider, host) as smtp:
        await smtp.sendmail(FROM, [to], raw(message_id, to))


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with Provider([HostBehaviour("mx-a"), HostBehaviour("mx-b")]) as p:
        yield p


async def test_each_host_listens_on_its_own_port_and_records_what_it_accepts(provider: Provider) -> None:
    assert provider.port("mx-a") != provider.port("mx-b")
    await send(provider, "mx-a", "m1@sender.example")
    await send(provider, "mx-b", "m2@sender.example", to="ann@example.com")
    assert [(r.host, r.mailbox, r.recipient, r.message_id, r.acknowledged) for r in provider.accepted] == [
        ("mx-a", FROM, "bob@example.com", "<m1@sender.example>", True),
        ("mx-b", FROM, "ann@example.com", "<m2@sender.example>", True),
    ]
    await provider.wait_for(lambda: all(c.closed_at is not None for c in provider.connections))
    assert [(c.host, c.refused) for c in provider.connections] == [("mx-a", False), ("mx-b", False)]


async def test_connections_beyond_the_limit_get_421_and_are_recorded_as_refused() -> None:
    async with Provider([HostBehaviour("mx-a", max_connections=2)]) as provider:
        first, second = client(provider, "mx-a"), client(provider, "mx-a")
        await first.connect()
        await second.connect()
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as caught:
            await client(provider, "mx-a").connect()
        assert caught.value.code == 421 and "4.7.0" in caught.value.message
        first.close()
        await provider.wait_for(lambda: sum(c.closed_at is None for c in provider.connections) == 1)
        third = client(provider, "mx-a")
        await third.connect()  # a slot freed up
        assert provider.peak_connections("mx-a") == 2
        assert provider.refused_connections("mx-a", reason="connections") == 1
        second.close()
        third.close()


async def test_messages_beyond_the_per_minute_limit_get_421_and_are_recorded_as_refusals() -> None:
    async with Provider([HostBehaviour("mx-a", per_minute=2, window_seconds=0.5)]) as provider:
        await send(provider, "mx-a", "m1@x")
        await send(provider, "mx-a", "m2@x")
        with pytest.raises(aiosmtplib.SMTPDataError) as caught:
            await send(provider, "mx-a", "m3@x")
        assert caught.value.code == 421 and "4.7.28" in caught.value.message
        assert [(r.message_id, r.reason) for r in provider.refusals] == [("<m3@x>", "per_minute")]
        await asyncio.sleep(0.5)  # the window is what is under test: let it roll on
        await send(provider, "mx-a", "m3@x")
        assert [r.message_id for r in provider.accepted] == ["<m1@x>", "<m2@x>", "<m3@x>"]
        assert provider.most_in_window("mx-a", seconds=0.5) == 2
        assert provider.most_in_window("mx-a", seconds=3600) == 3


async def test_scripted_replies_answer_chosen_recipients_every_time() -> None:
    replies = {"gone@example.com": (550, "5.1.1 No such user"), "busy@example.com": (450, "4.2.1 Busy")}
    async with Provider([HostBehaviour("mx-a", replies=replies)]) as provider:
        for _ in range(2):
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as caught:
                await send(provider, "mx-a", "m1@x", to="gone@example.com")
            assert caught.value.recipients[0].code == 550
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as busy:
            await send(provider, "mx-a", "m2@x", to="busy@example.com")
        assert busy.value.recipients[0].code == 450
        await send(provider, "mx-a", "m3@x", to="bob@example.com")
        assert [r.recipient for r in provider.accepted] == ["bob@example.com"]


async def test_a_hanging_host_never_greets_and_the_client_times_out(provider: Provider) -> None:
    provider.set_behaviour("mx-a", hang=True)
    with pytest.raises(aiosmtplib.SMTPConnectTimeoutError):
        await client(provider, "mx-a", timeout=0.3).connect()
    await provider.wait_for(lambda: provider.connections[-1].closed_at is not None)
    provider.set_behaviour("mx-a", hang=False)
    await send(provider, "mx-a", "m1@x")
    assert len(provider.accepted) == 1


async def test_drop_after_data_records_the_copy_as_unacknowledged(provider: Provider) -> None:
    provider.set_behaviour("mx-a", drop_after_data=True)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(provider, "mx-a", "m1@x")
    provider.set_behaviour("mx-a", drop_after_data=False, drop_recipients=frozenset({"ann@example.com"}))
    await send(provider, "mx-a", "m1@x")  # the sender retried: a second copy
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await send(provider, "mx-a", "m2@x", to="ann@example.com")
    assert [(r.message_id, r.acknowledged) for r in provider.accepted] == [
        ("<m1@x>", False), ("<m1@x>", True), ("<m2@x>", False)]
    assert provider.copies() == {"<m1@x>": 2, "<m2@x>": 1}
    assert provider.acknowledged_copies() == {"<m1@x>": 1}
    assert provider.most_in_window("mx-a") == 1  # acknowledged ones only


async def test_refuse_all_answers_every_connection_until_switched_off(provider: Provider) -> None:
    provider.set_behaviour("mx-b", refuse_all=(421, "4.7.0 Try again later"))
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as caught:
        await client(provider, "mx-b").connect()
    assert caught.value.code == 421
    provider.set_behaviour("mx-b", refuse_all=None)
    await send(provider, "mx-b", "m1@x")
    assert provider.refused_connections("mx-b", reason="refuse_all") == 1


async def test_save_writes_every_record_as_json_lines(provider: Provider, tmp_path: Path) -> None:
    await send(provider, "mx-a", "m1@x")
    provider.set_behaviour("mx-a", max_connections=0)
    with pytest.raises(aiosmtplib.SMTPConnectResponseError):
        await client(provider, "mx-a").connect()
    await provider.wait_for(lambda: all(c.closed_at is not None for c in provider.connections))
    path = tmp_path / "records" / "provider.jsonl"
    provider.save(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["accepted", "connection", "connection"]
    assert AcceptedRecord(**{k: v for k, v in lines[0].items() if k != "kind"}) == provider.accepted[0]
    assert [line["refused"] for line in lines[1:]] == [False, True]


def test_host_names_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        Provider([HostBehaviour("mx-a"), HostBehaviour("mx-a")])


async def test_a_host_can_listen_on_another_loopback_address() -> None:
    async with Provider([HostBehaviour("mx-a"), HostBehaviour("mx-b", address="127.0.0.2")]) as provider:
        async with aiosmtplib.SMTP(hostname="127.0.0.2", port=provider.port("mx-b"), start_tls=False,
                                   timeout=5) as smtp:
            await smtp.sendmail(FROM, ["bob@example.com"], raw("m1@x"))
        assert [r.host for r in provider.accepted] == ["mx-b"]
        assert provider.address("mx-b") == "127.0.0.2"


async def test_a_client_that_hung_up_frees_its_slot_for_the_next_one() -> None:
    async with Provider([HostBehaviour("mx-a", max_connections=1)]) as provider:
        address = ("127.0.0.1", provider.port("mx-a"))
        for _ in range(10):
            first = await asyncio.to_thread(socket.create_connection, address, 5)
            await asyncio.to_thread(first.recv, 1024)  # greeted: it holds the one slot
            # Hang up and connect again without letting the server's loop run in between:
            # it meets the hang-up and the new connection in the same turn.
            first.close()
            second = socket.create_connection(address, 5)
            greeting = await asyncio.to_thread(second.recv, 1024)
            second.close()
            assert greeting.startswith(b"220"), greeting
        assert provider.refused_connections("mx-a") == 0
        assert provider.peak_connections("mx-a") == 1
