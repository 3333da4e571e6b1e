"""Recorded histories replay against the current workflow code (docs/decisions/0025).

Each file in tests/histories/ is the history of a real execution, recorded by
scripts/record_histories.py. Replaying it runs the workflow code of this
checkout over the recorded events: a change that would break an execution
running under the old code (a command added, dropped or moved, an activity
swapped for a timer) fails with a non-determinism error. Payloads are decoded
with the production converter under the histories' test-only key, so the
workflows see their real inputs, signals and activity results.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from temporalio.worker import Replayer

from config.codec import ENCODING, KEY_ID
from config.secrets import key_ring
from tests.histories import (
    HISTORIES_DIR,
    TEST_ONLY_SECRET_KEYS,
    load_history,
    registered_types,
    registered_workflows,
    replay_data_converter,
    workflow_type,
)
from workflows import campaign, campaign_step

HISTORIES = sorted(HISTORIES_DIR.rglob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: str(p.relative_to(HISTORIES_DIR)))
async def test_recorded_history_replays_against_the_current_code(path: Path) -> None:
    replayer = Replayer(workflows=registered_workflows(), data_converter=replay_data_converter())
    # Raises on a non-determinism error (or any other failed workflow task).
    result = await replayer.replay_workflow(load_history(path))
    assert result.replay_failure is None


def test_every_registered_workflow_type_has_a_recorded_history() -> None:
    recorded = {workflow_type(load_history(p)) for p in HISTORIES}
    missing = registered_types() - recorded
    assert not missing, f"no recorded history of {sorted(missing)}: see scripts/record_histories.py"


def test_a_step_workflow_history_exists_on_both_sides_of_a_continue_as_new() -> None:
    steps = [h for h in map(load_history, HISTORIES) if workflow_type(h) == "CampaignStepWorkflow"]
    continued = [h for h in steps
                 if h.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")]
    carried_over = [h for h in steps
                    if h.events[0].workflow_execution_started_event_attributes.continued_execution_run_id]
    assert continued and carried_over


def test_histories_carry_payloads_as_production_writes_them_encrypted_under_the_test_only_key() -> None:
    key_id = key_ring(TEST_ONLY_SECRET_KEYS).current_id.encode()
    for path in HISTORIES:
        started = load_history(path).events[0].workflow_execution_started_event_attributes
        assert started.input.payloads, path.name
        for payload in started.input.payloads:
            assert (payload.metadata["encoding"], payload.metadata[KEY_ID]) == (ENCODING, key_id), path.name


def _patch_ids_recorded() -> set[str]:
    """The patch ids the recorded histories' core_patch markers name."""
    ids = set()
    for path in HISTORIES:
        for event in load_history(path).events:
            marker = event.marker_recorded_event_attributes
            if event.HasField("marker_recorded_event_attributes") and marker.marker_name == "core_patch":
                ids.add(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return ids


def test_every_patch_of_the_workflow_code_is_taken_by_a_recorded_history() -> None:
    """A code path behind workflow.patched() that no history takes is not checked by
    replay: record one (scripts/record_histories.py --out tests/histories/NEW)."""
    in_code = set()
    for module in (campaign, campaign_step):
        source = Path(module.__file__ or "").read_text("utf-8")
        in_code |= {getattr(module, name) for name in re.findall(r"workflow\.patched\((\w+)\)", source)}
    missing = in_code - _patch_ids_recorded() - set(_UNREACHABLE_NOW)
    assert in_code and not missing, sorted(missing)


# Patches that code started today never asks about, so no new recording can take them.
_UNREACHABLE_NOW = {
    # Asked only when a cancel reaches a run awaiting its steps in order, which runs
    # from before reopenable-steps do; later runs get the cancel as CancelledError.
    "cancel-through-step-error": "runs from before reopenable-steps",
}
