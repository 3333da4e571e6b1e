"""Chaos: a 2-step campaign sent while worker processes are killed (SIGKILL), the
Temporal dev server, the Redis primary and PostgreSQL are restarted, Redis fails over
to its replica (three real sentinels), and the provider hangs, drops connections
after DATA and answers 421. Nothing is excused.

The provider's records and the ledger are the judges. Every prospect of an uncapped
mailbox gets each step exactly once, or the ledger accounts for it as `unknown` (at
most one copy, and each `unknown` matched to the fault that caused it) or as a
scripted hard bounce. One mailbox's daily cap is below its share: it sends exactly
its cap and the rest stays `queued` for the next day. The provider's tolerance equals
our configured limits, so any refusal from it, at any time, is a violation. Each
named seed is one run; its faults, outcomes and records are printed and kept in
test-artifacts/chaos/seed-N/.

    pytest -m chaos -s                                # the suite alone
    OUTREACH_CHAOS_SEEDS=7 OUTREACH_CHAOS_PROSPECTS=300 pytest -m chaos -s   # another seed, smaller
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from client import ClientError
from client.api import OutreachClient
from config.converter import data_converter
from config.settings import Settings
from localsmtp.provider import HostBehaviour, Provider
from store.db import CONNECTION_LOST, create_pool
from tests.chaos.conftest import ARTIFACTS, DevServer, Workers
from tests.factories import add_campaign, add_mailbox
from tests.postgres_private import PrivatePostgres
from tests.redis_ha import MASTER, RedisSentinels

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

PROSPECTS = int(os.environ.get("OUTREACH_CHAOS_PROSPECTS", "1200"))
# Named seeds, so a failure can be replayed; the first had 4 refusals in a Redis
# restart's wake before decision 0029, the second 5 Redis restarts in one run.
SEEDS = [int(s) for s in os.environ.get("OUTREACH_CHAOS_SEEDS", "920758,752192").split(",")]
# One host per provider, each on its own loopback address: limits are kept per
# provider and per host name, so the three count apart.
HOSTS = (("mx-a", "127.0.0.1", "gmail"), ("mx-b", "127.0.0.2", "outlook"), ("mx-c", "127.0.0.3", "other"))
PER_MINUTE = int(os.environ.get("OUTREACH_CHAOS_PER_MINUTE", "240"))  # per provider, ours and theirs
CONNECTIONS = 4  # per host, ours and theirs
MAILBOXES_PER_HOST = 8
MAILBOXES = [f"{name}-mb{i}" for name, _, _ in HOSTS for i in range(MAILBOXES_PER_HOST)]
CAPPED = "mx-b-mb3"  # its daily cap is below its share of the sends
STEP_DELAY = 5  # seconds between a prospect's step 1 and step 2
STEP_WINDOW = 100  # sends in flight per step
WORKERS = 2
KILLS = 10  # worker SIGKILLs per run, at least
BUDGET = 900.0  # every uncapped send final within this many seconds of the start
SEND_TIMEOUT = 15.0  # send_start_to_close_seconds below
FINAL = ("sent", "unknown", "hard_bounced")


@dataclass
class Run:
    """What happened during the run, for the judgement and the summary."""

    seed: int
    faults: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # time.time(), as the provider's records
    hangs: list[tuple[str, float, float]] = field(default_factory=list)  # (host, from, to)
    back_up: list[tuple[str, float]] = field(default_factory=list)  # (what, time.time()) once restarted
    started: float = field(default_factory=time.monotonic)

    def note(self, what: str) -> None:
        self.faults[what] += 1
        self.timeline.append((round(time.monotonic() - self.started, 1), what))


@dataclass
class Stack:
    provider: Provider
    temporal: DevServer
    redis: RedisSentinels
    postgres: PrivatePostgres
    workers: Workers
    rng: random.Random
    run: Run


# -- faults ----------------------------------------------------------------------


async def kill_worker(s: Stack) -> None:
    slot = s.rng.randrange(len(s.workers.procs))
    s.run.kills.append(time.time())
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
    """The primary restarts without persistence; the replica resyncs from it: all lost."""
    s.run.note("redis primary restarted (state lost)")
    await s.redis.restart_primary(s.rng.uniform(0.3, 1.5))
    s.run.back_up.append(("redis", time.time()))


async def fail_over_redis(s: Stack) -> None:
    """The primary dies and stays away; the sentinels promote the replica."""
    s.run.note("redis primary killed (failed over)")
    await s.redis.fail_over()
    s.run.back_up.append(("redis failover", time.time()))


async def restart_postgres(s: Stack) -> None:
    s.run.note("postgres restarted (fast shutdown)")
    await s.postgres.restart_after(s.rng.uniform(1, 4))
    s.run.back_up.append(("postgres", time.time()))


def host_spell(note: str, seconds: tuple[float, float], **fault: Any) -> Callable[[Stack], Awaitable[None]]:
    """A fault switched on at one random host for a few seconds, then off again."""
    healthy = {name: getattr(HostBehaviour("healthy"), name) for name in fault}

    async def spell(s: Stack) -> None:
        host = s.rng.choice(HOSTS)[0]
        s.provider.set_behaviour(host, **fault)
        s.run.note(note)
        began = time.time()
        await asyncio.sleep(s.rng.uniform(*seconds))
        s.provider.set_behaviour(host, **healthy)
        if fault.get("hang"):
            s.run.hangs.append((host, began, time.time()))

    return spell


hang_host = host_spell("host hung", (2, 6), hang=True)
drop_after_data = host_spell("host dropped after DATA", (0.5, 2), drop_after_data=True)
throttle_host = host_spell("host answered 421", (3, 8),
                           refuse_all=(421, "4.7.0 Temporary system problem, try later"))


FAULTS: dict[str, Callable[[Stack], Awaitable[None]]] = {
    "kill_worker": kill_worker, "restart_temporal": restart_temporal, "restart_redis": restart_redis,
    "fail_over_redis": fail_over_redis, "restart_postgres": restart_postgres, "hang_host": hang_host,
    "drop_after_data": drop_after_data, "throttle_host": throttle_host,
}
EXTRA = {"restart_redis": 1, "hang_host": 2, "drop_after_data": 2, "throttle_host": 2}


def plan(rng: random.Random) -> list[str]:
    """KILLS worker kills, every other kind once, and four more at random, shuffled."""
    kinds = ["kill_worker"] * KILLS + [k for k in FAULTS if k != "kill_worker"]
    kinds += rng.choices(list(EXTRA), list(EXTRA.values()), k=4)
    rng.shuffle(kinds)
    return kinds


async def inflict_faults(s: Stack, kinds: list[str]) -> None:
    for kind in kinds:
        await asyncio.sleep(s.rng.uniform(3, 8))
        await FAULTS[kind](s)


async def supervise(workers: Workers, stop: asyncio.Event) -> None:
    """Restart a worker that exited on its own (it may, if Temporal is gone when it starts)."""
    while not stop.is_set():
        workers.restart_exited()
        await asyncio.sleep(0.5)


# -- the run ---------------------------------------------------------------------


def noon_zone() -> str:
    """A fixed-offset zone where it is near noon now, so the capped mailbox's day does
    not end during the run (its cap would start again)."""
    offset = max(-12, min(14, 12 - datetime.now(UTC).hour))
    return f"Etc/GMT{-offset:+d}"  # the Etc zones' signs are inverted


Records = list[asyncpg.Record]


async def read_ledger(pool: asyncpg.Pool, campaign_id: str) -> tuple[Records, Records]:
    rows = await pool.fetch(
        "SELECT s.step, s.prospect_id, s.state, s.message_id, s.mailbox_id, s.last_reply, p.email,"
        " (SELECT array_agg(extract(epoch FROM a.started_at)::float8) FROM send_attempts a"
        "   WHERE (a.campaign_id, a.step, a.prospect_id) = (s.campaign_id, s.step, s.prospect_id))"
        "   AS attempts_at"
        " FROM sends s JOIN prospects p ON p.id = s.prospect_id WHERE s.campaign_id = $1", campaign_id)
    prospects = await pool.fetch("SELECT id, email, mailbox_id FROM prospects WHERE campaign_id = $1",
                                 campaign_id)
    return rows, prospects


def settled(rows: list[asyncpg.Record], prospects: list[asyncpg.Record], cap: int) -> bool:
    """Every uncapped prospect's sequence final, and the capped mailbox at its cap."""
    state = {(r["step"], r["prospect_id"]): r["state"] for r in rows}
    for p in prospects:
        if p["mailbox_id"] == CAPPED:
            continue
        first = state.get((1, p["id"]))
        if first not in FINAL or (first == "sent" and state.get((2, p["id"])) not in FINAL):
            return False
    capped = [r for r in rows if r["mailbox_id"] == CAPPED]
    return sum(r["state"] in ("sent", "unknown") for r in capped) >= cap and not any(
        r["state"] == "sending" for r in capped)


