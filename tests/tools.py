"""Command-line tools some tests need: a missing one fails the test, never skips it."""

from __future__ import annotations

import shutil

import pytest


def required_tool(name: str, package: str) -> str:
    """The path of ``name``; fails the test when it is missing (scripts/setup.sh installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/setup.sh installs it (Debian package {package!r})",
                    pytrace=False)
    return path
