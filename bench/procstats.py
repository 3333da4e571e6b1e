"""What each process of a run costs: CPU seconds (utime + stime from /proc/<pid>/stat),
peak resident memory (VmHWM), Redis commands (INFO commandstats) and PostgreSQL
work on the benchmark's database (pg_stat_database, and the CPU of the server
processes serving that database).

PostgreSQL here is the machine's shared server, so "its CPU" is measured as the
CPU of the backends connected to the benchmark's database, sampled while the
run goes (a backend that exits between two samples loses at most one interval
of its CPU); the server's shared processes (WAL writer, checkpointer) are not in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a live process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def peak_rss_mb(pid: int) -> float | None:
    """The process's resident-memory high-water mark (VmHWM), MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class ProcessCpu:
    """CPU seconds a set of processes spend between `start()` and `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.peak_rss_mb: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids.items()}

    def stop(self) -> None:
        """Read before the processes exit (their counters go with them)."""
        for name, pid in self.pids.items():
            now = cpu_seconds(pid)
            if now is None:
                raise RuntimeError(f"process {name} (pid {pid}) exited before it was measured")
            self.seconds[name] = now - self._start[name]
            self.peak_rss_mb[name] = peak_rss_mb(pid) or 0.0


class RedisCommands:
    """Commands the private Redis served between `start()` and `stop()`, by name."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.calls: dict[str, int] = {}

    async def _info(self) -> dict[str, int]:
        client = aioredis.from_url(self._url)
        try:
            stats = await client.info("commandstats")
        finally:
            await client.aclose()
        return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}

    async def start(self) -> None:
        self._before = await self._info()

    async def stop(self) -> None:
        after = await self._info()
        # Our own INFO calls are not the engine's.
        self.calls = {k: n - self._before.get(k, 0) - (1 if k == "info" else 0) for k, n in after.items()}
        self.calls = {k: n for k, n in self.calls.items() if n > 0}

    @property
    def total(self) -> int:
        """Every command, those a Lua script ran included (Redis counts them alike)."""
        return sum(self.calls.values())

    @property
    def scripts(self) -> int:
        """Script calls: one client round trip each, however many commands inside."""
        return sum(n for k, n in self.calls.items() if k in ("eval", "evalsha", "fcall"))


_DB_STATS = (
    "SELECT xact_commit + xact_rollback AS transactions,"
    " tup_inserted + tup_updated + tup_deleted AS rows_written,"
    " tup_returned + tup_fetched AS rows_read FROM pg_stat_database WHERE datname = $1"
)
# Rows read per table, by sequential and index scans: where rows_read comes from.
_TABLE_READS = (
    "SELECT relname, coalesce(seq_tup_read, 0) AS seq, coalesce(idx_tup_fetch, 0) AS idx"
    " FROM pg_stat_user_tables"
)


@dataclass
class PostgresWork:
    """Transactions and rows on one database, and its backends' CPU, between start and stop.

    pg_stat_statements is not loaded on this server, so statements cannot be
    counted on the server side; transactions can (asyncpg runs each statement
    outside an explicit transaction as a transaction of its own)."""

    admin_url: str
    database: str
    interval: float = 0.5
    transactions: int = 0
    rows_written: int = 0
    rows_read: int = 0
    cpu_seconds: float = 0.0
    table_reads: dict[str, dict[str, int]] = field(default_factory=dict)
    _before: dict[str, int] = field(default_factory=dict)
    _tables_before: dict[str, dict[str, int]] = field(default_factory=dict)
    _cpu_first: dict[int, float] = field(default_factory=dict)
    _cpu_last: dict[int, float] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _conn: asyncpg.Connection | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def start(self) -> None:
        # Connected to the admin database, so this sampler is not one of the backends it measures.
        self._conn = await asyncpg.connect(self.admin_url)
        self._before = await self._stats()
        self._tables_before = await self._table_reads()
        await self._sample(baseline=True)
        self._task = asyncio.create_task(self._sample_forever())

    async def stop(self) -> None:
        """Call after the workers have exited: a backend's counters are flushed when it
        ends. Its CPU was sampled while it lived. Does nothing if never started."""
        if self._conn is None or self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        after = await self._stats()
        for key in ("transactions", "rows_written", "rows_read"):
            setattr(self, key, after[key] - self._before[key])
        tables = await self._table_reads()
        self.table_reads = {
            name: {k: n - self._tables_before.get(name, {}).get(k, 0) for k, n in reads.items()}
            for name, reads in tables.items()
        }
        self.cpu_seconds = sum(
            last - self._cpu_first.get(pid, 0.0) for pid, last in self._cpu_last.items()
        )
        await self._conn.close()

    async def sample(self) -> None:
        """One more CPU sample now (e.g. right before the workers stop)."""
        await self._sample()

    async def _stats(self) -> dict[str, int]:
        assert self._conn is not None
        await self._conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await self._conn.fetchrow(_DB_STATS, self.database)
        assert row is not None, f"no pg_stat_database row for {self.database}"
        return {k: int(v) for k, v in row.items()}

    async def _table_reads(self) -> dict[str, dict[str, int]]:
        """From a short connection to the database itself (the view is per database)."""
        conn = await asyncpg.connect(f"{self.admin_url.rsplit('/', 1)[0]}/{self.database}")
        try:
            rows = await conn.fetch(_TABLE_READS)
        finally:
            await conn.close()
        return {r["relname"]: {"seq": int(r["seq"]), "idx": int(r["idx"])} for r in rows}

    async def _sample(self, baseline: bool = False) -> None:
        assert self._conn is not None
        async with self._lock:  # the periodic sample and a caller's may meet on one connection
            pids = await self._conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1",
                                          self.database)
        for (pid,) in pids:
            now = cpu_seconds(pid)
            if now is None:
                continue
            if baseline:
                self._cpu_first[pid] = now  # backends older than the run: count from here
            self._cpu_last[pid] = now

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._sample()
