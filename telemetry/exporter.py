"""The two Prometheus endpoints of a worker.

Ours (prometheus_client) on ``metrics_port``; the Temporal SDK's own (its Rust
core's telemetry, which cannot share a registry with ours) on
``metrics_port + 1``. Port 0 turns both off. A port already taken (a second
worker on one host) costs that worker its metrics, not its work: it logs a
warning and runs on.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import Info, start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from config.names import STEP_STALLS_METRIC
from config.settings import Settings
from config.version import outreach_version

log = structlog.get_logger(__name__)

# The SDK's series the dashboard reads (checked against a live scrape in the tests).
SDK_METRICS = frozenset({"temporal_worker_task_slots_used", "temporal_request_latency_bucket"})
# Ours, counted inside workflows through Temporal's metric meter, hence served
# on the SDK's endpoint (counters there carry no `_total` suffix).
WORKFLOW_METRICS = frozenset({STEP_STALLS_METRIC})


# Which code this worker runs (a rollout shows two values side by side).
BUILD_INFO = Info("outreach_build", "The outreach version this worker runs.")


def sdk_metrics_port(settings: Settings) -> int:
    return settings.metrics_port + 1 if settings.metrics_port else 0


def start_metrics_endpoint(settings: Settings) -> WSGIServer | None:
    """Serve our metrics (a daemon thread) on ``metrics_host:metrics_port``, if enabled;
    the caller shuts the returned server down."""
    if not settings.metrics_port:
        return None
    BUILD_INFO.info({"version": outreach_version()})
    try:
        server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except OSError as exc:
        log.warning("metrics_endpoint_not_started", port=settings.metrics_port, error=str(exc))
        return None
    return server


def temporal_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics, or None (the default runtime)."""
    port = sdk_metrics_port(settings)
    if not port:
        return None
    telemetry = TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{settings.metrics_host}:{port}"))
    try:
        return Runtime(telemetry=telemetry)
    except ValueError as exc:  # the SDK reports a taken port this way
        log.warning("sdk_metrics_endpoint_not_started", port=port, error=str(exc))
        return None
