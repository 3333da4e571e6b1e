"""The alert rules and the Grafana dashboard read only metrics the workers export.

Parsed here on every run; `promtool check rules` (scripts/test.sh, where
promtool is installed) checks the PromQL itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from telemetry.exporter import SDK_METRICS, WORKFLOW_METRICS
from telemetry.metrics import exported_names

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
_METRIC = re.compile(r"\b((?:outreach|temporal)_[a-z0-9_]+)")


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "outreach.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def metrics_in(exprs: list[str]) -> set[str]:
    return {m for expr in exprs for m in _METRIC.findall(expr)}


def test_the_reference_alerts_are_all_defined_with_their_thresholds() -> None:
    by_name = {r["alert"]: r for r in rules()}
    backlog, errors = by_name["OutreachBacklogHigh"], by_name["OutreachErrorRateHigh"]
    assert backlog["for"] == "10m" and "> 10000" in backlog["expr"]
    assert errors["for"] == "5m" and "> 0.05" in errors["expr"]
    assert "0.5 *" in by_name["OutreachThroughputDropped"]["expr"]
    assert "histogram_quantile(0.99" in by_name["OutreachSmtpLatencyHigh"]["expr"]
    assert "> 30" in by_name["OutreachSmtpLatencyHigh"]["expr"]
    assert 'outcome="unknown"' in by_name["OutreachUnknownSend"]["expr"]
    assert by_name["OutreachCircuitOpen"]["for"] == "15m"
    for rule in by_name.values():
        assert rule["annotations"]["summary"] and rule["labels"]["severity"] in {"warning", "critical"}


def test_every_metric_in_the_rules_is_one_the_code_exports() -> None:
    used = metrics_in([r["expr"] for r in rules()])
    exported = exported_names() | WORKFLOW_METRICS
    assert used and used <= exported, used - exported


def test_every_metric_on_the_dashboard_is_exported_by_the_code_or_the_temporal_sdk() -> None:
    used = metrics_in(dashboard_exprs())
    ours = {m for m in used if m.startswith("outreach_")}
    assert ours <= exported_names(), ours - exported_names()
    assert used - ours <= SDK_METRICS, used - ours - SDK_METRICS


def test_the_dashboard_shows_every_metric_we_export() -> None:
    shown = metrics_in(dashboard_exprs())
    families = {"outreach_sends_total", "outreach_smtp_duration_seconds_bucket", "outreach_gate_waits_total",
                "outreach_circuit_open", "outreach_mailboxes_paused", "outreach_sends_in_flight",
                "outreach_backlog_sends", "outreach_unknown_sends", "outreach_reply_intents_total",
                "outreach_postponements_total"}
    assert families <= shown, families - shown


def test_prometheus_loads_the_rules_file_next_to_it() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (MONITORING / rule_file).exists()
    ports = {sd["port"] for job in config["scrape_configs"] for sd in job["dns_sd_configs"]}
    assert ports == {9464, 9465}



def test_the_bounce_guard_and_sender_dns_alerts_read_metrics_the_code_exports() -> None:
    by_name = {r["alert"]: r for r in rules()}
    guard, dns = by_name["OutreachMailboxBounceRate"], by_name["OutreachSenderDnsProblem"]
    assert metrics_in([guard["expr"]]) == {"outreach_bounce_guard_pauses_total"}
    assert metrics_in([dns["expr"]]) == {"outreach_sender_dns_problems"}
    assert {"outreach_bounce_guard_pauses_total", "outreach_sender_dns_problems"} <= exported_names()
