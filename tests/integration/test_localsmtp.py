"""The LocalSmtpServer on its own, driven by a plain aiosmtplib client."""

from __future__ import annotations

import asyncio
import mailbox
from pathlib import Path

import aiosmtplib
import pytest

from localsmtp.server import AcceptedMessage, LocalSmtpServer

FROM = "jane@sender.example"
BOB = "bob@example.org"
ANN = "ann@example.org"
RAW = (
    b"From: jane@sender.example\r\nTo: bob@example.org\r\nSubject: Second step\r\n"
    b"Message-ID: <c1.2.7.b@sender.example>\r\nIn-Reply-To: <c1.1.7.a@sender.example>\r\n"
    b"References: <c1.1.7.a@sender.example>\r\n\r\nHello again\r\n"
)


def client(inbox: LocalSmtpServer) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=inbox.port, start_tls=False,
                           local_hostname="client.sender.example", timeout=5)


async def sendmail(inbox: LocalSmtpServer, to: str = BOB, **login: str) -> None:
    async with client(inbox) as smtp:
        if login:
            await smtp.login(login["user"], login["password"])
        await smtp.sendmail(FROM, [to], RAW)


async def test_records_envelope_and_threading_headers(inbox: LocalSmtpServer) -> None:
    await sendmail(inbox)
    [message] = inbox.messages
    assert (message.mail_from, message.rcpt_tos) == (FROM, (BOB,))
    assert message.subject == "Second step"
    assert message.message_id == "<c1.2.7.b@sender.example>"
    assert message.in_reply_to == "<c1.1.7.a@sender.example>"
    assert message.references == ("<c1.1.7.a@sender.example>",)
    assert message.raw.endswith(b"Hello again\r\n")
    assert message.peer.startswith("127.0.0.1:")
    assert message.auth_user is None


async def test_auth_accepts_any_credentials_by_default(inbox: LocalSmtpServer) -> None:
    await sendmail(inbox, user="anyone", password="anything")
    assert inbox.messages[0].auth_user == "anyone"
    assert inbox.auth_attempts == ["anyone"]


async def test_scripted_replies_are_used_once_each_then_it_accepts(inbox: LocalSmtpServer) -> None:
    inbox.script(BOB, [(450, "4.2.1 Mailbox busy"), (451, "4.3.0 Try later")])
    codes = []
    for _ in range(3):
        try:
            await sendmail(inbox)
            codes.append(250)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes.append(exc.recipients[0].code)
    assert codes == [450, 451, 250]
    assert len(inbox.messages) == 1


async def test_script_for_one_recipient_leaves_others_alone(inbox: LocalSmtpServer) -> None:
    inbox.script(BOB, [(550, "5.1.1 No such user")])
    await sendmail(inbox, to=ANN)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await sendmail(inbox, to=BOB)
    assert [m.rcpt_tos for m in inbox.messages] == [(ANN,)]


async def test_script_for_everyone_at_mail(inbox: LocalSmtpServer) -> None:
    inbox.script(None, [(550, "5.7.1 Relaying denied")], at="mail")
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as caught:
        await sendmail(inbox)
    assert caught.value.code == 550


async def test_script_at_data_refuses_the_message_after_the_body(inbox: LocalSmtpServer) -> None:
    inbox.script(BOB, [(554, "5.6.0 Message content rejected")], at="data")
    with pytest.raises(aiosmtplib.SMTPDataError):
        await sendmail(inbox)
    assert inbox.messages == []


async def test_script_at_connect_refuses_the_greeting(inbox: LocalSmtpServer) -> None:
    inbox.script(None, [(554, "5.7.1 Your IP is blocked")], at="connect")
    with pytest.raises(aiosmtplib.SMTPConnectResponseError) as caught:
        await client(inbox).connect()
    assert caught.value.code == 554


def test_script_at_connect_cannot_know_the_recipient() -> None:
    with pytest.raises(ValueError):
        LocalSmtpServer().script(BOB, [(421, "busy")], at="connect")


async def test_hang_at_connect_withholds_the_greeting(inbox: LocalSmtpServer) -> None:
    inbox.hang("connect", 30)
    smtp = client(inbox)
    with pytest.raises(aiosmtplib.SMTPConnectTimeoutError):
        await smtp.connect(timeout=0.2)
    await inbox.wait_for(lambda: inbox.concurrent_connections == 0)


async def test_on_data_runs_after_the_body_and_before_the_reply(inbox: LocalSmtpServer) -> None:
    seen: list[tuple[bool, int]] = []
    replied = False

    def on_data(message: AcceptedMessage) -> None:
        seen.append((replied, len(inbox.messages)))

    inbox.on_data = on_data
    await sendmail(inbox)
    replied = True
    assert seen == [(False, 1)]


async def test_drop_after_data_keeps_the_message_and_hangs_up_once(inbox: LocalSmtpServer) -> None:
    inbox.drop_after_data(BOB)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await sendmail(inbox)
    assert len(inbox.messages) == 1
    await sendmail(inbox)  # only the next message was dropped
    assert len(inbox.messages) == 2


async def test_credentials_are_enforced_when_given() -> None:
    async with LocalSmtpServer(credentials={"jane": "right"}) as inbox:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as caught:
            await sendmail(inbox, user="jane", password="wrong")
        assert caught.value.code == 535 and "5.7.8" in caught.value.message
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await sendmail(inbox)  # no AUTH at all
        assert refused.value.code == 530
        await sendmail(inbox, user="jane", password="right")
        assert [m.auth_user for m in inbox.messages] == ["jane"]


async def test_counts_concurrent_connections(inbox: LocalSmtpServer) -> None:
    clients = [client(inbox) for _ in range(3)]
    await asyncio.gather(*(smtp.connect() for smtp in clients))
    await inbox.wait_for(lambda: inbox.concurrent_connections == 3)
    for smtp in clients:
        await smtp.quit()
    await inbox.wait_for(lambda: inbox.concurrent_connections == 0)
    assert inbox.max_concurrent_connections == 3
    assert inbox.connections_opened == 3
    assert [e.kind for e in inbox.connection_events].count("close") == 3


async def test_stop_hangs_up_on_connected_clients() -> None:
    inbox = LocalSmtpServer()
    await inbox.start()
    smtp = client(inbox)
    await smtp.connect()
    await inbox.stop()
    assert inbox.concurrent_connections == 0
    smtp.close()


async def test_saves_each_message_to_the_maildir(tmp_path: Path) -> None:
    async with LocalSmtpServer(maildir=tmp_path / "inbox") as inbox:
        await sendmail(inbox)
    [saved] = list(mailbox.Maildir(tmp_path / "inbox"))
    assert saved["Message-ID"] == "<c1.2.7.b@sender.example>"


async def test_wait_for_gives_up_at_the_deadline(inbox: LocalSmtpServer) -> None:
    with pytest.raises(TimeoutError):
        await inbox.wait_for(lambda: len(inbox.messages) == 1, timeout=0.1)
