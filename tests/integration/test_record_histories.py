"""scripts/record_histories.py still records, and what it records replays (docs/decisions/0025).

The committed histories are re-recorded rarely; the script must work the day a
workflow changes on purpose, so CI runs it: into a temporary folder, with its
own dev server, database and Redis prefix, and then replays every history it
wrote against the current code.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from temporalio.worker import Replayer

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.histories import (
    load_history,
    registered_types,
    registered_workflows,
    replay_data_converter,
    workflow_type,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_the_recorder_writes_a_history_of_every_workflow_type_and_each_replays(tmp_path: Path) -> None:
    out = tmp_path / "histories"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "record_histories.py"), "--out", str(out),
        "--pg-admin-url", PG_ADMIN_URL, "--redis-url", REDIS_URL,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, output.decode(errors="replace")[-4000:]

    recorded = sorted(out.glob("*.json"))
    assert {workflow_type(load_history(p)) for p in recorded} == registered_types()
    replayer = Replayer(workflows=registered_workflows(), data_converter=replay_data_converter())
    for path in recorded:
        result = await replayer.replay_workflow(load_history(path))
        assert result.replay_failure is None, path.name
