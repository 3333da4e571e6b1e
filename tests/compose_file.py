"""docker-compose.yml read the way `docker compose` reads it, for the tests.

Only what the stack uses: ``${VAR}`` interpolation (with ``:-``, ``-``, ``:?``
and ``?``) from a .env file, ``env_file`` plus ``environment`` (the latter
wins), ``entrypoint`` plus ``command``, ``depends_on`` in dependency order,
profiles. Anything else it meets is an error, not a guess.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class ComposeError(Exception):
    """The file says something docker compose would refuse, or that these tests do not read."""


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and comments skipped, one pair of quotes removed."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ComposeError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolated_names(text: str) -> set[str]:
    """The variables a text refers to (``$$`` is a literal dollar)."""
    return {m["braced"] or m["bare"] for m in _VARIABLE.finditer(text) if not m["escaped"]}


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        present = name in variables
        usable = present and (variables[name] != "" or not (op or "").startswith(":"))
        if op in ("?", ":?") and not usable:
            raise ComposeError(f"required variable {name} is missing a value: {arg}")
        if op in ("-", ":-") and not usable:
            return arg
        return variables.get(name, "")

    return _VARIABLE.sub(value, text)


def _interpolated(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolated(n, variables) for n in node]
    if isinstance(node, dict):
        return {k: _interpolated(v, variables) for k, v in node.items()}
    return node


def load(variables: Mapping[str, str] | None = None, path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The file's data; interpolated from ``variables`` when they are given."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data if variables is None else dict(_interpolated(data, variables))


def argv(service: Mapping[str, Any]) -> list[str]:
    """What the container runs: its entrypoint, then its command."""
    if "entrypoint" not in service:
        raise ComposeError("no entrypoint: the image's own would run, which this file cannot show")
    return [*_words(service["entrypoint"]), *_words(service.get("command", []))]


def _words(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def environment(service: Mapping[str, Any], project_dir: Path, variables: Mapping[str, str]
                ) -> dict[str, str]:
    """The container's environment: its env_file(s), then ``environment`` over them.
    ``variables`` stand in for a .env named by env_file (the test's filled-in .env.example)."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for entry in [files] if isinstance(files, str) else files:
        name = entry if isinstance(entry, str) else entry["path"]
        env.update(variables if name == ".env" else read_dotenv(project_dir / name))
    declared = service.get("environment", {})
    if isinstance(declared, list):
        declared = dict(item.split("=", 1) for item in declared)
    for key, value in declared.items():
        if value is None:
            raise ComposeError(f"{key} has no value: it would come from the shell running compose")
        env[key] = str(value)
    return env


def dependencies(service: Mapping[str, Any]) -> dict[str, str]:
    """The services it depends on, each with its condition."""
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def start_order(services: Mapping[str, Any]) -> list[str]:
    """Every service after those it depends on (file order among equals)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ComposeError(f"depends_on has a cycle through {name}")
        visiting.add(name)
        for dep in dependencies(services[name]):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in services:
        visit(name)
    return order


def one_shots(services: Mapping[str, Any]) -> set[str]:
    """Services another waits on to have exited 0."""
    return {dep for s in services.values() for dep, condition in dependencies(s).items()
            if condition == "service_completed_successfully"}


def started_by_up(service: Mapping[str, Any]) -> bool:
    """`docker compose up` leaves services of a profile alone."""
    return not service.get("profiles")


def published_port(service: Mapping[str, Any], container_port: int) -> int:
    """The host port a service publishes ``container_port`` on."""
    for spec in service.get("ports", []):
        *_, host, inside = str(spec).split(":")
        if int(inside) == container_port:
            return int(host)
    raise ComposeError(f"port {container_port} is not published")


def option_values(words: list[str], option: str) -> list[str]:
    """Each value of ``--option VALUE`` in a command."""
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == option]
