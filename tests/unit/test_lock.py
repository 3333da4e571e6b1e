"""requirements.lock (what the image installs, hash-checked) agrees with pyproject.toml.

Every runtime dependency of pyproject is pinned in the lock at a version its specifier
admits, and the lock pins nothing at the top level that pyproject no longer asks for.
`bash scripts/lock.sh` regenerates the lock (docs/decisions/0023).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "outreach (pyproject.toml)"  # how pip-compile names pyproject in a `# via` line
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


@dataclass
class Pin:
    version: str
    hashes: int = 0
    via: set[str] = field(default_factory=set)


def read_lock(text: str) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in text.splitlines():
        stripped = line.strip()
        if match := _PIN.match(line):
            current = pins[canonicalize_name(match[1])] = Pin(match[2])
            in_via = False
        elif current is not None and stripped.startswith("--hash="):
            current.hashes += 1
        elif current is not None and stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            if rest:
                current.via.add(rest)
            in_via = not rest
        elif current is not None and in_via and stripped.startswith("#   "):
            current.via.add(stripped.removeprefix("#").strip())
        elif stripped and not stripped.startswith("#"):
            raise AssertionError(f"requirements.lock: a line this test does not understand: {line!r}")
    return pins


def disagreements(dependencies: list[str], pins: dict[str, Pin]) -> list[str]:
    """What makes the lock wrong for these pyproject dependencies (empty: they agree)."""
    problems = []
    wanted = set()
    for text in dependencies:
        req = Requirement(text)
        wanted.add(canonicalize_name(req.name))
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req}: not pinned in the lock")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req}: the lock pins {pin.version}")
    for locked, pin in pins.items():
        if PROJECT in pin.via and locked not in wanted:
            problems.append(f"{locked}=={pin.version}: pinned for pyproject, which no longer asks for it")
        if pin.hashes == 0:
            problems.append(f"{locked}=={pin.version}: no hash")
    return problems


def project_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        deps: list[str] = tomllib.load(f)["project"]["dependencies"]
    return deps


def lock_pins() -> dict[str, Pin]:
    return read_lock((ROOT / "requirements.lock").read_text("utf-8"))


def test_lock_pins_what_pyproject_asks_for() -> None:
    assert disagreements(project_dependencies(), lock_pins()) == [], "run: bash scripts/lock.sh"


def test_lock_pins_only_with_hashes_and_every_pin_has_its_reason() -> None:
    pins = lock_pins()
    assert len(pins) > len(project_dependencies())  # the transitive ones are pinned too
    assert all(pin.hashes and pin.via for pin in pins.values())


# The check itself, on pyprojects that no longer match the real lock.

def test_a_raised_lower_bound_the_pin_misses_is_a_disagreement() -> None:
    pinned = lock_pins()["redis"].version
    deps = [d if Requirement(d).name != "redis" else f"redis>{pinned}" for d in project_dependencies()]
    assert disagreements(deps, lock_pins()) == [f"redis>{pinned}: the lock pins {pinned}"]


def test_a_new_dependency_missing_from_the_lock_is_a_disagreement() -> None:
    deps = [*project_dependencies(), "httpx>=0.27"]
    assert disagreements(deps, lock_pins()) == ["httpx>=0.27: not pinned in the lock"]


def test_a_dropped_dependency_still_pinned_for_pyproject_is_a_disagreement() -> None:
    pins = lock_pins()
    deps = [d for d in project_dependencies() if Requirement(d).name != "click"]
    assert disagreements(deps, pins) == [f"click=={pins['click'].version}: pinned for pyproject,"
                                         " which no longer asks for it"]
