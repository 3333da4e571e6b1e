"""docker-compose.yml run for real: every outreach command its services declare, in
dependency order and with the environment the file gives them, then a campaign sent
through the worker service's processes.

There is no Docker engine here, so the services built from this repository run as
local processes (the venv's `outreach` stands in for the image's) and the third-party
images have stand-ins: postgresql is the local PostgreSQL (a fresh database of this
test's own, checked against the user, password and database the file gives the
image), redis the local Redis, temporal a Temporal dev server started here with no
search attribute registered (setup must register them). The file is read with the
.env a user makes from .env.example, its required values filled in.

What the test changes, and why: service host names become the stand-ins'
addresses; published ports (the codec server's, the workers' metrics) become free
local ones; OUTREACH_TASK_QUEUE gets a suffix, so Redis keys and Temporal ids of
this run meet nobody else's; OUTREACH_MAILBOX_SPACING=0, so the sends do not wait
minutes apart. Everything else, the commands included, is what the file says.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow
from temporalio.testing import WorkflowEnvironment

from client.schedules import JOBS
from client.search_attributes import missing_search_attributes
from config.converter import data_converter, payload_encryption
from config.names import schedule_id
from config.secrets import generate_entry
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from tests import compose_file
from tests.compose_file import ENV_EXAMPLE, ROOT
from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.processes import free_port_pair

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
# Third-party images and the port each listens on in its container.
STAND_INS = {"postgresql": 5432, "redis": 6379, "temporal": 7233}
# Third-party images no outreach command needs; the Web UI's codec endpoint is
# checked by calling the codec server the way the UI's page does.
NOT_RUN = {"temporal-ui", "prometheus", "grafana"}
# What a long-running outreach command prints once it serves.
READY = {"worker": "worker_started", "codec-server": "codec server on",
         "unsubscribe-server": "unsubscribe server on"}
LOOPBACK = {"127.0.0.1", "localhost"}
PROSPECTS = ["ada@example.com", "ben@example.com", "cy@example.com"]


@dataclass
class Stack:
    """The stand-ins and the run's choices, from which each service's environment follows."""

    variables: dict[str, str]
    services: dict[str, Any]
    database: str
    temporal_address: str
    suffix: str = field(default_factory=lambda: secrets.token_hex(4))
    home: Path = Path("/nonexistent")

    def environment(self, name: str) -> dict[str, str]:
        declared = compose_file.environment(self.services[name], ROOT, self.variables)
        env = {key: self.stand_in(value) for key, value in declared.items()}
        for key, value in env.items():
            host = named_host(value)
            assert host is None or host in LOOPBACK, (
                f"{name}: {key}={value} names {host}, which is no service the stack runs")
        assert "OUTREACH_TASK_QUEUE" in env, f"{name} would share the default prefix"
        env["OUTREACH_TASK_QUEUE"] = f"{env['OUTREACH_TASK_QUEUE']}-{self.suffix}"
        if "OUTREACH_METRICS_PORT" in env:
            env["OUTREACH_METRICS_PORT"] = str(free_port_pair())
        env["OUTREACH_MAILBOX_SPACING"] = "0"
        return {**env, "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home)}

    def database_url(self) -> str:
        return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{self.database}"

    def stand_in(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.startswith("postgres") and parts.hostname == "postgresql":
            image = self.services["postgresql"]["environment"]
            assert parts.port == STAND_INS["postgresql"], value
            assert (parts.username, unquote(parts.password or ""), parts.path) == (
                image["POSTGRES_USER"], image["POSTGRES_PASSWORD"], "/" + image["POSTGRES_DB"]
            ), "the URL does not match the user, password and database PostgreSQL is created with"
            return self.database_url()
        if parts.scheme == "redis" and parts.hostname == "redis":
            assert parts.port == STAND_INS["redis"], value
            return urlunsplit(parts._replace(netloc=urlsplit(REDIS_URL).netloc))
        if value == f"temporal:{STAND_INS['temporal']}":
            return self.temporal_address
        return value


@dataclass
class Running:
    """A long-running service's process, its output collected as it comes."""

    name: str
    proc: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace"))

    async def wait_for(self, text: str, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.output):
            assert self.proc.returncode is None, f"{self.name} exited {self.proc.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"{self.name} not ready in {timeout}s:\n{self.log()}"
            await asyncio.sleep(0.1)

    def log(self) -> str:
        return "".join(self.output[-40:])


