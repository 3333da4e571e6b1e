"""Chaos: a 2,000-prospect 2-step campaign sent while worker processes are killed
(SIGKILL) at random moments, the Temporal dev server and Redis are restarted, and
the provider hangs, drops connections after DATA and answers 421.

The provider's records and the ledger are the judges. At the end every eligible
prospect got each step exactly once, or the ledger accounts for it as `unknown`
(and the provider holds at most one copy) or as a hard bounce; no limit was
exceeded (the provider's tolerance is set equal to our configured limit, so a
refusal from it is a violation); no send is left open. The fault counts and the
outcome counts are printed and kept in test-artifacts/chaos/ with the records.

    pytest -m chaos -s                      # this suite alone; `-m "not chaos"` skips it
    OUTREACH_CHAOS_SEED=7 OUTREACH_CHAOS_PROSPECTS=300 pytest -m chaos   # replay / smaller
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from client.api import OutreachClient
from config.converter import data_converter
from config.settings import Settings
from localsmtp.provider import HostBehaviour, Provider
from tests.chaos.conftest import DevServer, PrivateRedis, Workers
from tests.factories import add_campaign, add_mailbox

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

PROSPECTS = int(os.environ.get("OUTREACH_CHAOS_PROSPECTS", "2000"))
SEED = int(os.environ.get("OUTREACH_CHAOS_SEED", str(random.randrange(1_000_000))))
# One host per provider, each on its own loopback address: limits are kept per
# provider and per host name, so the three count apart.
HOSTS = (("mx-a", "127.0.0.1", "gmail"), ("mx-b", "127.0.0.2", "outlook"), ("mx-c", "127.0.0.3", "other"))
PER_MINUTE = int(os.environ.get("OUTREACH_CHAOS_PER_MINUTE", "240"))  # per provider, ours and theirs
CONNECTIONS = 4  # per host, ours and theirs
MAILBOXES_PER_HOST = 8
STEP_DELAY = 5  # seconds between a prospect's step 1 and step 2
STEP_WINDOW = 100  # sends in flight per step
WORKERS = 2
FAULTS_UNTIL = 0.9  # faults stop once this share of the sends is final...
FAULT_PHASE = 420.0  # ...or after this many seconds
BUDGET = 960.0  # the campaign must complete within this many seconds of its start (alone: 420-580 s)
FINAL = ("sent", "unknown", "hard_bounced")
# Redis holds the host leases and provider windows and a restart loses them; since
# decision 0029 the gate restores them from the ledger and refuses slots granted
# before the loss, and runs since then count 0 here. Until that is the assertion
# (decision 0019, item 4), a violation this soon after a Redis restart is still
# counted apart, as explained by it: within a
# lease's lifetime for connections; for the rate, within the provider window plus
# the furthest a reservation reaches ahead here (both steps' sends in flight, all
# on one provider, paced at its limit).
LEASE_TTL = 15 + 2 + 30  # workers/registry.py: send timeout + idle time + 30 s
PROVIDER_WINDOW = 62  # limit_provider_window_seconds
REACH = math.ceil(2 * STEP_WINDOW * PROVIDER_WINDOW / PER_MINUTE)
AFTER_REDIS_RESTART = {"connections": LEASE_TTL, "rate": PROVIDER_WINDOW + REACH}


@dataclass
class Run:
    """What happened during the run, for the summary."""

    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    redis_restarts: list[float] = field(default_factory=list)  # time.time(), as the provider's records
    back_up: list[tuple[str, float]] = field(default_factory=list)  # (what, time.time()) once restarted
    started: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.faults[what] += 1
        self.timeline.append((round(time.monotonic() - self.started, 1), what))


@dataclass
class Stack:
    provider: Provider
    temporal: DevServer
    redis: PrivateRedis
    workers: Workers
    rng: random.Random
    run: Run


# -- faults ----------------------------------------------------------------------


async def kill_worker(s: Stack) -> None:
    slot = s.rng.randrange(len(s.workers.procs))
    s.workers.kill(slot)
    s.run.note("worker killed (SIGKILL)")
    await asyncio.sleep(s.rng.uniform(0, 3))
    s.workers.start(slot)


async def restart_temporal(s: Stack) -> None:
    s.temporal.kill()
    s.run.note("temporal restarted (SIGKILL)")
    await asyncio.sleep(s.rng.uniform(1, 3))
    await s.temporal.start()
    s.run.back_up.append(("temporal", time.time()))


async def restart_redis(s: Stack) -> None:
    s.redis.kill()
    s.run.note("redis restarted (state lost)")
    s.run.redis_restarts.append(time.time())
    await asyncio.sleep(s.rng.uniform(0.5, 2))
    await s.redis.start()
    s.run.back_up.append(("redis", time.time()))


def host_spell(note: str, seconds: tuple[float, float], **fault: Any) -> Callable[[Stack], Awaitable[None]]:
    """A fault switched on at one random host for a few seconds, then off again."""
    healthy = {name: getattr(HostBehaviour("healthy"), name) for name in fault}

    async def spell(s: Stack) -> None:
        host = s.rng.choice(HOSTS)[0]
        s.provider.set_behaviour(host, **fault)
        s.run.note(note)
        await asyncio.sleep(s.rng.uniform(*seconds))
        s.provider.set_behaviour(host, **healthy)

    return spell


hang_host = host_spell("host hung", (2, 6), hang=True)
drop_after_data = host_spell("host dropped after DATA", (0.5, 2), drop_after_data=True)
throttle_host = host_spell("host answered 421", (3, 8),
                           refuse_all=(421, "4.7.0 Temporary system problem, try later"))


FAULTS: dict[str, Callable[[Stack], Awaitable[None]]] = {
    "kill_worker": kill_worker, "restart_temporal": restart_temporal, "restart_redis": restart_redis,
    "hang_host": hang_host, "drop_after_data": drop_after_data, "throttle_host": throttle_host,
}
WEIGHTS = {"kill_worker": 4, "restart_temporal": 1, "restart_redis": 1, "hang_host": 2,
           "drop_after_data": 2, "throttle_host": 2}


async def inflict_faults(s: Stack, stop: asyncio.Event) -> None:
    """Every kind once (shuffled), then weighted random kinds, at random gaps, until `stop`."""
    first = list(FAULTS)
    s.rng.shuffle(first)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), s.rng.uniform(6, 16))
            return
        except TimeoutError:
            pass
        kind = first.pop() if first else s.rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        await FAULTS[kind](s)


async def supervise(workers: Workers, stop: asyncio.Event) -> None:
    """Restart a worker that exited on its own (it may, if Temporal is gone when it starts)."""
    while not stop.is_set():
        workers.restart_exited()
        await asyncio.sleep(0.5)


# -- the run ---------------------------------------------------------------------


async def final_share(pool: asyncpg.Pool, campaign_id: str) -> float:
    done = await pool.fetchval(
        "SELECT count(*) FROM sends WHERE campaign_id = $1 AND state NOT IN ('queued', 'sending',"
        " 'soft_bounced')", campaign_id)
    return float(done) / (2 * PROSPECTS)


async def campaign_state(pool: asyncpg.Pool, campaign_id: str) -> str:
    return str(await pool.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id))


async def wait_until(predicate: Callable[[], Awaitable[bool]], deadline: float) -> bool:
    while not await predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(1.0)
    return True


async def running_executions(server: DevServer, campaign_id: str) -> int:
    client = await Client.connect(server.address, data_converter=data_converter())
    query = f'OutreachCampaignId = "{campaign_id}" AND ExecutionStatus = "Running"'
    return len([w async for w in client.list_workflows(query)])


# The workers' settings and the client's alike (the client that starts the campaign
# fixes the workflows' timeouts and retry policy). Short fuses, so that each fault
# costs seconds rather than the production minutes.
OVERRIDES: dict[str, Any] = {
    **{f"limit_{provider}_{kind}": value for provider in ("gmail", "outlook", "other")
       for kind, value in (("per_minute", PER_MINUTE), ("connections", CONNECTIONS))},
    "smtp_connect_timeout": 3.0, "smtp_greeting_timeout": 3.0, "smtp_socket_timeout": 5.0,
    "smtp_idle_seconds": 2.0, "send_start_to_close_seconds": 15.0, "send_first_retry_seconds": 2.0,
    "step_min_sleep_seconds": 0.5, "paused_recheck_seconds": 1.0,
    "limit_throttle_jitter_seconds": 10.0, "limit_breaker_open_seconds": 5.0,
    "limit_restore_hold_seconds": 5.0,
    "metrics_port": 0, "step_window": STEP_WINDOW, "mailbox_spacing": 0.0,
}


def chaos_settings(settings: Settings, redis: PrivateRedis, temporal: DevServer) -> Settings:
    return settings.model_copy(update={
        "temporal_address": temporal.address, "redis_url": redis.url, **OVERRIDES})


def chaos_env(settings: Settings) -> dict[str, str]:
    names = ("temporal_address", "database_url", "redis_url", "task_queue", *OVERRIDES)
    return {**os.environ, **{f"OUTREACH_{name.upper()}": str(getattr(settings, name)) for name in names}}


async def test_campaign_survives_chaos_without_duplicates_losses_or_limit_violations(
    db: asyncpg.Pool, settings: Settings, dev_server_process: DevServer, private_redis: PrivateRedis,
    workers_factory: list[Workers], chaos_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(SEED)
    run = Run(SEED)
    bounces = {f"p{i}@example.com" for i in rng.sample(range(PROSPECTS), max(1, PROSPECTS // 100))}
    replies = {email: (550, "5.1.1 No such user") for email in bounces}
    mailboxes_total = MAILBOXES_PER_HOST * len(HOSTS)
    daily_limit = 2 * math.ceil(PROSPECTS / mailboxes_total) + 4  # room, and still checked
    behaviours = [HostBehaviour(name, max_connections=CONNECTIONS, per_minute=PER_MINUTE,
                                replies=replies, address=address) for name, address, _ in HOSTS]
    run_settings = chaos_settings(settings, private_redis, dev_server_process)
    workers = Workers(WORKERS, chaos_env(run_settings), chaos_dir)
    workers_factory.append(workers)

    async with Provider(behaviours) as provider:
        campaign_id = await seed_campaign(db, provider, daily_limit)
        for slot in range(WORKERS):
            workers.start(slot)
        stack = Stack(provider, dev_server_process, private_redis, workers, rng, run)
        client = await OutreachClient.connect(run_settings)
        try:
            await client.start_campaign(campaign_id)
        finally:
            await client.close()
        run.started = time.monotonic()

        stop_faults, stop_supervising = asyncio.Event(), asyncio.Event()
        supervisor = asyncio.create_task(supervise(workers, stop_supervising))
        chaos = asyncio.create_task(inflict_faults(stack, stop_faults))
        try:
            await wait_until(lambda: _enough(db, campaign_id), run.started + FAULT_PHASE)
            stop_faults.set()
            await chaos
            faults_over = time.monotonic() - run.started
            completed = await wait_until(lambda: _is_completed(db, campaign_id), run.started + BUDGET)
            elapsed = time.monotonic() - run.started
        finally:
            chaos.cancel()
            stop_supervising.set()
            await asyncio.gather(chaos, supervisor, return_exceptions=True)
        running = await running_executions(dev_server_process, campaign_id)
        provider.save(chaos_dir / "provider.jsonl")

    rows = await db.fetch(
        "SELECT s.step, s.prospect_id, s.state, s.message_id, s.mailbox_id, s.last_reply, p.email"
        " FROM sends s JOIN prospects p ON p.id = s.prospect_id WHERE s.campaign_id = $1", campaign_id)
    prospects = await db.fetch("SELECT id, email, mailbox_id FROM prospects WHERE campaign_id = $1",
                               campaign_id)
    verdict = judge(provider, rows, prospects, bounces, daily_limit, run.redis_restarts)
    recovery = [await first_send_after(db, campaign_id, what, at) for what, at in run.back_up]
    verdict.update(
        seed=SEED, prospects=PROSPECTS, completed=completed, seconds=round(elapsed, 1),
        faults_stopped_at=round(faults_over, 1), running_executions=running,
        worker_unexpected_exits=workers.unexpected_exits, faults=dict(run.faults), recovery=recovery,
        timeline=run.timeline,
        limits={"per_minute": PER_MINUTE, "connections": CONNECTIONS, "daily": daily_limit},
    )
    (chaos_dir / "summary.json").write_text(json.dumps(verdict, indent=2) + "\n")
    with capsys.disabled():
        print(summary_table(verdict))

    assert completed, f"campaign not completed within {BUDGET} s (see {chaos_dir}/summary.json)"
    assert len(run.faults) == len(FAULTS), f"not every kind of fault happened: {run.faults}"
    assert verdict["duplicates"] == 0, verdict["duplicate_ids"]
    assert verdict["losses"] == 0, verdict["lost"]
    assert verdict["mismatches"] == 0, verdict["mismatched"]
    assert verdict["open_sends"] == 0 and running == 0
    assert verdict["limit_violations"] == 0, verdict["violations"]


async def seed_campaign(pool: asyncpg.Pool, provider: Provider, daily_limit: int) -> str:
    """MAILBOXES_PER_HOST mailboxes on each host, PROSPECTS prospects over them, two steps."""
    mailboxes = []
    for name, address, kind in HOSTS:
        for i in range(MAILBOXES_PER_HOST):
            mailboxes.append(f"{name}-mb{i}")
            await add_mailbox(pool, mailboxes[-1], provider.port(name), daily_limit=daily_limit,
                              provider=kind)
        await pool.execute("UPDATE mailboxes SET smtp_host = $1 WHERE id LIKE $2", address, f"{name}-%")
    emails = [f"p{i}@example.com" for i in range(PROSPECTS)]
    steps = [("Hi {{ first_name }}", "Hello", 0), ("Re: Hi", "Following up", STEP_DELAY)]
    campaign_id, _ = await add_campaign(pool, mailboxes, emails, steps)
    return campaign_id


async def first_send_after(pool: asyncpg.Pool, campaign_id: str, what: str, at: float) -> str:
    """How long after `what` came back the next SMTP attempt began: the workers reconnected."""
    first = await pool.fetchval(
        "SELECT extract(epoch FROM min(started_at)) FROM send_attempts WHERE campaign_id = $1"
        " AND started_at > to_timestamp($2)", campaign_id, at)
    return f"{what}: {'no send after it' if first is None else f'{float(first) - at:.1f} s'}"


async def _enough(pool: asyncpg.Pool, campaign_id: str) -> bool:
    return await final_share(pool, campaign_id) >= FAULTS_UNTIL


async def _is_completed(pool: asyncpg.Pool, campaign_id: str) -> bool:
    return await campaign_state(pool, campaign_id) == "completed"


# -- the judgement ----------------------------------------------------------------


def judge(
    provider: Provider, rows: list[asyncpg.Record], prospects: list[asyncpg.Record],
    bounces: set[str], daily_limit: int, redis_restarts: list[float],
) -> dict[str, Any]:
    copies, acked = provider.copies(), provider.acknowledged_copies()
    ledger: dict[tuple[int, int], asyncpg.Record] = {(r["step"], r["prospect_id"]): r for r in rows}
    states = {key: str(r["state"]) for key, r in ledger.items()}
    known_ids = {r["message_id"] for r in rows}
    outcome: Counter[str] = Counter()
    lost: list[str] = []
    mismatched: list[str] = []
    for p in prospects:
        for step in (1, 2):
            row = ledger.get((step, p["id"]))
            eligible = step == 1 or states.get((1, p["id"])) == "sent"
            if not eligible:
                if row is not None and copies[row["message_id"]]:
                    mismatched.append(f"{step}:{p['id']} sent though step 1 was not")
                outcome[f"step {step} not eligible"] += 1
                continue
            state = row["state"] if row is not None else "missing"
            outcome[f"step {step} {state}"] += 1
            if row is None or state not in FINAL:
                lost.append(f"{step}:{p['id']} {state}" + (f": {row['last_reply']}" if row else ""))
                continue
            mid = row["message_id"]
            if state == "sent" and acked[mid] != 1:
                mismatched.append(f"{step}:{p['id']} sent but the provider acknowledged {acked[mid]}")
            if state == "unknown":
                outcome[f"step {step} unknown with {copies[mid]} copy"] += 1
            if state == "hard_bounced" and (acked[mid] or p["email"] not in bounces):
                mismatched.append(f"{step}:{p['id']} hard_bounced but not scripted to")
            if p["email"] in bounces and state != "hard_bounced":
                mismatched.append(f"{step}:{p['id']} scripted to bounce but {state}")
    duplicate_ids = sorted(mid for mid, n in copies.items() if n > 1)
    strays = sorted(mid for mid in copies if mid not in known_ids)
    violations, explained = limit_violations(provider, rows, daily_limit, redis_restarts)
    return {
        "outcomes": dict(sorted(outcome.items())),
        "copies_received": sum(copies.values()),
        "copies_unacknowledged": sum(copies.values()) - sum(acked.values()),
        "duplicates": len(duplicate_ids), "duplicate_ids": duplicate_ids[:20],
        "losses": len(lost), "lost": lost[:20],
        "mismatches": len(mismatched) + len(strays), "mismatched": (mismatched + strays)[:20],
        "open_sends": sum(1 for r in rows if r["state"] in ("queued", "sending", "soft_bounced")),
        "limit_violations": sum(violations.values()), "violations": violations,
        "explained_violations": sum(explained.values()), "explained": explained,
        "hosts": {name: {"peak_connections": provider.peak_connections(name),
                         "most_in_60s": provider.most_in_window(name, 60.0),
                         "refused_connections": provider.refused_connections(name, "connections"),
                         "injected_421": provider.refused_connections(name, "refuse_all")}
                  for name, _, _ in HOSTS},
    }


def limit_violations(
    provider: Provider, rows: list[asyncpg.Record], daily_limit: int, redis_restarts: list[float],
) -> tuple[dict[str, int], dict[str, int]]:
    """Each limit, from the provider's side (it refuses what goes beyond, so each
    refusal is one violation); the daily cap from both sides. Returns the
    unexplained violations and those explained by a Redis restart just before."""
    found: Counter[str] = Counter()
    explained: Counter[str] = Counter()

    def count(kind: str, at: float, what: str) -> None:
        after = AFTER_REDIS_RESTART[kind]
        if any(0 <= at - restart <= after for restart in redis_restarts):
            explained[f"{what}, within {after} s of a Redis restart"] += 1
        else:
            found[what] += 1

    for record in provider.connections:
        if record.refused and record.reason == "connections":
            count("connections", record.opened_at, "connection refused: over the host limit")
    for refusal in provider.refusals:
        count("rate", refusal.at, "message refused: over the per-minute limit")
    for name, _, _ in HOSTS:  # both hold by construction (the provider refuses beyond them)
        found["connections above limit"] += max(0, provider.peak_connections(name) - CONNECTIONS)
        found["messages above per-minute"] += max(0, provider.most_in_window(name, 60.0) - PER_MINUTE)
    by_mailbox = Counter(r["mailbox_id"] for r in rows if r["state"] in ("sent", "unknown"))
    received = Counter(r.mailbox.split("@")[0] for r in provider.accepted)
    for mailbox in set(by_mailbox) | set(received):
        found["daily cap exceeded"] += max(0, by_mailbox[mailbox] - daily_limit,
                                           received[mailbox] - daily_limit)
    return dict(found), dict(explained)


def summary_table(v: dict[str, Any]) -> str:
    lines = [
        "", f"chaos run: seed {v['seed']}, {v['prospects']} prospects x 2 steps, "
        f"{'completed' if v['completed'] else 'NOT completed'} in {v['seconds']} s "
        f"(faults stopped at {v['faults_stopped_at']} s)",
        "  faults:",
        *(f"    {n:5d}  {k}" for k, n in sorted(v["faults"].items())),
        f"    {v['worker_unexpected_exits']:5d}  worker exits not asked for (restarted)",
        f"  first SMTP attempt after each restart: {', '.join(v['recovery']) or '-'}",
        "  outcomes (ledger, per eligible send):",
        *(f"    {n:5d}  {k}" for k, n in v["outcomes"].items()),
        f"  provider: {v['copies_received']} copies received, {v['copies_unacknowledged']} dropped"
        " after DATA",
        *(f"    {h}: peak connections {d['peak_connections']}/{v['limits']['connections']}, busiest 60 s "
          f"{d['most_in_60s']}/{v['limits']['per_minute']}, injected 421s {d['injected_421']}"
          for h, d in v["hosts"].items()),
        f"  duplicates {v['duplicates']}, losses {v['losses']}, mismatches {v['mismatches']},"
        f" open sends {v['open_sends']}, running executions {v['running_executions']},"
        f" limit violations {v['limit_violations']} {v['violations']}",
        f"  explained limit violations {v['explained_violations']} {v['explained']}",
    ]
    return "\n".join(lines)
