"""docker-compose.yml describes the production-like stack the README promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_has_every_part_of_the_stack() -> None:
    services = compose()["services"]
    assert {"postgresql", "redis", "temporal", "temporal-ui", "migrate", "worker"} <= set(services)


def test_temporal_persists_to_postgresql() -> None:
    temporal = compose()["services"]["temporal"]
    assert temporal["environment"]["DB"].startswith("postgres")
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"


def test_workers_are_configured_by_outreach_variables_and_scaled() -> None:
    worker = compose()["services"]["worker"]
    env = worker["environment"]
    for name in ("OUTREACH_TEMPORAL_ADDRESS", "OUTREACH_DATABASE_URL", "OUTREACH_REDIS_URL",
                 "OUTREACH_TASK_QUEUE"):
        assert name in env
    assert worker["deploy"]["replicas"] >= 2
    assert worker["command"] == ["outreach", "worker"]


def test_every_dependency_names_a_service_and_every_build_has_a_dockerfile() -> None:
    services = compose()["services"]
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for dep in depends:
            assert dep in services, f"{name} depends on unknown {dep}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()


def test_prometheus_and_grafana_mount_the_monitoring_files_that_exist() -> None:
    services = compose()["services"]
    assert services["worker"]["environment"]["OUTREACH_METRICS_PORT"] == "9464"
    for name in ("prometheus", "grafana"):
        mounts = [v.split(":")[0] for v in services[name]["volumes"]]
        assert mounts and all((ROOT / m).exists() for m in mounts), mounts
    prometheus_mounts = " ".join(services["prometheus"]["volumes"])
    assert "alerts.yml" in prometheus_mounts and "prometheus.yml" in prometheus_mounts
    assert (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").exists()
