"""A PostgreSQL server of the test's own (initdb into a temporary directory, a free
loopback port), so a test can stop and restart its database without disturbing the
shared one. Run as the `postgres` user when the tests run as root (initdb refuses root)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from store.migrate import migrate
from tests.processes import free_port


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None)
    if found is None:
        raise RuntimeError(f"{name} not found: scripts/setup.sh installs PostgreSQL's server package")
    return str(found)


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="outreach-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")

    def url(self, database: str = "outreach") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "postgres.log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self) -> None:
        """A fast shutdown, as an operator's restart does: sessions are ended at once."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    async def restart_after(self, seconds: float) -> None:
        await asyncio.to_thread(self.stop)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(self.start)

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self._as_postgres, *argv], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr or done.stdout}")


@asynccontextmanager
async def migrated_postgres() -> AsyncIterator[PrivatePostgres]:
    """A private server, initialised, started and migrated; destroyed afterwards."""
    server = PrivatePostgres()
    try:
        await asyncio.to_thread(server.init)
        await asyncio.to_thread(server.start)
        await migrate(server.url())
        yield server
    finally:
        server.destroy()
