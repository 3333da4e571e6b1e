"""The inbox reader over TLS and STARTTLS to a real dovecot, with the certificate
verified: a certificate nobody trusts is refused and the reason recorded."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from inbox.imap import ImapReader
from inbox.poll import PollLimits, poll_mailbox
from store.inbox_settings import ImapAccount
from tests.factories import add_mailbox, sealed, settings_ring
from tests.imap_server import ImapServer, running_imap

ADDRESS = "ann@sender.example.com"
LIMITS = PollLimits(match_window=timedelta(days=90), timeout=10)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("imap-tls")
    folder.chmod(0o755)  # dovecot's config reader reaches it as root; keep it simple
    cert, key = folder / "imap.pem", folder / "imap.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=imap.test", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def imap(certificate: tuple[Path, Path]) -> Iterator[ImapServer]:
    with running_imap({ADDRESS: "pw"}, certificate=certificate) as server:
        yield server


def trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(cert))
    return context


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_reads_over_verified_tls(
    db: asyncpg.Pool, imap: ImapServer, certificate: tuple[Path, Path], security: str
) -> None:
    await db.execute("TRUNCATE inbox_cursors, inbound_messages")
    port = imap.tls_port if security == "tls" else imap.port
    await add_mailbox(db, "mb", 2525, email=ADDRESS)
    await db.execute(
        "UPDATE mailboxes SET imap_host = '127.0.0.1', imap_port = $1, imap_security = $2,"
        " imap_username = $3, imap_password = $4 WHERE id = 'mb'",
        port, security, ADDRESS, sealed("mb", "imap_password", "pw"),
    )
    imap.append(ADDRESS, b"From: x@y.example\r\nMessage-ID: <m1@y>\r\nSubject: hi\r\n\r\nhello\r\n")

    def reader(account: ImapAccount, timeout: float) -> ImapReader:
        return ImapReader(account, timeout=timeout, tls_context=trusting(certificate[0]))

    result = await poll_mailbox(db, "mb", ring=settings_ring(), limits=LIMITS, reader=reader)
    assert result.error is None and [f.kind for f in result.found] == ["other"]

    # Without trust in that certificate, the default verification refuses it.
    await db.execute("TRUNCATE inbox_cursors")
    refused = await poll_mailbox(db, "mb", ring=settings_ring(), limits=LIMITS)
    assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert refused.found == []