async def wait_settled(pool: asyncpg.Pool, campaign_id: str, cap: int, deadline: float) -> bool:
    """Until settled, the deadline, or five minutes without any change in the ledger
    (a stall: no point waiting out the budget)."""
    last, changed = None, time.monotonic()
    while True:
        try:
            rows, prospects = await read_ledger(pool, campaign_id)
        except CONNECTION_LOST:
            rows, prospects = last or [], []  # PostgreSQL is being restarted
        else:
            if settled(rows, prospects, cap):
                return True
            if rows != last:
                last, changed = rows, time.monotonic()
        if time.monotonic() > min(deadline, changed + 300.0):
            return False
        await asyncio.sleep(2.0)


def ledger_counts(rows: Records) -> dict[str, int]:
    return dict(sorted(Counter(
        f"step {r['step']} {r['state']}" + (" (capped mailbox)" if r["mailbox_id"] == CAPPED else "")
        for r in rows).items()))


async def running_workflows(server: DevServer, campaign_id: str) -> list[tuple[str, str]]:
    client = await Client.connect(server.address, data_converter=data_converter())
    query = f'OutreachCampaignId = "{campaign_id}" AND ExecutionStatus = "Running"'
    return [(w.id, w.run_id or "") async for w in client.list_workflows(query)]


