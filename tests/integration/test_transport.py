"""MailTransport against a real SMTP server (the LocalSmtpServer) on port 0."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from limits.host_slots import HostSlots
from limits.redis_store import RedisLimitStore
from localsmtp.provider import HostBehaviour, Provider
from localsmtp.server import LocalSmtpServer
from mail.errors import (
    SmtpConfigError,
    SmtpConnectionFailed,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTimeout,
)
from mail.message import OutgoingMail, build_message
from mail.replies import ReplyClass
from mail.transport import MailTransport, Security, SmtpAccount, SmtpTimeouts
from tests.limits.conftest import NOTHING_LOST
from tests.tools import required_tool

SENDER = "jane@sender.example"
BOB = "bob@example.org"
QUICK = SmtpTimeouts(connect=2.0, greeting=2.0, socket=2.0)
TINY = SmtpTimeouts(connect=0.3, greeting=0.3, socket=0.3)


class Ledger:
    """Stands in for the caller's send ledger: counts the "DATA is next" records."""

    def __init__(self) -> None:
        self.before_data_calls = 0

    async def before_data(self) -> None:
        self.before_data_calls += 1


def account(
    inbox: LocalSmtpServer,
    mailbox_id: str = "mb-1",
    security: Security = "none",
    username: str | None = "jane",
    password: str | None = "secret",
) -> SmtpAccount:
    return SmtpAccount(mailbox_id, "127.0.0.1", inbox.port, security, username, password)


def message(message_id: str = "<c1.1.1.abc@sender.example>", to: str = BOB) -> bytes:
    return build_message(
        OutgoingMail(from_address=SENDER, to_address=to, subject="Hello", body="Hi there",
                     message_id=message_id)
    )


@pytest.fixture
async def transport() -> AsyncIterator[MailTransport]:
    t = MailTransport(QUICK, local_hostname="client.sender.example")
    yield t
    await t.close()


async def send(
    transport: MailTransport, acc: SmtpAccount, ledger: Ledger | None = None, to: str = BOB,
    msg: bytes | None = None,
) -> ReplyClass:
    ledger = ledger or Ledger()
    reply = await transport.send(acc, SENDER, to, msg or message(to=to),
                                 before_data=ledger.before_data)
    return reply.reply_class


