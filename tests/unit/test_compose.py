"""docker-compose.yml describes the production-like stack the README promises.

These read the file; tests/integration/test_compose_stack.py runs its commands.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client.codec_server import TOKEN_ENV
from config.settings import Settings
from tests.compose_file import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    ComposeError,
    argv,
    dependencies,
    interpolated_names,
    load,
    one_shots,
    option_values,
    published_port,
    read_dotenv,
    start_order,
)

OUTREACH_SERVICES = ("setup", "worker", "codec-server", "unsubscribe", "cli")


def compose() -> dict[str, Any]:
    return load()


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def test_compose_has_every_part_of_the_stack() -> None:
    assert {"postgresql", "redis", "temporal", "temporal-ui", "setup", "worker", "codec-server",
            "unsubscribe", "cli", "prometheus", "grafana"} <= set(services())


def test_the_file_is_valid_against_the_compose_specification() -> None:
    # check-jsonschema ships the compose-spec schema: no network needed.
    tool = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_temporal_persists_to_postgresql() -> None:
    temporal = services()["temporal"]
    assert temporal["environment"]["DB"].startswith("postgres")
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"


def test_setup_migrates_registers_and_applies_schedules_once_the_services_are_healthy() -> None:
    s = services()
    script = " ".join(argv(s["setup"]))
    steps = ["outreach db migrate", "outreach search-attributes register", "outreach schedules apply"]
    assert all(step in script for step in steps), script
    assert sorted(steps, key=script.index) == steps
    assert argv(s["setup"])[:2] == ["sh", "-ec"], "a failing step must fail the service"
    backing = ("postgresql", "redis", "temporal")
    assert dependencies(s["setup"]) == dict.fromkeys(backing, "service_healthy")
    for name in backing:
        assert s[name]["healthcheck"]["test"], name
    assert "setup" in one_shots(s) and s["setup"]["restart"] == "no"


def test_no_worker_starts_before_setup_has_succeeded() -> None:
    s = services()
    workers = [name for name, svc in s.items() if "build" in svc and "worker" in argv(svc)]
    assert workers == ["worker"]
    for name in workers:
        assert dependencies(s[name])["setup"] == "service_completed_successfully"
    order = start_order(s)
    assert order.index("setup") < order.index("worker")


def test_workers_are_configured_by_outreach_variables_and_scaled() -> None:
    worker = services()["worker"]
    env = worker["environment"]
    for name in ("OUTREACH_TEMPORAL_ADDRESS", "OUTREACH_DATABASE_URL", "OUTREACH_REDIS_URL",
                 "OUTREACH_TASK_QUEUE"):
        assert name in env
    assert worker["deploy"]["replicas"] >= 2
    assert argv(worker) == ["outreach", "worker"]


def test_redis_keeps_its_data_on_a_volume() -> None:
    data = compose()
    redis = data["services"]["redis"]
    command = redis["command"]
    assert option_values(command, "--appendonly") == ["yes"]
    assert option_values(command, "--appendfsync") == ["everysec"]
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in data["volumes"]


def test_the_web_ui_decodes_through_the_codec_server() -> None:
    s = services()
    codec = argv(s["codec-server"])
    assert codec[:2] == ["outreach", "codec-server"]
    port = int(option_values(codec, "--port")[0])
    ui_env = s["temporal-ui"]["environment"]
    assert ui_env["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{published_port(s['codec-server'], port)}"
    ui_port = published_port(s["temporal-ui"], 8080)
    assert {f"http://localhost:{ui_port}", f"http://127.0.0.1:{ui_port}"} <= set(
        option_values(codec, "--ui-origin"))
    assert option_values(codec, "--host") == ["0.0.0.0"], "reachable from outside its container"


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in services().items():
        for spec in service.get("ports", []):
            assert str(spec).startswith("127.0.0.1:"), f"{name} publishes {spec} on every interface"


def test_every_variable_is_known_to_the_settings_or_documented() -> None:
    documented = set(read_dotenv(ENV_EXAMPLE))
    fields = {f"OUTREACH_{name.upper()}" for name in Settings.model_fields}
    for name in OUTREACH_SERVICES:
        for key in services()[name]["environment"]:
            assert key in fields or key in documented, f"{name}: {key} is no setting, not in .env.example"


def test_every_interpolated_variable_is_in_env_example_and_every_entry_is_used() -> None:
    documented = set(read_dotenv(ENV_EXAMPLE))
    interpolated = interpolated_names(COMPOSE_FILE.read_text())
    assert interpolated <= documented, f"not in .env.example: {interpolated - documented}"
    fields = {f"OUTREACH_{name.upper()}" for name in Settings.model_fields}
    unused = documented - interpolated - fields - {TOKEN_ENV}
    assert not unused, f".env.example lists {unused}, which nothing reads"
    assert {"OUTREACH_SECRET_KEYS", "POSTGRES_PASSWORD", TOKEN_ENV} <= documented


def test_the_stack_does_not_come_up_on_env_example_as_it_is() -> None:
    """The required values are left for the user to fill in: no shared default password."""
    example = read_dotenv(ENV_EXAMPLE)
    assert example["POSTGRES_PASSWORD"] == "" and example["OUTREACH_SECRET_KEYS"] == ""
    with pytest.raises(ComposeError, match="POSTGRES_PASSWORD"):
        load(example)
    filled = load({**example, "POSTGRES_PASSWORD": "pw1"})["services"]
    assert filled["postgresql"]["environment"]["POSTGRES_PASSWORD"] == "pw1"
    assert filled["worker"]["environment"]["OUTREACH_DATABASE_URL"].startswith("postgresql://outreach:pw1@")


def test_secrets_are_not_written_into_the_file() -> None:
    secret_words = ("PASSWORD", "PWD", "SECRET", "TOKEN")
    for name, service in services().items():
        env = service.get("environment", {})
        for key, value in env.items():
            if any(w in key for w in secret_words):
                assert str(value).startswith("${"), f"{name}: {key} is written into the YAML"
        url = env.get("OUTREACH_DATABASE_URL", "")
        assert not url or "${POSTGRES_PASSWORD}" in url, f"{name}: a password in {url}"
    for name in OUTREACH_SERVICES:
        assert services()[name]["env_file"] == ".env", f"{name} does not read .env"


def test_every_dependency_names_a_service_and_every_build_has_a_dockerfile() -> None:
    s = services()
    for name, service in s.items():
        for dep in dependencies(service):
            assert dep in s, f"{name} depends on unknown {dep}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    start_order(s)  # no cycle


def test_prometheus_and_grafana_mount_the_monitoring_files_that_exist() -> None:
    s = services()
    assert s["worker"]["environment"]["OUTREACH_METRICS_PORT"] == "9464"
    for name in ("prometheus", "grafana"):
        mounts = [v.split(":")[0] for v in s[name]["volumes"]]
        assert mounts and all((ROOT / m).exists() for m in mounts), mounts
    prometheus_mounts = " ".join(s["prometheus"]["volumes"])
    assert "alerts.yml" in prometheus_mounts and "prometheus.yml" in prometheus_mounts
    assert (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").exists()


def test_the_unsubscribe_server_runs_after_setup_and_its_address_is_documented() -> None:
    s = services()
    words = argv(s["unsubscribe"])
    assert words[:2] == ["outreach", "unsubscribe-server"]
    assert option_values(words, "--host") == ["0.0.0.0"], "reachable from outside its container"
    published_port(s["unsubscribe"], int(option_values(words, "--port")[0]))
    assert dependencies(s["unsubscribe"])["setup"] == "service_completed_successfully"  # the schema
    documented = read_dotenv(ENV_EXAMPLE)
    assert "OUTREACH_UNSUBSCRIBE_BASE_URL" in documented
    assert documented["OUTREACH_UNSUBSCRIBE_BASE_URL"] == ""  # the operator's own address