def named_host(value: str) -> str | None:
    """The host of a URL or of host:port, if the value is one."""
    if "://" in value:
        return urlsplit(value).hostname
    match = re.fullmatch(r"([\w.-]+):\d+", value)
    return match[1] if match else None




def grace_seconds(service: Mapping[str, Any]) -> float:
    value = str(service.get("stop_grace_period", "10s"))  # compose's default
    match = re.fullmatch(r"(\d+)(s|m)", value)
    assert match, f"stop_grace_period {value} is not read here"
    return int(match[1]) * (60 if match[2] == "m" else 1)


@pytest.fixture
async def stack_database() -> AsyncIterator[str]:
    """A fresh database, created as the postgres image creates POSTGRES_DB; dropped afterwards."""
    name = f"outreach_compose_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def bare_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server as auto-setup leaves one: the default namespace, no search attributes of ours."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), dev_server_log_level="error",
    ) as environment:
        yield environment


@pytest.fixture
async def stack(stack_database: str, bare_temporal: WorkflowEnvironment, tmp_path: Path
                ) -> AsyncIterator[Stack]:
    # The .env a user makes: .env.example with its required values filled in.
    variables = compose_file.read_dotenv(ENV_EXAMPLE)
    variables.update(OUTREACH_SECRET_KEYS=generate_entry("compose1"), POSTGRES_PASSWORD=secrets.token_hex(12))
    found = Stack(
        variables=variables, services=compose_file.load(variables)["services"], database=stack_database,
        temporal_address=bare_temporal.client.service_client.config.target_host, home=tmp_path,
    )
    yield found
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(f"*-{found.suffix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def run_once(name: str, words: list[str], env: dict[str, str], cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *words, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, f"{name}: {words} exited {proc.returncode}:\n{out.decode()}"
    return out.decode()


async def start(name: str, words: list[str], env: dict[str, str], cwd: Path) -> Running:
    proc = await asyncio.create_subprocess_exec(
        *words, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    running = Running(name, proc)
    running.reader = asyncio.create_task(running.read())
    return running


async def stop(running: Running, grace: float) -> None:
    """SIGTERM, as `docker compose stop` sends it; a clean exit within the grace period."""
    running.proc.send_signal(signal.SIGTERM)
    try:
        code = await asyncio.wait_for(running.proc.wait(), grace)
    finally:
        if running.proc.returncode is None:
            running.proc.kill()
            await running.proc.wait()
        assert running.reader is not None
        await running.reader
    assert code == 0, f"{running.name} exited {code} on SIGTERM:\n{running.log()}"


def mapped_command(service: Mapping[str, Any], words: list[str], port_map: dict[int, int]) -> list[str]:
    """A command with its --port on a free local port (recorded under the port the
    service publishes it on), bound on loopback."""
    mapped = list(words)
    for i, word in enumerate(words[:-1]):
        if word == "--port":
            local = free_port_pair()
            port_map[compose_file.published_port(service, int(words[i + 1]))] = local
            mapped[i + 1] = str(local)
        if word == "--host":
            mapped[i + 1] = "127.0.0.1"
    return mapped


async def test_the_compose_stack_comes_up_sends_a_campaign_and_stops(
    stack: Stack, bare_temporal: WorkflowEnvironment, tmp_path: Path,
) -> None:
    services = stack.services
    # Every image `up` starts has a stand-in or is not needed (profiles are left out, as `up` does).
    images = {name for name, s in services.items() if "build" not in s and compose_file.started_by_up(s)}
    assert images == {*STAND_INS, *NOT_RUN}
    assert compose_file.one_shots(services) == {"setup"}, "a new one-shot: say here what it must do"
    running: list[Running] = []
    ports: dict[int, int] = {}  # published -> local
    workdir = tmp_path / "app"
    workdir.mkdir()
    try:
        for name in compose_file.start_order(services):
            service = services[name]
            if "build" not in service or not compose_file.started_by_up(service):
                continue
            words = compose_file.argv(service)
            env = stack.environment(name)
            if name in compose_file.one_shots(services):
                first = await run_once(name, words, env, workdir)
                await check_setup_done(stack, bare_temporal, first)
                again = await run_once(name, words, env, workdir)  # the next `up`
                assert_nothing_changed(again)
                continue
            command = words[1] if words[0] == "outreach" else words[0]
            assert command in READY, f"{name} runs {words}: which line says it is ready?"
            for replica in range(service.get("deploy", {}).get("replicas", 1)):
                env = stack.environment(name)
                command_words = mapped_command(service, words, ports)
                proc = await start(f"{name}-{replica + 1}", command_words, env, workdir)
                running.append(proc)
                await proc.wait_for(READY[command], timeout=60)
                if command == "worker" and not env.get("OUTREACH_UNSUBSCRIBE_BASE_URL"):
                    # .env.example leaves it empty: the worker says so before it serves.
                    assert "unsubscribe_base_url_unset" in proc.log(), proc.log()
                if "OUTREACH_METRICS_PORT" in env:
                    await check_metrics(int(env["OUTREACH_METRICS_PORT"]))
        assert {r.name for r in running} == {"codec-server-1", "unsubscribe-1", "worker-1", "worker-2"}

        await check_the_web_ui_decodes_through_the_codec_server(stack, ports)
        await check_the_unsubscribe_server_answers(stack, ports)
        await send_a_campaign(stack, tmp_path / "campaigns")
        await check_the_workers_run_what_setup_scheduled(stack)

        for proc in running:
            await stop(proc, grace_seconds(services[proc.name.rsplit("-", 1)[0]]))
        running.clear()
    finally:
        for proc in running:  # after a failure: nothing left behind
            if proc.proc.returncode is None:
                proc.proc.kill()
                await proc.proc.wait()
            if proc.reader is not None:
                await proc.reader


async def check_setup_done(stack: Stack, temporal: WorkflowEnvironment, output: str) -> None:
    """The schema, the search attributes and the schedules are there before any worker starts."""
    conn = await asyncpg.connect(stack.database_url())
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0, output
    finally:
        await conn.close()
    assert await missing_search_attributes(temporal.client, "default") == [], output
    assert len(re.findall(r"schedule-\S+: created", output)) == len(JOBS), output


def assert_nothing_changed(output: str) -> None:
    assert "database is up to date" in output, output
    assert "search attributes already registered" in output, output
    assert len(re.findall(r"schedule-\S+: unchanged", output)) == len(JOBS), output


async def check_metrics(port: int) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200


async def check_the_unsubscribe_server_answers(stack: Stack, ports: dict[int, int]) -> None:
    """Its published port serves, and a link that is not ours gets 400."""
    unsubscribe = stack.services["unsubscribe"]
    port = ports[compose_file.published_port(unsubscribe, 8082)]
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        async with http.post(f"http://127.0.0.1:{port}/u/not-a-token",
                             data={"List-Unsubscribe": "One-Click"}) as response:
            assert response.status == 400


async def check_the_web_ui_decodes_through_the_codec_server(stack: Stack, ports: dict[int, int]) -> None:
    """A request like the Web UI page's: to its TEMPORAL_CODEC_ENDPOINT, from its origin."""
    ui = stack.services["temporal-ui"]
    endpoint = urlsplit(ui["environment"]["TEMPORAL_CODEC_ENDPOINT"])
    assert endpoint.port in ports, f"the UI's codec endpoint {endpoint.geturl()} is no codec server's"
    local = endpoint._replace(netloc=f"127.0.0.1:{ports[endpoint.port]}").geturl()
    origin = f"http://localhost:{compose_file.published_port(ui, 8080)}"
    codec = payload_encryption(Settings(secret_keys=stack.variables["OUTREACH_SECRET_KEYS"]))
    sealed = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"550 no such user"')])
    body = json_format.MessageToJson(Payloads(payloads=sealed))
    async with aiohttp.ClientSession() as http, http.post(
        f"{local}/decode", data=body, headers={"Origin": origin, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 200, await response.text()
        assert response.headers.get("Access-Control-Allow-Origin") == origin
        decoded = json_format.Parse(await response.text(), Payloads())
    assert [p.data for p in decoded.payloads] == [b'"550 no such user"']


async def check_the_workers_run_what_setup_scheduled(stack: Stack) -> None:
    """One run of a schedule setup applied, triggered now, completes on the workers."""
    settings = Settings(secret_keys=stack.variables["OUTREACH_SECRET_KEYS"])
    client = await Client.connect(stack.temporal_address, data_converter=data_converter(settings))
    setup_env = compose_file.environment(stack.services["setup"], ROOT, stack.variables)
    prefix = f"{setup_env['OUTREACH_TASK_QUEUE']}-{stack.suffix}"
    schedule = client.get_schedule_handle(schedule_id(prefix, "reconcile"))
    await schedule.trigger()
    deadline = time.monotonic() + 30
    while not (recent := (await schedule.describe()).info.recent_actions):
        assert time.monotonic() < deadline, "the triggered schedule started nothing"
        await asyncio.sleep(0.2)
    action = recent[-1].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    run = client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
    await asyncio.wait_for(run.result(), 60)


async def send_a_campaign(stack: Stack, campaigns: Path) -> None:
    """Through the `cli` service (`docker compose run --rm cli ...`), files in its volume."""
    cli = stack.services["cli"]
    working_dir = cli["working_dir"]
    assert any(v.split(":")[1] == working_dir for v in cli["volumes"]), "the files are not mounted"
    campaigns.mkdir()
    async with LocalSmtpServer(credentials={"compose-1": "s3cret"}) as inbox:
        write_campaign(campaigns, inbox.port)
        env = stack.environment("cli")
        entry = compose_file.argv({**cli, "command": []})

        async def operator(*args: str) -> str:
            return await run_once("cli", [*entry, *args], env, campaigns)

        await operator("mailboxes", "import", "mailboxes.yaml")
        campaign_id = (await operator("campaigns", "create", "campaign.yaml")).strip().splitlines()[-1]
        await operator("campaigns", "start", campaign_id)
        await wait_for_completion(stack, campaign_id, timeout=180)
        status = json.loads(await operator("campaigns", "status", campaign_id, "--json"))
        received = Counter(r for m in inbox.messages for r in m.rcpt_tos)
        users = {m.auth_user for m in inbox.messages}
    assert [(s["step"], s["sent"]) for s in status["steps"]] == [(1, 3), (2, 3)], status
    assert received == Counter({p: 2 for p in PROSPECTS})
    assert users == {"compose-1"}


async def wait_for_completion(stack: Stack, campaign_id: str, timeout: float) -> None:  # noqa: ASYNC109
    conn = await asyncpg.connect(stack.database_url())
    try:
        deadline = time.monotonic() + timeout
        while (state := await conn.fetchval("SELECT state FROM campaigns WHERE id = $1", campaign_id)
               ) != "completed":
            sends = await conn.fetch("SELECT state, count(*) FROM sends GROUP BY state")
            assert time.monotonic() < deadline, f"campaign {state}, sends {sends}"
            await asyncio.sleep(0.5)
        states = await conn.fetch("SELECT state FROM sends WHERE campaign_id = $1", campaign_id)
    finally:
        await conn.close()
    assert [r["state"] for r in states] == ["sent"] * 2 * len(PROSPECTS)


def write_campaign(campaigns: Path, smtp_port: int) -> None:
    (campaigns / "mailboxes.yaml").write_text(f"""\
mailboxes:
  - id: compose-1
    email: compose-1@example.com
    smtp_host: 127.0.0.1
    smtp_port: {smtp_port}
    security: none
    username: compose-1
    password: s3cret
    daily_limit: 50
    timezone: UTC
    window: {{start: "00:00", end: "24:00", days: [mon, tue, wed, thu, fri, sat, sun]}}
""")
    prospects = "\n".join(f"  - {{email: {p}, first_name: {p.split('@')[0].title()}}}" for p in PROSPECTS)
    (campaigns / "campaign.yaml").write_text(f"""\
name: Compose check
workspace: compose
mailboxes: [compose-1]
steps:
  - subject: "Hello {{{{ first_name }}}}"
    body: "Hi {{{{ first_name }}}}, a short note."
  - delay: 1s
    body: "Following up, {{{{ first_name }}}}."
prospects:
{prospects}
""")