async def test_delivers_one_message_with_its_message_id(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    ledger = Ledger()
    reply = await transport.send(account(inbox), SENDER, BOB, message("<c9.2.3.f@sender.example>"),
                                 before_data=ledger.before_data)
    assert reply.reply_class is ReplyClass.ACCEPTED
    assert ledger.before_data_calls == 1
    [received] = inbox.messages
    assert received.message_id == "<c9.2.3.f@sender.example>"
    assert received.mail_from == SENDER and received.rcpt_tos == (BOB,)
    assert received.auth_user == "jane"


async def test_three_sends_of_one_mailbox_share_one_connection(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    for n in range(3):
        await send(transport, account(inbox), msg=message(f"<{n}@sender.example>"))
    assert len(inbox.messages) == 3
    assert inbox.connections_opened == 1


async def test_concurrent_sends_of_one_mailbox_are_serialised_on_its_connection(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    await asyncio.gather(*(send(transport, account(inbox)) for _ in range(5)))
    assert len(inbox.messages) == 5
    assert inbox.connections_opened == 1 and inbox.max_concurrent_connections == 1


async def test_each_mailbox_gets_its_own_connection(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    await asyncio.gather(send(transport, account(inbox, "mb-1")),
                         send(transport, account(inbox, "mb-2")))
    assert inbox.connections_opened == 2


async def test_connection_idle_longer_than_idle_seconds_is_replaced(inbox: LocalSmtpServer) -> None:
    transport = MailTransport(QUICK, idle_seconds=0.0, local_hostname="client.sender.example")
    try:
        await send(transport, account(inbox))
        await send(transport, account(inbox))
    finally:
        await transport.close()
    assert inbox.connections_opened == 2


async def test_pooled_connection_that_died_is_replaced_before_data(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    await send(transport, account(inbox))
    inbox.drop_connections()  # the server hangs up; the client hasn't noticed yet
    ledger = Ledger()
    assert await send(transport, account(inbox), ledger) is ReplyClass.ACCEPTED
    assert ledger.before_data_calls == 1
    assert len(inbox.messages) == 2 and inbox.connections_opened == 2


async def test_soft_bounce_at_rcpt_is_rejected_and_the_connection_stays_usable(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    inbox.script(BOB, [(450, "4.2.1 Mailbox busy")], at="rcpt")
    ledger = Ledger()
    with pytest.raises(SmtpRejected) as caught:
        await send(transport, account(inbox), ledger)
    assert caught.value.stage == "rcpt"
    assert caught.value.reply_class is ReplyClass.SOFT_BOUNCE
    assert ledger.before_data_calls == 0
    assert await send(transport, account(inbox)) is ReplyClass.ACCEPTED  # after RSET
    assert inbox.connections_opened == 1


async def test_421_is_throttling(inbox: LocalSmtpServer, transport: MailTransport) -> None:
    inbox.script(None, [(421, "4.7.0 Try again later, closing connection.")], at="rcpt")
    with pytest.raises(SmtpRejected) as caught:
        await send(transport, account(inbox))
    assert caught.value.reply_class is ReplyClass.THROTTLED
    assert await send(transport, account(inbox)) is ReplyClass.ACCEPTED


async def test_unknown_user_is_a_hard_bounce(inbox: LocalSmtpServer, transport: MailTransport) -> None:
    inbox.script(BOB, [(550, "5.1.1 The email account that you tried to reach does not exist.")])
    with pytest.raises(SmtpRejected) as caught:
        await send(transport, account(inbox))
    assert (caught.value.stage, caught.value.reply_class) == ("rcpt", ReplyClass.HARD_BOUNCE)
    assert inbox.messages == []


async def test_refusal_of_the_message_after_data_is_known_not_unknown(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    inbox.script(BOB, [(554, "5.7.1 Message rejected as spam")], at="data")
    ledger = Ledger()
    with pytest.raises(SmtpRejected) as caught:
        await send(transport, account(inbox), ledger)
    assert (caught.value.stage, caught.value.reply_class) == ("data", ReplyClass.SENDER_PROBLEM)
    assert ledger.before_data_calls == 1 and inbox.messages == []


async def test_wrong_credentials_are_a_sender_problem_at_auth(transport: MailTransport) -> None:
    async with LocalSmtpServer(credentials={"jane": "right"}) as inbox:
        with pytest.raises(SmtpRejected) as caught:
            await send(transport, account(inbox, password="wrong"))
        assert caught.value.stage == "auth"
        assert caught.value.reply.code == 535
        assert caught.value.reply_class is ReplyClass.SENDER_PROBLEM
        assert inbox.messages == []


async def test_right_credentials_are_accepted(transport: MailTransport) -> None:
    async with LocalSmtpServer(credentials={"jane": "right"}) as inbox:
        await send(transport, account(inbox, password="right"))
        assert inbox.messages[0].auth_user == "jane"


async def test_oauth_token_authenticates_with_xoauth2(transport: MailTransport) -> None:
    async with LocalSmtpServer(tokens={"jane": "ya29.token"}) as inbox:
        oauth = replace(account(inbox), password=None, oauth_token="ya29.token")
        await send(transport, oauth)
        assert inbox.messages[0].auth_user == "jane"


async def test_a_wrong_oauth_token_is_a_sender_problem_at_auth(transport: MailTransport) -> None:
    async with LocalSmtpServer(tokens={"jane": "ya29.token"}) as inbox:
        with pytest.raises(SmtpRejected) as caught:
            await send(transport, replace(account(inbox), password=None, oauth_token="expired"))
        assert caught.value.stage == "auth"
        assert caught.value.reply_class is ReplyClass.SENDER_PROBLEM
        assert inbox.messages == []


async def test_server_that_never_greets_fails_fast_as_a_connection_error(inbox: LocalSmtpServer) -> None:
    inbox.hang("connect", 30)
    transport = MailTransport(TINY, local_hostname="client.sender.example")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SmtpTimeout) as caught:
        await send(transport, account(inbox))
    assert isinstance(caught.value, SmtpConnectionFailed)
    assert loop.time() - started < 2.0
    await transport.close()


async def test_refused_tcp_connect_is_a_connection_error(transport: MailTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        acc = SmtpAccount("mb-1", "127.0.0.1", port, "none", None, None)
        with pytest.raises(SmtpConnectionFailed):
            await transport.send(acc, SENDER, BOB, message(), before_data=Ledger().before_data)


async def test_server_stalling_at_rcpt_fails_before_data(inbox: LocalSmtpServer) -> None:
    inbox.hang("rcpt", 30)
    transport = MailTransport(TINY, local_hostname="client.sender.example")
    ledger = Ledger()
    with pytest.raises(SmtpTimeout):
        await send(transport, account(inbox), ledger)
    assert ledger.before_data_calls == 0
    await transport.close()


async def test_drop_after_data_is_outcome_unknown_and_the_server_holds_one_copy(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    inbox.drop_after_data(BOB)
    ledger = Ledger()
    with pytest.raises(SmtpOutcomeUnknown) as caught:
        await send(transport, account(inbox), ledger)
    assert not isinstance(caught.value, ConnectionError)  # generic retries must not catch it
    assert ledger.before_data_calls == 1
    assert len(inbox.messages) == 1


async def test_stall_after_data_is_outcome_unknown(inbox: LocalSmtpServer) -> None:
    inbox.hang("data", 30)
    transport = MailTransport(TINY, local_hostname="client.sender.example")
    with pytest.raises(SmtpOutcomeUnknown):
        await send(transport, account(inbox))
    await transport.close()


async def test_before_data_failing_sends_nothing(inbox: LocalSmtpServer, transport: MailTransport) -> None:
    async def ledger_down() -> None:
        raise RuntimeError("ledger unavailable")

    with pytest.raises(RuntimeError, match="ledger unavailable"):
        await transport.send(account(inbox), SENDER, BOB, message(), before_data=ledger_down)
    assert inbox.messages == []
    assert await send(transport, account(inbox)) is ReplyClass.ACCEPTED  # RSET, same connection
    assert inbox.connections_opened == 1


async def test_plaintext_to_a_remote_host_is_refused_before_connecting(
    transport: MailTransport,
) -> None:
    acc = SmtpAccount("mb-1", "smtp.sender.example", 25, "none", "jane", "secret")
    with pytest.raises(SmtpConfigError, match="plaintext"):
        await transport.send(acc, SENDER, BOB, message(), before_data=Ledger().before_data)


async def test_starttls_required_but_not_offered_is_refused_before_auth(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    with pytest.raises(SmtpConfigError, match="STARTTLS"):
        await send(transport, account(inbox, security="starttls"))
    assert inbox.auth_attempts == []
    assert inbox.messages == []


async def test_invalid_recipient_is_refused_before_connecting(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    with pytest.raises(ValueError):
        await transport.send(account(inbox), SENDER, "bob@example.org>\r\nRSET",
                             message(), before_data=Ledger().before_data)
    assert inbox.connections_opened == 0


async def test_close_quits_every_pooled_connection(inbox: LocalSmtpServer) -> None:
    transport = MailTransport(QUICK, local_hostname="client.sender.example")
    await send(transport, account(inbox, "mb-1"))
    await send(transport, account(inbox, "mb-2"))
    await transport.close()
    await inbox.wait_for(lambda: inbox.concurrent_connections == 0)


async def test_close_lets_the_transaction_in_flight_finish(inbox: LocalSmtpServer) -> None:
    inbox.hang("data", 0.2)
    transport = MailTransport(QUICK, local_hostname="client.sender.example")
    sending = asyncio.create_task(send(transport, account(inbox)))
    await inbox.wait_for(lambda: inbox.concurrent_connections == 1)
    await transport.close()
    assert sending.done() and sending.result() is ReplyClass.ACCEPTED
    await inbox.wait_for(lambda: inbox.concurrent_connections == 0)


async def test_changed_account_settings_get_a_new_connection(
    inbox: LocalSmtpServer, transport: MailTransport
) -> None:
    await send(transport, account(inbox, password="old"))
    await send(transport, account(inbox, password="new"))
    assert inbox.connections_opened == 2


def test_account_repr_hides_the_password() -> None:
    assert "secret" not in repr(SmtpAccount("mb-1", "h", 25, "tls", "jane", "secret"))


# -- TLS, with a throwaway certificate for 127.0.0.1 ------------------------------------


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    required_tool("openssl", "openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def trusting(certificate: tuple[Path, Path]) -> MailTransport:
    client = ssl.create_default_context(cafile=str(certificate[0]))
    return MailTransport(QUICK, tls_context=client, local_hostname="client.sender.example")


async def test_starttls_upgrades_before_auth(certificate: tuple[Path, Path]) -> None:
    transport = trusting(certificate)
    async with LocalSmtpServer(starttls=server_context(certificate)) as inbox:
        assert await send(transport, account(inbox, security="starttls")) is ReplyClass.ACCEPTED
        await transport.close()
    assert inbox.auth_attempts == ["jane"]


async def test_implicit_tls_delivers(certificate: tuple[Path, Path]) -> None:
    transport = trusting(certificate)
    async with LocalSmtpServer(implicit_tls=server_context(certificate)) as inbox:
        assert await send(transport, account(inbox, security="tls")) is ReplyClass.ACCEPTED
        await transport.close()


async def test_untrusted_certificate_is_a_config_error(certificate: tuple[Path, Path]) -> None:
    transport = MailTransport(QUICK, local_hostname="client.sender.example")  # system CAs only
    async with LocalSmtpServer(starttls=server_context(certificate)) as inbox:
        with pytest.raises(SmtpConfigError, match="certificate"):
            await send(transport, account(inbox, security="starttls"))
        await transport.close()
        assert inbox.auth_attempts == []


async def test_a_slot_taken_from_an_idle_connection_is_reused_only_after_its_quit(
    redis_client: aioredis.Redis, key_prefix: str,
) -> None:
    # One connection allowed at the host, ours and the provider's; three mailboxes
    # take turns, so every send ends another mailbox's idle connection first.
    provider = Provider([HostBehaviour("mx", max_connections=1)])
    store = RedisLimitStore(redis_client, key_prefix)
    await store.restore(NOTHING_LOST)
    slots = HostSlots(store, timedelta(seconds=60))
    transport = MailTransport(QUICK, local_hostname="client.sender.example", slots=slots)
    async with provider:
        for n in range(9):
            acc = SmtpAccount(f"mb-{n % 3}", "127.0.0.1", provider.port("mx"), "none",
                              max_connections=1)
            assert await send(transport, acc, msg=message(f"<c1.1.{n}.abc@sender.example>")) \
                is ReplyClass.ACCEPTED
        await transport.close()
        await provider.inbox("mx").wait_for(
            lambda: all(c.closed_at is not None for c in provider.connections))
    assert len(provider.accepted) == 9 and provider.refused_connections("mx") == 0
    assert provider.peak_connections("mx") == 1
    # Each of the 9 sessions ended with QUIT: none was dropped while the provider
    # might still count it.
    assert provider.inbox("mx").commands.count("QUIT") == len(provider.connections) == 9