async def stack_traces(server: DevServer, campaign_id: str, out: Path) -> str:
    """What each running workflow of the campaign is waiting on (for a stalled run); their
    histories are kept beside it, for `temporal workflow show` or a replay."""
    client = await Client.connect(server.address, data_converter=data_converter())
    traces = []
    for workflow_id, run_id in await running_workflows(server, campaign_id):
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            trace = await handle.query("__stack_trace")
            history = await handle.fetch_history()
            (out / f"history-{workflow_id}.json").write_text(history.to_json())
        except Exception as exc:  # noqa: BLE001 - a trace that cannot be had is reported, not raised
            trace = f"(no stack trace: {exc})"
        traces.append(f"--- {workflow_id}\n{trace}")
    text = "\n".join(traces) or "(no running workflows)"
    (out / "stack-traces.txt").write_text(text + "\n")
    return text


async def wait_closed(server: DevServer, campaign_id: str, timeout: float = 120.0) -> int:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while (running := len(await running_workflows(server, campaign_id))) and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
    return running


# The workers' settings and the client's alike (the client that starts the campaign
# fixes the workflows' timeouts and retry policy). Short fuses, so that each fault
# costs seconds rather than the production minutes.
OVERRIDES: dict[str, Any] = {
    **{f"limit_{provider}_{kind}": value for provider in ("gmail", "outlook", "other")
       for kind, value in (("per_minute", PER_MINUTE), ("connections", CONNECTIONS))},
    "smtp_connect_timeout": 3.0, "smtp_greeting_timeout": 3.0, "smtp_socket_timeout": 5.0,
    "smtp_idle_seconds": 2.0, "send_start_to_close_seconds": SEND_TIMEOUT, "send_first_retry_seconds": 2.0,
    "step_min_sleep_seconds": 0.5, "paused_recheck_seconds": 1.0,
    "limit_throttle_jitter_seconds": 10.0, "limit_breaker_open_seconds": 5.0,
    "limit_restore_hold_seconds": 5.0,
    "metrics_port": 0, "step_window": STEP_WINDOW, "mailbox_spacing": 0.0,
}


