"""The running code's version, so an operator can tell which code each worker runs
during a rollout (`outreach --version`, the worker's start line, `outreach_build_info`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def outreach_version() -> str:
    """The installed distribution's version; a bare source tree that was never
    installed says so rather than guessing."""
    try:
        return version("outreach")
    except PackageNotFoundError:
        return "0+unknown"
