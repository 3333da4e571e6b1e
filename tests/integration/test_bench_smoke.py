"""The benchmarks at tiny sizes: each scenario runs end to end on its own stack and
writes JSON with every figure, and the counts in it add up. Nothing about speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import capacity, precision, scale
from bench.__main__ import main

pytestmark = pytest.mark.e2e


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _has_every_figure(doc: dict[str, Any], figures: list[Any]) -> None:
    keys = {f.key for f in figures}
    assert set(doc["figures"]) == keys
    assert set(doc["median"]) == keys
    assert all(set(run) == keys for run in doc["runs"])
    assert doc["machine"]["cpus"] >= 1 and doc["command"].startswith("python -m bench ")


async def test_capacity_delivers_every_prospect_once_and_accounts_for_its_cost(tmp_path: Path) -> None:
    out = tmp_path / "capacity.json"
    await main(["capacity", "--runs", "1", "--prospects", "50", "--mailboxes", "5", "--json", str(out)])

    doc = _load(out)
    _has_every_figure(doc, capacity.FIGURES)
    run, details = doc["runs"][0], doc["details"][0]
    assert run["delivered"] == 50 and run["duplicates"] == 0
    # Per-email figures are the run's totals over the emails delivered.
    assert run["actions_per_email"] * 50 == pytest.approx(sum(details["actions"].values()))
    assert run["events_per_email"] * 50 == pytest.approx(details["history_events"])
    assert run["redis_per_email"] * 50 == pytest.approx(sum(details["redis_commands"].values()))
    assert run["redis_scripts_per_email"] <= run["redis_per_email"]
    # Every send is a send activity after a gate run as a local activity (Temporal counts the
    # local activities of one workflow task as one action); campaign and step are workflows.
    assert details["actions"]["activity_scheduled"] >= 50
    assert 1 <= details["actions"]["local_activities"] <= 50
    assert details["workflow_runs"] >= 2
    assert details["postgres"]["transactions"] > 0 and details["postgres"]["rows_written"] > 0
    assert set(details["cpu_seconds"]) == {"worker0", "temporal", "redis", "bench"}
    assert run["due_p50"] <= run["due_p99"] and run["claimed_p50"] <= run["claimed_p99"]
    assert run["bare_sends_per_minute"] > 0 and run["ceiling_ratio"] > 0


async def test_precision_stops_each_capped_mailbox_at_its_cap(tmp_path: Path) -> None:
    out = tmp_path / "precision.json"
    # A connection per mailbox: no mailbox has to close another's connection to send.
    await main(["precision", "--runs", "1", "--prospects", "12", "--mailboxes", "2", "--per-minute", "60",
                "--connections", "2", "--caps", "3", "--grace", "3", "--json", str(out)])

    doc = _load(out)
    _has_every_figure(doc, precision.FIGURES)
    run, details = doc["runs"][0], doc["details"][0]
    # Mailbox 0 has 6 prospects and a cap of 3; mailbox 1 sends all of its 6.
    assert details["expected"] == 9
    assert sorted(details["sent_by_mailbox"].values()) == [3, 6]
    assert run["delivered"] == sum(details["sent_by_mailbox"].values()) == 9
    assert run["cap_ratio"] == 1.0 and run["cap_violations"] == 0
    assert run["rate_violations"] == 0 and run["connection_violations"] == 0
    assert 1 <= details["peak_connections"] <= 2


async def test_scale_sends_the_same_work_at_each_size_and_reports_a_column_per_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    await main(["scale", "--runs", "1", "--sizes", "300,600", "--emails", "40", "--mailboxes", "4",
                "--json", str(out)])

    doc = _load(out)
    assert set(doc["figures"]) == {f.key for f in scale.FIGURES}
    assert [d["prospects"] for d in doc["details"]] == [300, 600]
    for run, details in zip(doc["runs"], doc["details"], strict=True):
        # 20 new prospects (step 1) and 20 follow-ups due (step 2): without the
        # follow-ups the run would never reach 40. Each once.
        assert run["delivered"] == 40 and run["duplicates"] == 0
        assert details["postgres"]["transactions"] > 0
        assert run["pg_xacts_per_email"] * 40 == pytest.approx(details["postgres"]["transactions"])
