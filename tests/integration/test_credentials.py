"""Credentials at rest (docs/decisions/0015): encrypted in PostgreSQL, rotated by
`outreach keys rotate`, refused without a key; and PostgreSQL and Redis reached
over TLS (with a Redis ACL user) through the settings' URLs alone."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError

from activities.oauth_tokens import access_token
from config.secrets import generate_entry, key_ring
from mail.oauth import AccessToken
from specs.loading import load_mailboxes_file
from store import accounts
from store.db import create_pool
from store.importer import import_mailboxes
from store.migrate import migrate
from store.secret_values import CREDENTIAL_COLUMNS, CredentialError, key_id_of
from tests.conftest import REDIS_URL, TEST_SECRET_KEYS

OUTREACH = str(Path(sys.executable).parent / "outreach")
TEST_KEY_ID = TEST_SECRET_KEYS.split(":", 1)[0]


@dataclass
class Secrets:
    """Distinct values, so a dump that holds any of them is caught."""

    password: str = f"pw-{secrets.token_hex(8)}"
    other_password: str = f"pw-{secrets.token_hex(8)}"
    client_secret: str = f"cs-{secrets.token_hex(8)}"
    refresh_token: str = f"rt-{secrets.token_hex(8)}"
    rotated_refresh_token: str = f"rt-{secrets.token_hex(8)}"
    access_token: str = f"ya29-{secrets.token_hex(8)}"


def mailboxes_file(folder: Path, s: Secrets) -> Path:
    path = folder / "mailboxes.yaml"
    path.write_text(
        "mailboxes:\n"
        f"  - {{id: pw-1, email: pw-1@example.com, smtp_host: smtp.example.com, username: pw-1,"
        f" password: {s.password}}}\n"
        f"  - {{id: pw-2, email: pw-2@example.com, smtp_host: smtp.example.com, username: pw-2,"
        f" password: {s.other_password}}}\n"
        "  - {id: env-3, email: env-3@example.com, smtp_host: smtp.example.com, username: env-3,"
        " password_env: ENV_3_SMTP_PASSWORD}\n"
        "  - id: oauth-4\n    email: oauth-4@example.com\n    smtp_host: smtp.gmail.com\n"
        "    username: oauth-4@example.com\n"
        f"    oauth: {{provider: google, client_id: cid-4, client_secret: {s.client_secret},"
        f" refresh_token: {s.refresh_token}}}\n",
        encoding="utf-8",
    )
    return path


class TokenEndpoint:
    """The provider's token endpoint (not reachable from here): it rotates the refresh token."""

    def __init__(self, s: Secrets) -> None:
        self.secrets, self.calls = s, 0

    async def refresh(
        self, provider: str, client_id: str, client_secret: str | None, refresh_token: str
    ) -> AccessToken:
        self.calls += 1
        assert (client_secret, refresh_token) == (self.secrets.client_secret, self.secrets.refresh_token)
        return AccessToken(self.secrets.access_token, datetime.now(UTC) + timedelta(hours=1),
                           self.secrets.rotated_refresh_token)


async def imported(db: asyncpg.Pool, tmp_path: Path) -> Secrets:
    """Four mailboxes imported, and the OAuth one's access token refreshed and stored."""
    s = Secrets()
    await import_mailboxes(db, load_mailboxes_file(mailboxes_file(tmp_path, s)))
    ring = key_ring(TEST_SECRET_KEYS)
    grant = await accounts.oauth_grant(db, "oauth-4", ring=ring)
    assert grant is not None and grant.access_token is None
    endpoint = TokenEndpoint(s)
    assert await access_token(db, endpoint, "oauth-4", grant, ring=ring) == s.access_token
    assert endpoint.calls == 1
    return s


async def stored(db: asyncpg.Pool) -> dict[tuple[str, str], str]:
    """Every stored credential value, by (mailbox, column)."""
    rows = await db.fetch(f"SELECT id, {', '.join(CREDENTIAL_COLUMNS)} FROM mailboxes ORDER BY id")
    return {(r["id"], c): r[c] for r in rows for c in CREDENTIAL_COLUMNS if r[c] is not None}


