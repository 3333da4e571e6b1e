"""What the Docker image holds, built the way the Dockerfile builds it, and run.

No Docker engine here: tests/integration/image_build.py applies .dockerignore to the
source tree, then runs the Dockerfile's own instructions (its RUN lines verbatim) into
temporary directories. From the resulting virtualenv: `outreach --help`, `--version`
when the CLI has it, `db migrate` into a fresh database, and the image's command (a
worker) against a Temporal dev server and Redis, probed by the image's HEALTHCHECK and
stopped with its STOPSIGNAL. A package, SQL migration, Lua script or other file that
the image leaves out fails here (docs/decisions/0023).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from temporalio.testing import WorkflowEnvironment

from tests.conftest import PG_ADMIN_URL, REDIS_URL, _db_url
from tests.integration.conftest import temporal_address
from tests.integration.image_build import Image, build_image
from tests.processes import free_port_pair

pytestmark = [pytest.mark.e2e, pytest.mark.image, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
# Top-level packages of the tree that production runs without (the dev extra's).
DEV_ONLY = {"tests", "bench", "localsmtp"}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    work = tmp_path_factory.mktemp("image")
    yield build_image(ROOT, work)
    shutil.rmtree(work)  # some 400 MB


@dataclass
class Ran:
    returncode: int
    output: str


def in_image(image: Image, *args: str, env: dict[str, str] | None = None) -> Ran:
    """A command as a container of the image runs it: its PATH, its ENV, its WORKDIR only."""
    done = subprocess.run([image.which(args[0]), *args[1:]], env={**image.env, **(env or {})},
                          cwd=image.workdir, capture_output=True, text=True, timeout=120)
    return Ran(done.returncode, done.stdout + done.stderr)


def production_files() -> set[str]:
    """Every file of the tree's production packages (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - DEV_ONLY
    return {f for f in listed if f.split("/")[0] in packages and (ROOT / f).is_file()}


def site_packages(image: Image) -> Path:
    ran = in_image(image, "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    return Path(ran.output.strip())


def test_image_holds_every_file_of_the_production_packages(image: Image) -> None:
    installed = site_packages(image)
    expected = production_files()
    assert {f.split("/")[0] for f in expected} >= {"telemetry", "store", "limits", "workers", "client"}
    assert any(f.endswith(".sql") for f in expected) and any(f.endswith(".lua") for f in expected)
    missing = sorted(f for f in expected if not (installed / f).is_file())
    assert missing == [], "the image leaves these out"
    assert not (installed / "localsmtp").exists()  # production runs without the local SMTP server


def test_image_installs_only_the_locked_wheels_then_the_project_without_dependencies(image: Image) -> None:
    build, runtime = image.run_lines["build"], " ".join(image.run_lines["runtime"])
    assert any("--require-hashes" in line and "-r requirements.lock" in line for line in build)
    assert "--no-index" in runtime and "--require-hashes" in runtime and "--no-deps" in runtime
    assert "pip check" in runtime
    assert image.user in image.users_created and image.user != "root"
    assert image.stopsignal == "SIGTERM"  # what workers/main.py drains on
    assert image.cmd == ["outreach", "worker"]


def test_help_version_and_the_dev_stacks_clear_refusal(image: Image) -> None:
    help_ = in_image(image, "outreach", "--help")
    assert help_.returncode == 0, help_.output
    assert all(command in help_.output for command in ("worker", "db", "campaigns", "schedules"))
    if "--version" in help_.output:  # the CLI is gaining it; its value is the package's
        with (ROOT / "pyproject.toml").open("rb") as f:
            version = tomllib.load(f)["project"]["version"]
        ran = in_image(image, "outreach", "--version")
        assert ran.returncode == 0 and version in ran.output, ran.output
    dev = in_image(image, "outreach", "dev")  # needs the dev extra, which the image has not
    assert dev.returncode != 0 and "pip install 'outreach[dev]'" in dev.output, dev.output


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A database `outreach db migrate` creates itself; dropped afterwards."""
    name = f"outreach_image_{secrets.token_hex(4)}"
    yield _db_url(name)
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    prefix = f"outreach-image-{secrets.token_hex(4)}"
    yield prefix
    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()




async def read_until(stream: asyncio.StreamReader, event: str, seen: list[str], within: float) -> None:
    async def scan() -> None:
        while line := (await stream.readline()).decode():
            seen.append(line)
            if f'"event": "{event}"' in line:
                return
        raise AssertionError(f"the output ended before {event}:\n" + "".join(seen)[-3000:])

    await asyncio.wait_for(scan(), within)


async def test_migrate_then_the_images_command_runs_a_worker_until_its_stop_signal(
    image: Image, dev_server: WorkflowEnvironment, database_url: str, key_prefix: str,
) -> None:
    env = {
        "OUTREACH_DATABASE_URL": database_url, "OUTREACH_REDIS_URL": REDIS_URL,
        "OUTREACH_TEMPORAL_ADDRESS": temporal_address(dev_server), "OUTREACH_TASK_QUEUE": key_prefix,
        "OUTREACH_SECRET_KEYS": os.environ["OUTREACH_SECRET_KEYS"],
        "OUTREACH_METRICS_PORT": str(free_port_pair()), "OUTREACH_METRICS_HOST": "127.0.0.1",
    }
    migrated = in_image(image, "outreach", "db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.output
    shipped = sorted(int(p.name[:4]) for p in (ROOT / "store" / "migrations").glob("*.sql"))
    conn = await asyncpg.connect(database_url)
    try:
        applied = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()
    assert applied == shipped

    # A one-shot command's container is healthy: the probe has no worker to ask.
    probe = [*image.healthcheck, "--pid", str(os.getpid())]
    assert in_image(image, *probe, env=env).returncode == 0

    worker = await asyncio.create_subprocess_exec(
        image.which(image.cmd[0]), *image.cmd[1:], env={**image.env, **env}, cwd=image.workdir,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []
    try:
        assert worker.stderr is not None
        await read_until(worker.stderr, "worker_started", seen, within=120)
        # The image's HEALTHCHECK, asked about this worker (in a container: pid 1).
        healthy = in_image(image, *image.healthcheck, "--pid", str(worker.pid), env=env)
        assert healthy.returncode == 0 and "HTTP 200" in healthy.output, healthy.output
        worker.send_signal(getattr(signal, image.stopsignal))
        await read_until(worker.stderr, "worker_stopped", seen, within=60)
        assert await asyncio.wait_for(worker.wait(), 30) == 0, "".join(seen)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    logged = [json.loads(line) for line in seen if line.startswith("{")]
    assert logged and not [e for e in logged if e.get("level") in {"error", "critical"}], seen