def chaos_settings(settings: Settings, redis: RedisSentinels, postgres: PrivatePostgres,
                   temporal: DevServer) -> Settings:
    return settings.model_copy(update={
        "temporal_address": temporal.address, "database_url": postgres.url(),
        "redis_sentinels": redis.sentinels, "redis_sentinel_master": MASTER,
        "redis_url": "redis://sentinel-named-primary:1/0", **OVERRIDES})


def chaos_env(settings: Settings) -> dict[str, str]:
    names = ("temporal_address", "database_url", "redis_url", "redis_sentinels", "redis_sentinel_master",
             "task_queue", *OVERRIDES)
    return {**os.environ, **{f"OUTREACH_{name.upper()}": str(getattr(settings, name)) for name in names}}


@pytest.mark.parametrize("seed", SEEDS)
async def test_campaign_survives_chaos_without_duplicates_losses_or_limit_violations(
    seed: int, settings: Settings, dev_server_process: DevServer, redis_ha: RedisSentinels,
    private_postgres: PrivatePostgres, workers_factory: list[Workers], capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(seed)
    run = Run(seed)
    out = ARTIFACTS / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):
        old.unlink()
    per_mailbox = math.ceil(PROSPECTS / len(MAILBOXES))
    daily_limit = 2 * per_mailbox + 4  # room, and still checked
    cap = per_mailbox + per_mailbox // 5  # below its 2 x per_mailbox share: binds during step 2
    capped_index = MAILBOXES.index(CAPPED)  # prospect i goes to mailbox i % len (tests/factories.py)
    # Scripted bounces, at most one per mailbox: three in a mailbox's last 50 sends would
    # (rightly) have the deliverability guard pause it (decision 0033).
    bouncing = rng.sample([m for m in range(len(MAILBOXES)) if m != capped_index],
                          min(len(MAILBOXES) - 1, max(1, PROSPECTS // 100)))
    bounces = {f"p{rng.randrange(m, PROSPECTS, len(MAILBOXES))}@example.com" for m in bouncing}
    replies = {email: (550, "5.1.1 No such user") for email in bounces}
    behaviours = [HostBehaviour(name, max_connections=CONNECTIONS, per_minute=PER_MINUTE,
                                replies=replies, address=address) for name, address, _ in HOSTS]
    soft = soft_bounces(rng, bounces, capped_index)
    run_settings = chaos_settings(settings, redis_ha, private_postgres, dev_server_process)
    workers = Workers(WORKERS, chaos_env(run_settings), out)
    workers_factory.append(workers)
    pool = await create_pool(private_postgres.url(), max_size=4)

    async with Provider(behaviours) as provider:
        campaign_id = await seed_campaign(pool, provider, daily_limit, cap)
        for email in soft:  # each one's first attempt is refused for now (decision 0042)
            provider.inbox(host_of(mailbox_of(email))).script(email, [SOFT_BOUNCE])
        for slot in range(WORKERS):
            workers.start(slot)
        stack = Stack(provider, dev_server_process, redis_ha, private_postgres, workers, rng, run)
        client = await OutreachClient.connect(run_settings)
        try:
            await client.start_campaign(campaign_id)
        finally:
            await client.close()
        run.started = time.monotonic()

        kinds = plan(rng)
        stop_supervising = asyncio.Event()
        supervisor = asyncio.create_task(supervise(workers, stop_supervising))
        chaos = asyncio.create_task(inflict_faults(stack, kinds))
        try:
            await chaos
            faults_over = time.monotonic() - run.started
            completed = await wait_settled(pool, campaign_id, cap, run.started + BUDGET)
            elapsed = time.monotonic() - run.started
            rows, prospects = await read_ledger(pool, campaign_id)
            places = await read_places(pool, campaign_id)
            if not completed:  # kept before anything else can fail
                await stack_traces(dev_server_process, campaign_id, out)
                (out / "ledger-counts.json").write_text(json.dumps(ledger_counts(rows), indent=2) + "\n")
            # The capped mailbox's sends wait for tomorrow: cancel them, then nothing runs.
            client = await OutreachClient.connect(run_settings)
            try:
                cancelled = await client.cancel_campaign(campaign_id, wait=120.0)
            except ClientError as exc:
                cancelled = str(exc)
            finally:
                await client.close()
            running = await wait_closed(dev_server_process, campaign_id)
            if running:
                await stack_traces(dev_server_process, campaign_id, out)
        finally:
            chaos.cancel()
            stop_supervising.set()
            await asyncio.gather(chaos, supervisor, return_exceptions=True)
            await pool.close()
        provider.save(out / "provider.jsonl")

    verdict = judge(provider, run, rows, prospects, bounces, daily_limit, cap)
    verdict["places"] = places_verdict(provider, places)
    verdict["violations"].update(place_violations(verdict["places"]))
    verdict["limit_violations"] = sum(verdict["violations"].values())
    verdict["soft_bounced"] = soft_bounce_outcomes(rows, prospects, soft)
    verdict.update(
        ledger=ledger_counts(rows), cancelled=cancelled, seed=seed, prospects=PROSPECTS,
        completed=completed, seconds=round(elapsed, 1),
        faults_stopped_at=round(faults_over, 1), running_executions=running,
        worker_unexpected_exits=workers.unexpected_exits, faults=dict(run.faults),
        recovery=[f"{what}: {first_attempt_after(rows, at)}" for what, at in run.back_up],
        timeline=run.timeline,
        limits={"per_minute": PER_MINUTE, "connections": CONNECTIONS, "daily": daily_limit, "capped": cap},
    )
    (out / "summary.json").write_text(json.dumps(verdict, indent=2) + "\n")
    with capsys.disabled():
        print(summary_table(verdict))
        if not completed or running:
            print(f"  ledger: {verdict['ledger']}\n  stalled workflows' stack traces:\n"
                  + (out / "stack-traces.txt").read_text())

    assert completed, f"sends not final within {BUDGET} s (see {out}/summary.json, stack-traces.txt)"
    assert len(run.faults) == len(FAULTS) and run.faults["worker killed (SIGKILL)"] >= KILLS, run.faults
    assert verdict["duplicates"] == 0, verdict["duplicate_ids"]
    assert verdict["losses"] == 0, verdict["lost"]
    assert verdict["mismatches"] == 0, verdict["mismatched"]
    assert cancelled == "cancelled" and running == 0, (cancelled, running)
    assert verdict["open_sends"] == 0, verdict["ledger"]
    assert verdict["limit_violations"] == 0, (verdict["violations"], verdict["places"])
    assert verdict["soft_bounced"]["retried"] == len(soft), verdict["soft_bounced"]
    assert verdict["capped"]["sent"] == cap, verdict["capped"]
    assert verdict["capped"]["not_final"] == {"queued": verdict["capped"]["held_back"]}, verdict["capped"]
    assert verdict["unknown"] <= verdict["unknown_bound"], verdict["unknown_causes"]
    assert "unexplained" not in verdict["unknown_causes"], verdict["unknown_unexplained"]


async def seed_campaign(pool: asyncpg.Pool, provider: Provider, daily_limit: int, cap: int) -> str:
    """MAILBOXES_PER_HOST mailboxes on each host, PROSPECTS prospects over them, two steps."""
    for mailbox in MAILBOXES:
        name = mailbox.split("-mb")[0]
        kind = next(k for n, _, k in HOSTS if n == name)
        await add_mailbox(pool, mailbox, provider.port(name), daily_limit=daily_limit, provider=kind)
    for name, address, _ in HOSTS:
        await pool.execute("UPDATE mailboxes SET smtp_host = $1 WHERE id LIKE $2", address, f"{name}-%")
    await pool.execute("UPDATE mailboxes SET daily_limit = $2, timezone = $3 WHERE id = $1",
                       CAPPED, cap, noon_zone())
    emails = [f"p{i}@example.com" for i in range(PROSPECTS)]
    steps = [("Hi {{ first_name }}", "Hello", 0), ("Re: Hi", "Following up", STEP_DELAY)]
    campaign_id, _ = await add_campaign(pool, MAILBOXES, emails, steps)
    return campaign_id


SOFT_BOUNCE = (451, "4.2.1 Mailbox busy, try again later")


def mailbox_of(email: str) -> str:
    """Prospect i goes to mailbox i % len (tests/factories.py)."""
    return MAILBOXES[int(email[1:].split("@")[0]) % len(MAILBOXES)]


def host_of(mailbox_id: str) -> str:
    return mailbox_id.split("-mb")[0]


def soft_bounces(rng: random.Random, bounces: set[str], capped_index: int) -> list[str]:
    """Prospects whose first attempt is refused with a 4xx, so every plan has retries that
    must find places of their own: one each, as many as the hard bounces, at least 3."""
    count = max(3, PROSPECTS // 100)
    chosen: list[str] = []
    while len(chosen) < count:
        i = rng.randrange(PROSPECTS)
        email = f"p{i}@example.com"
        if i % len(MAILBOXES) != capped_index and email not in bounces and email not in chosen:
            chosen.append(email)
    return chosen


def soft_bounce_outcomes(rows: Records, prospects: Records, soft: list[str]) -> dict[str, Any]:
    """What became of the sends scripted to soft-bounce once: retried (more than one
    attempt) and final like any other send."""
    ids = {p["id"] for p in prospects if p["email"] in soft}
    first = [r for r in rows if r["step"] == 1 and r["prospect_id"] in ids]
    return {"scripted": len(soft), "retried": sum(len(r["attempts_at"] or []) > 1 for r in first),
            "states": dict(Counter(str(r["state"]) for r in first))}


async def read_places(pool: asyncpg.Pool, campaign_id: str) -> Records:
    """Every SMTP attempt with its place in the limits, as the engine recorded it."""
    return await pool.fetch(
        "SELECT s.mailbox_id, s.message_id, a.attempt, a.outcome,"
        " extract(epoch FROM a.place_at)::float8 AS place_at,"
        " extract(epoch FROM a.started_at)::float8 AS started_at"
        " FROM send_attempts a JOIN sends s USING (campaign_id, step, prospect_id)"
        " WHERE a.campaign_id = $1 ORDER BY a.started_at", campaign_id)


def places_verdict(provider: Provider, places: Records) -> dict[str, dict[str, Any]]:
    """Per host, the busiest 60 s as the provider saw it, against the places the engine
    granted for that minute (decision 0042): a minute over the limit shows whether its
    messages went without a place, or late for the place they had."""
    verdict: dict[str, dict[str, Any]] = {}
    for name, _, _ in HOSTS:
        count, began = provider.busiest_window(name, 60.0)
        ends = began + 60.0
        attempts = [p for p in places if host_of(p["mailbox_id"]) == name]
        in_window = [r for r in provider.accepted
                     if r.host == name and r.acknowledged and began <= r.at < ends]
        late: list[float] = []
        unplaced = 0
        for message in in_window:
            tried = [p for p in attempts if p["message_id"] == message.message_id
                     and p["started_at"] <= message.at]
            own = max(tried, key=lambda p: p["started_at"], default=None)
            if own is None or own["place_at"] is None:
                unplaced += 1
            else:
                late.append(message.at - own["place_at"])
        verdict[name] = {
            "busiest_60s_at_provider": count, "window_began": round(began, 3),
            "places_granted_in_it": sum(1 for p in attempts if p["place_at"] is not None
                                        and p["outcome"] not in GIVEN_BACK and began <= p["place_at"] < ends),
            "messages_without_place": unplaced,
            "most_late_for_place_s": round(max(late, default=0.0), 3),
            "attempts_without_place": sum(1 for p in attempts if p["place_at"] is None),
        }
    return verdict


# Attempts that gave their place back (nothing was sent: mail/outcomes.py refund rows).
GIVEN_BACK = {"host_busy", "mailbox_paused", "stopped", "place_passed"}


def place_violations(places: dict[str, dict[str, Any]]) -> dict[str, int]:
    found: Counter[str] = Counter()
    for host in places.values():
        found["attempt without a place in the limits"] += host["attempts_without_place"]
        found["places granted above per-minute"] += max(0, host["places_granted_in_it"] - PER_MINUTE)
    return {k: v for k, v in found.items() if v}


def first_attempt_after(rows: list[asyncpg.Record], at: float) -> str:
    """How long after a server came back the next SMTP attempt began: the workers reconnected."""
    later = [t for r in rows for t in (r["attempts_at"] or []) if t > at]
    return "no send after it" if not later else f"{min(later) - at:.1f} s"


# -- the judgement ----------------------------------------------------------------


def judge(
    provider: Provider, run: Run, rows: list[asyncpg.Record], prospects: list[asyncpg.Record],
    bounces: set[str], daily_limit: int, cap: int,
) -> dict[str, Any]:
    copies, acked = provider.copies(), provider.acknowledged_copies()
    ledger: dict[tuple[int, int], asyncpg.Record] = {(r["step"], r["prospect_id"]): r for r in rows}
    states = {key: str(r["state"]) for key, r in ledger.items()}
    known_ids = {r["message_id"] for r in rows}
    outcome: Counter[str] = Counter()
    lost: list[str] = []
    mismatched: list[str] = []
    for p in prospects:
        capped = p["mailbox_id"] == CAPPED
        for step in (1, 2):
            row = ledger.get((step, p["id"]))
            eligible = step == 1 or states.get((1, p["id"])) == "sent"
            if not eligible:
                if row is not None and copies[row["message_id"]]:
                    mismatched.append(f"{step}:{p['id']} sent though step 1 was not")
                outcome[f"step {step} not eligible"] += 1
                continue
            state = row["state"] if row is not None else "missing"
            outcome[f"step {step} {state}" + (" (capped mailbox)" if capped else "")] += 1
            if row is None or state not in FINAL:
                if not capped:  # the capped mailbox's held-back sends are judged below
                    lost.append(f"{step}:{p['id']} {state}" + (f": {row['last_reply']}" if row else ""))
                continue
            mid = row["message_id"]
            if state == "sent" and acked[mid] != 1:
                mismatched.append(f"{step}:{p['id']} sent but the provider acknowledged {acked[mid]}")
            if state == "hard_bounced" and (acked[mid] or p["email"] not in bounces):
                mismatched.append(f"{step}:{p['id']} hard_bounced but not scripted to")
            if p["email"] in bounces and state != "hard_bounced":
                mismatched.append(f"{step}:{p['id']} scripted to bounce but {state}")
    duplicate_ids = sorted(mid for mid, n in copies.items() if n > 1)
    strays = sorted(mid for mid in copies if mid not in known_ids)
    causes = unknown_causes(provider, run, rows)
    violations = limit_violations(provider, rows, daily_limit, cap)
    capped_rows = [r for r in rows if r["mailbox_id"] == CAPPED]
    not_final = Counter(str(r["state"]) for r in capped_rows if r["state"] not in FINAL)
    return {
        "outcomes": dict(sorted(outcome.items())),
        "copies_received": sum(copies.values()),
        "copies_unacknowledged": sum(copies.values()) - sum(acked.values()),
        "duplicates": len(duplicate_ids), "duplicate_ids": duplicate_ids[:20],
        "losses": len(lost), "lost": lost[:20],
        "mismatches": len(mismatched) + len(strays), "mismatched": (mismatched + strays)[:20],
        "open_sends": sum(1 for r in rows if r["mailbox_id"] != CAPPED
                          and r["state"] in ("queued", "sending", "soft_bounced")),
        "limit_violations": sum(violations.values()), "violations": violations,
        "capped": {"mailbox": CAPPED, "cap": cap,
                   "sent": sum(r["state"] in ("sent", "unknown") for r in capped_rows),
                   "received": sum(1 for r in provider.accepted if r.mailbox.split("@")[0] == CAPPED),
                   "not_final": dict(not_final), "held_back": sum(not_final.values())},
        "unknown": sum(causes.values()), "unknown_causes": dict(causes),
        "unknown_bound": (run.faults["worker killed (SIGKILL)"] + len(run.hangs)
                          + sum(copies.values()) - sum(acked.values())),
        "unknown_unexplained": [f"{r['step']}:{r['prospect_id']}" for r in rows
                                if r["state"] == "unknown" and cause_of(provider, run, r) == "unexplained"],
        "hosts": {name: {"peak_connections": provider.peak_connections(name),
                         "most_in_60s": provider.most_in_window(name, 60.0),
                         "refused_connections": provider.refused_connections(name, "connections"),
                         "injected_421": provider.refused_connections(name, "refuse_all")}
                  for name, _, _ in HOSTS},
    }


def cause_of(provider: Provider, run: Run, row: asyncpg.Record) -> str:
    """Why a send ended `unknown`: its DATA began and its reply never reached the engine."""
    if any(r.message_id == row["message_id"] and not r.acknowledged for r in provider.accepted):
        return "dropped after DATA (injected)"
    attempts = row["attempts_at"] or []
    if any(start - 1.0 <= kill <= start + SEND_TIMEOUT + 2.0 for start in attempts for kill in run.kills):
        return "worker killed during its attempt"
    host = next((name for name, address, _ in HOSTS if row["mailbox_id"].startswith(name)), "")
    if any(h == host and start <= began + SEND_TIMEOUT and began <= end
           for h, began, end in run.hangs for start in attempts):
        return "host hung during its attempt"
    return "unexplained"


def unknown_causes(provider: Provider, run: Run, rows: list[asyncpg.Record]) -> Counter[str]:
    return Counter(cause_of(provider, run, r) for r in rows if r["state"] == "unknown")


def limit_violations(
    provider: Provider, rows: list[asyncpg.Record], daily_limit: int, cap: int,
) -> dict[str, int]:
    """Each limit, from the provider's side (it refuses what goes beyond, so each
    refusal is one violation, whenever it happened); the daily caps from both sides."""
    found: Counter[str] = Counter()
    found["connection refused: over the host limit"] = sum(
        1 for r in provider.connections if r.refused and r.reason == "connections")
    found["message refused: over the per-minute limit"] = len(provider.refusals)
    for name, _, _ in HOSTS:  # both hold by construction (the provider refuses beyond them)
        found["connections above limit"] += max(0, provider.peak_connections(name) - CONNECTIONS)
        found["messages above per-minute"] += max(0, provider.most_in_window(name, 60.0) - PER_MINUTE)
    by_mailbox = Counter(r["mailbox_id"] for r in rows if r["state"] in ("sent", "unknown"))
    received = Counter(r.mailbox.split("@")[0] for r in provider.accepted)
    for mailbox in set(by_mailbox) | set(received):
        limit = cap if mailbox == CAPPED else daily_limit
        found["daily cap exceeded"] += max(0, by_mailbox[mailbox] - limit, received[mailbox] - limit)
    return {k: v for k, v in found.items() if v}


def summary_table(v: dict[str, Any]) -> str:
    c = v["capped"]
    lines = [
        "", f"chaos run: seed {v['seed']}, {v['prospects']} prospects x 2 steps, "
        f"{'settled' if v['completed'] else 'NOT settled'} in {v['seconds']} s "
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
        "  places (engine) against the provider's busiest 60 s:",
        *(f"    {h}: provider {p['busiest_60s_at_provider']}, places granted in it"
          f" {p['places_granted_in_it']}, messages without a place {p['messages_without_place']},"
          f" most late for its place {p['most_late_for_place_s']} s"
          for h, p in v["places"].items()),
        f"  soft bounces scripted {v['soft_bounced']['scripted']}, retried {v['soft_bounced']['retried']},"
        f" then {v['soft_bounced']['states']}",
        f"  capped mailbox {c['mailbox']}: sent {c['sent']}/{c['cap']}, provider received {c['received']},"
        f" held back {c['not_final']}",
        f"  unknown {v['unknown']} (bound {v['unknown_bound']}): {v['unknown_causes']}",
        f"  duplicates {v['duplicates']}, losses {v['losses']}, mismatches {v['mismatches']},"
        f" open sends {v['open_sends']}, running executions {v['running_executions']},"
        f" limit violations {v['limit_violations']} {v['violations']}",
    ]
    return "\n".join(lines)
