"""Benchmark output: one markdown table per scenario (a row per figure, a column per
run, then the median), and the same as JSON with the machine and the command."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    digits: int = 1


def medians(figures: list[Figure], runs: list[dict[str, float]]) -> dict[str, float]:
    return {f.key: statistics.median(r[f.key] for r in runs) for f in figures}


def table(figures: list[Figure], runs: list[dict[str, float]]) -> str:
    middle = medians(figures, runs)
    head = ["figure", *(f"run {i}" for i in range(1, len(runs) + 1)), "median"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        cells = [f"{r[f.key]:,.{f.digits}f}" for r in runs] + [f"**{middle[f.key]:,.{f.digits}f}**"]
        lines.append(f"| {f.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _version(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine() -> dict[str, Any]:
    model, memory = "?", 0.0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 1024 / 1024
    bin_dir = Path(sys.executable).parent
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(memory, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "temporal": _version([str(bin_dir / "temporal"), "--version"]),
        "redis": _version(["redis-server", "--version"]),
        "postgres": _version(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"]),
    }


def command_line(argv: list[str] | None = None) -> str:
    return "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)


def write_json(
    path: str | Path, scenario: str, params: dict[str, Any], figures: list[Figure],
    runs: list[dict[str, float]], details: list[dict[str, Any]], argv: list[str] | None = None,
) -> None:
    """`runs` are the figures of each run; `details` anything else worth keeping per run."""
    doc = {
        "scenario": scenario,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "machine": machine(),
        "params": params,
        "figures": {f.key: f.label for f in figures},
        "median": medians(figures, runs),
        "runs": runs,
        "details": details,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, indent=2) + "\n")
