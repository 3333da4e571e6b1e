"""A real IMAP server for tests: Debian's dovecot, started on a free loopback port.

Everything lives in a temporary directory (configuration, passwd-file, Maildirs,
sockets, logs); no system service and no root-only path is used. As root, dovecot
runs its login and internal processes as the packaged ``dovenull``/``dovecot``
users, and the mail processes as ``dovecot`` too (dovecot refuses uid 0 for mail),
which owns the Maildirs; as anyone else, all of them as the current user. Tests put
messages in with APPEND, so dovecot itself writes its Maildir.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service_users() -> tuple[str, str, int, int]:
    """(login user, internal user, mail uid, mail gid): the packaged users as root,
    else ourselves."""
    if os.getuid() == 0:
        names = {p.pw_name for p in pwd.getpwall()}
        login = "dovenull" if "dovenull" in names else "nobody"
        internal = pwd.getpwnam("dovecot" if "dovecot" in names else "nobody")
        return login, internal.pw_name, internal.pw_uid, internal.pw_gid
    me = pwd.getpwuid(os.getuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


_CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
default_login_user = {login}
default_internal_user = {internal}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
{oauth_passdb}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class ImapServer:
    root: Path
    port: int = field(default_factory=_free_port)
    users: dict[str, str] = field(default_factory=dict)
    # A certificate and key (PEM files) turn on STARTTLS on ``port`` and TLS on ``tls_port``.
    certificate: tuple[Path, Path] | None = None
    tls_port: int = field(default_factory=_free_port)
    # An OAuth2 token introspection URL turns on XOAUTH2 logins, each token checked there.
    introspection_url: str | None = None
    _process: subprocess.Popen[bytes] | None = None

    host = "127.0.0.1"

    def add_user(self, name: str, password: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.users[name] = password
        lines = "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items())
        (self.root / "passwd").write_text(lines, "utf-8")

    def start(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not (self.root / "passwd").exists():
            (self.root / "passwd").write_text("", "utf-8")
        login, internal, uid, gid = _service_users()
        os.chown(self.root / "mail", uid, gid)
        conf = self.root / "dovecot.conf"
        tls = "ssl = no"
        if self.certificate is not None:
            cert, key = self.certificate
            tls = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
        oauth_mechanisms, oauth_passdb = "", ""
        if self.introspection_url is not None:
            oauth_conf = self.root / "oauth2.conf.ext"
            oauth_conf.write_text(
                f"introspection_mode = post\nintrospection_url = {self.introspection_url}\n"
                "username_attribute = username\nactive_attribute = active\nactive_value = true\n",
                "utf-8",
            )
            oauth_mechanisms = " xoauth2 oauthbearer"
            oauth_passdb = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                            f"  args = {oauth_conf}\n}}\n")
        conf.write_text(_CONFIG.format(
            root=self.root, port=self.port, login=login, internal=internal, uid=uid, gid=gid,
            ssl=tls, tls_port=self.tls_port if self.certificate else 0,
            oauth_mechanisms=oauth_mechanisms, oauth_passdb=oauth_passdb,
        ), "utf-8")
        # The login processes run as another user and must reach the sockets.
        for path in (self.root, self.root / "run"):
            path.chmod(0o755)
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                self.stop()
                raise RuntimeError(f"dovecot exited: {err}\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not listen on {self.port}:\n{self.log()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def _login(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port)
        imap.login(user, self.users[user])
        return imap

    def append(self, user: str, message: bytes, folder: str = "INBOX") -> int:
        """Deliver ``message`` into ``user``'s ``folder``; return its UID."""
        imap = self._login(user)
        try:
            if folder != "INBOX":
                imap.create(folder)
            typ, data = imap.append(folder, "", None, message)
            assert typ == "OK", data
            # APPENDUID (RFC 4315): [APPENDUID <uidvalidity> <uid>]
            text = data[0].decode() if data and isinstance(data[0], bytes) else ""
            return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))
        finally:
            imap.logout()

    def flags(self, user: str, folder: str = "INBOX") -> list[str]:
        """Each message's flags, in UID order (to see that nothing set \\Seen)."""
        imap = self._login(user)
        try:
            imap.select(folder, readonly=True)
            typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
            return [d.decode() for d in data if isinstance(d, bytes)]
        finally:
            imap.logout()

    def reset_uidvalidity(self, user: str) -> None:
        """Make INBOX's UIDVALIDITY change, keeping its messages (what a server
        migration or an index rebuild does): dovecot's UID list and indexes go, and
        the restarted server numbers the same messages afresh."""
        self.stop()
        maildir = self.root / "mail" / user
        for path in maildir.glob("dovecot*"):
            if path.is_file():
                path.unlink()
        time.sleep(1.1)  # dovecot's new UIDVALIDITY is the time in seconds
        self.start()


@contextmanager
def running_imap(
    users: dict[str, str], certificate: tuple[Path, Path] | None = None,
    introspection_url: str | None = None,
) -> Iterator[ImapServer]:
    """A started server with ``users`` (name -> password), stopped and removed afterwards.

    Its directory is made here, not under pytest's tmp_path: that one is private to
    its owner, and dovecot's login processes (another user, as root) must reach it."""
    root = Path(tempfile.mkdtemp(prefix="outreach-imap-"))
    server = ImapServer(root, certificate=certificate, introspection_url=introspection_url)
    for name, password in users.items():
        server.add_user(name, password)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
