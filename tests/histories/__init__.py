"""Recorded workflow histories, replayed by tests/workflow/test_replay.py (docs/decisions/0025).

``scripts/record_histories.py`` records them from real runs. Their payloads are
encrypted as production encrypts them, under the key below.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter, DefaultFailureConverter
from temporalio.workflow import _Definition

from config.converter import data_converter
from config.settings import Settings
from workers.registry import WORKFLOWS, maintenance_workflows

HISTORIES_DIR = Path(__file__).parent

# TEST-ONLY KEY. It encrypts the payloads of the recorded histories in this
# folder and nothing else: it is public (committed), so it must never appear
# in any OUTREACH_SECRET_KEYS of a deployment. The recorder uses it so the
# replay tests can decode the workflows' inputs, as a worker would.
TEST_ONLY_SECRET_KEYS = "replay-test-only:o6L2+vHLpf0iFy7Vnokt76L7zAKOTJ7bwT+j/TlohkU="


def history_settings(**overrides: Any) -> Settings:
    """Settings under the test-only key (whatever OUTREACH_SECRET_KEYS holds)."""
    return Settings(secret_keys=TEST_ONLY_SECRET_KEYS, **overrides)


def replay_data_converter() -> DataConverter:
    """The production data converter under the test-only key, with one change: the
    replayer's own failure reports (a workflow task that raised) keep their message
    in the clear, so a failed replay says why. Failures in the histories are read
    the same either way."""
    return dataclasses.replace(
        data_converter(history_settings()), failure_converter_class=DefaultFailureConverter
    )


def registered_workflows() -> list[type]:
    """Every workflow a worker runs: the send worker's and the maintenance worker's."""
    return [*WORKFLOWS, *maintenance_workflows()]


def registered_types() -> set[str]:
    """The names Temporal knows them by (the class name unless defn(name=...) says otherwise)."""
    names = (_Definition.must_from_class(cls).name for cls in registered_workflows())
    return {name or "<dynamic>" for name in names}


def load_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name