async def read_back(db: asyncpg.Pool, ring_value: str) -> dict[str, object]:
    ring = key_ring(ring_value)
    grant = await accounts.oauth_grant(db, "oauth-4", ring=ring)
    assert grant is not None
    return {
        "pw-1": await accounts.mailbox_password(db, "pw-1", ring=ring),
        "pw-2": await accounts.mailbox_password(db, "pw-2", ring=ring),
        "oauth-4": (grant.client_secret, grant.refresh_token, grant.access_token),
    }


def expected(s: Secrets) -> dict[str, object]:
    return {"pw-1": s.password, "pw-2": s.other_password,
            "oauth-4": (s.client_secret, s.rotated_refresh_token, s.access_token)}


async def run_cli(database_url: str, cwd: Path, *args: str, keys: str | None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OUTREACH_SECRET_KEYS"}
    env["OUTREACH_DATABASE_URL"] = database_url
    if keys is not None:
        env["OUTREACH_SECRET_KEYS"] = keys
    assert not (cwd / ".env").exists()  # no key may come from a .env either
    proc = await asyncio.create_subprocess_exec(
        OUTREACH, *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# -- at rest -------------------------------------------------------------------


async def database_text(database_url: str, pool: asyncpg.Pool) -> str:
    """The whole database as text: pg_dump where it is installed, else every text
    and bytea column of every table."""
    if shutil.which("pg_dump"):
        done = subprocess.run(["pg_dump", "--no-owner", "-d", database_url],
                              capture_output=True, check=True, timeout=60)
        return done.stdout.decode()
    columns = await pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND data_type IN ('text', 'bytea', 'character varying', 'jsonb')"
    )
    parts: list[str] = []
    for c in columns:
        values = await pool.fetch(f'SELECT "{c["column_name"]}"::text AS v FROM "{c["table_name"]}"')
        parts.extend(str(v["v"]) for v in values)
    return "\n".join(parts)


async def test_a_database_dump_holds_no_credential_in_the_clear(
    db: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    s = await imported(db, tmp_path)
    dump = await database_text(database_url, db)

    for name, value in vars(s).items():
        assert value not in dump, f"{name} is in the database dump"
    values = await stored(db)
    assert len(values) == 5  # 2 passwords; client secret, refresh and access token
    assert all(v.startswith(f"enc:v1:{TEST_KEY_ID}:") and v in dump for v in values.values())
    assert "ENV_3_SMTP_PASSWORD" in dump  # a variable's name is no secret: kept as it is
    assert await read_back(db, TEST_SECRET_KEYS) == expected(s)


async def test_a_value_moved_to_another_mailbox_does_not_decrypt(db: asyncpg.Pool, tmp_path: Path) -> None:
    await imported(db, tmp_path)
    await db.execute("UPDATE mailboxes SET password = (SELECT password FROM mailboxes WHERE id = 'pw-1')"
                     " WHERE id = 'pw-2'")
    with pytest.raises(CredentialError, match="mailbox 'pw-2', mailboxes.password: .*failed authentication"):
        await accounts.mailbox_password(db, "pw-2", ring=key_ring(TEST_SECRET_KEYS))


async def test_the_database_refuses_a_credential_in_the_clear(db: asyncpg.Pool, tmp_path: Path) -> None:
    await imported(db, tmp_path)
    for column in CREDENTIAL_COLUMNS:
        with pytest.raises(asyncpg.CheckViolationError, match="must be stored encrypted"):
            await db.execute(f"UPDATE mailboxes SET {column} = 'plain' WHERE id = 'oauth-4'")


# -- rotation ------------------------------------------------------------------


async def test_keys_rotate_moves_every_value_to_the_new_key_and_the_old_key_can_go(
    db: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    s = await imported(db, tmp_path)
    new = generate_entry("k-next")
    before = await stored(db)

    # The old key removed too early: both reading and rotating name the key id.
    with pytest.raises(CredentialError, match=f"mailbox 'oauth-4', .*key id '{TEST_KEY_ID}'"):
        await read_back(db, new)
    code, out, err = await run_cli(database_url, tmp_path, "keys", "rotate", keys=new)
    assert code == 2 and err.count("\n") == 1, err
    assert f"key id '{TEST_KEY_ID}'" in err and "mailbox " in err
    assert await stored(db) == before  # nothing rewritten

    code, out, err = await run_cli(database_url, tmp_path, "keys", "rotate", "--batch-size", "2",
                                   keys=f"{new},{TEST_SECRET_KEYS}")
    assert code == 0, err
    assert out.strip() == ("5 value(s) re-encrypted under key k-next (5 from an older key,"
                           " 0 stored in the clear); 0 already under it")
    after = await stored(db)
    assert after.keys() == before.keys()
    assert {key_id_of(v) for v in after.values()} == {"k-next"}
    assert await read_back(db, new) == expected(s)  # the old key is no longer needed

    code, out, err = await run_cli(database_url, tmp_path, "keys", "rotate", keys=f"{new},{TEST_SECRET_KEYS}")
    assert (code, out.strip()) == (0, "0 value(s) re-encrypted under key k-next (0 from an older key,"
                                      " 0 stored in the clear); 5 already under it"), err
    assert await stored(db) == after  # idempotent: not even re-sealed

    code, out, err = await run_cli(database_url, tmp_path, "keys", "status", keys=new)
    assert (code, out.split()) == (0, ["5", "key", "k-next", "(newest)"]), err


async def test_a_value_from_before_encryption_is_refused_until_rotate_seals_it(
    db: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    s = await imported(db, tmp_path)
    async with db.acquire() as conn:  # as migration 0004 found it: written in the clear
        await conn.execute("SET session_replication_role = replica")  # no triggers
        await conn.execute("UPDATE mailboxes SET password = 'legacy-pw' WHERE id = 'pw-2'")
        await conn.execute("RESET session_replication_role")
    await db.execute("UPDATE mailboxes SET paused = true WHERE id = 'pw-2'")  # the row stays usable
    with pytest.raises(CredentialError, match="'pw-2', mailboxes.password is stored in the clear.*rotate"):
        await accounts.mailbox_password(db, "pw-2", ring=key_ring(TEST_SECRET_KEYS))

    code, out, err = await run_cli(database_url, tmp_path, "keys", "status", keys=TEST_SECRET_KEYS)
    assert code == 0 and "in the clear" in out and f"key {TEST_KEY_ID} (newest)" in out, err
    code, out, err = await run_cli(database_url, tmp_path, "keys", "rotate", keys=TEST_SECRET_KEYS)
    assert code == 0 and "(0 from an older key, 1 stored in the clear); 4 already under it" in out, err
    assert await accounts.mailbox_password(db, "pw-2", ring=key_ring(TEST_SECRET_KEYS)) == "legacy-pw"
    assert "legacy-pw" not in await database_text(database_url, db)
    assert (await read_back(db, TEST_SECRET_KEYS))["oauth-4"] == expected(s)["oauth-4"]


async def test_reimport_keeps_the_access_token_only_for_the_same_refresh_token(
    db: asyncpg.Pool, tmp_path: Path
) -> None:
    s = await imported(db, tmp_path)
    ring = key_ring(TEST_SECRET_KEYS)
    s.refresh_token = s.rotated_refresh_token  # the file now holds the provider's rotated token
    await import_mailboxes(db, load_mailboxes_file(mailboxes_file(tmp_path, s)))
    grant = await accounts.oauth_grant(db, "oauth-4", ring=ring)
    assert grant is not None and grant.access_token == s.access_token

    s.refresh_token = f"rt-{secrets.token_hex(8)}"  # a new grant
    await import_mailboxes(db, load_mailboxes_file(mailboxes_file(tmp_path, s)))
    grant = await accounts.oauth_grant(db, "oauth-4", ring=ring)
    assert grant is not None and (grant.refresh_token, grant.access_token) == (s.refresh_token, None)


# -- without a key ---------------------------------------------------------------


async def test_import_without_a_key_is_refused_and_imports_nothing(
    db: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    path = mailboxes_file(tmp_path, Secrets())
    code, out, err = await run_cli(database_url, tmp_path, "mailboxes", "import", str(path), keys=None)
    assert code == 2 and out == "", err
    assert err.startswith("error: no mailbox imported: OUTREACH_SECRET_KEYS is not set")
    assert err.count("\n") == 1
    assert await db.fetchval("SELECT count(*) FROM mailboxes") == 0

    code, _, err = await run_cli(database_url, tmp_path, "keys", "rotate", keys=None)
    assert code == 2 and "OUTREACH_SECRET_KEYS is not set" in err
    short_key = "k1:c2hvcnQ="  # "short"
    code, _, err = await run_cli(database_url, tmp_path, "mailboxes", "import", str(path), keys=short_key)
    assert code == 2 and "key 'k1' is 5 bytes" in err and err.count("\n") == 1, err
    assert await db.fetchval("SELECT count(*) FROM mailboxes") == 0


# -- TLS and passwords for PostgreSQL and Redis ----------------------------------------


def certificate(folder: Path, name: str) -> Path:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA); returns the
    .pem, with the key next to it as .key."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert


Greeting = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class TlsFront:
    """A TLS endpoint in front of a plaintext service on this machine (what a managed
    PostgreSQL or Redis with TLS looks like to a client); counts TLS sessions."""

    port: int
    sessions: list[str]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def tls_front(cert: Path, upstream_port: int, postgres: bool) -> tuple[asyncio.Server, TlsFront]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, cert.with_suffix(".key"))
    front = TlsFront(0, [])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if postgres:  # PostgreSQL asks first (SSLRequest), then the TLS handshake follows
                if await reader.readexactly(8) != struct.pack("!ii", 8, 80877103):
                    writer.close()
                    return
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(context)
            ssl_object = writer.get_extra_info("ssl_object")
            front.sessions.append(ssl_object.version())
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            writer.close()  # a client that refused our certificate
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=None if postgres else context)
    front.port = server.sockets[0].getsockname()[1]
    return server, front


@pytest.fixture
async def certs(tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    yield certificate(tmp_path, "server"), certificate(tmp_path, "stranger")


async def test_postgres_over_verified_tls_from_the_database_url(
    database_url: str, certs: tuple[Path, Path]
) -> None:
    server_cert, stranger = certs
    parts = urlsplit(database_url)
    assert parts.port in (None, 5432)
    server, front = await tls_front(server_cert, 5432, postgres=True)
    async with server:
        def url(host: str, root: Path) -> str:
            netloc = f"{parts.username}@{host}:{front.port}"
            return urlunsplit(parts._replace(netloc=netloc, query=f"sslmode=verify-full&sslrootcert={root}"))

        pool = await create_pool(url("localhost", server_cert), max_size=1)
        try:
            assert await pool.fetchval("SELECT count(*) FROM schema_migrations") >= 4
        finally:
            await pool.close()
        assert await migrate(url("localhost", server_cert)) == []  # `outreach db migrate` too
        assert front.sessions and set(front.sessions) <= {"TLSv1.2", "TLSv1.3"}

        with pytest.raises(ssl.SSLCertVerificationError):  # verify-full verifies the chain
            await create_pool(url("localhost", stranger), max_size=1)


async def test_redis_over_verified_tls_with_an_acl_user(
    redis_client: aioredis.Redis, key_prefix: str, certs: tuple[Path, Path]
) -> None:
    server_cert, stranger = certs
    upstream = urlsplit(REDIS_URL)
    user, password = f"{key_prefix}-user", secrets.token_hex(12)
    await redis_client.acl_setuser(user, enabled=True, passwords=[f"+{password}"],
                                   keys=[f"{key_prefix}*"], commands=["+@all"])
    server, front = await tls_front(server_cert, upstream.port or 6379, postgres=False)
    try:
        async with server:
            def url(secret: str, root: Path) -> str:
                return (f"rediss://{user}:{secret}@localhost:{front.port}/0"
                        f"?ssl_ca_certs={root}&ssl_cert_reqs=required")

            # The way workers/main.py builds its client: from OUTREACH_REDIS_URL alone.
            client = aioredis.from_url(url(password, server_cert))
            try:
                await client.set(f"{key_prefix}:tls", "yes")
                assert await client.get(f"{key_prefix}:tls") == b"yes"
                assert await client.acl_whoami() == user
            finally:
                await client.aclose()
            assert front.sessions

            wrong = aioredis.from_url(url("wrong", server_cert))
            with pytest.raises(AuthenticationError):
                await wrong.ping()
            await wrong.aclose()
            stranger_client = aioredis.from_url(url(password, stranger))
            with pytest.raises(Exception, match="certificate verify failed"):
                await stranger_client.ping()
            await stranger_client.aclose()
    finally:
        await redis_client.acl_deluser(user)
