"""Layers point down: activities never import workflows, limits never import mail, and
the memory limit store stands beside the Redis one, not on it (issue 11).

Read from the source (every import statement, also inside functions and
``TYPE_CHECKING`` blocks), so a forbidden import fails here before it can
make a cycle or tie a lower layer to an upper one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(source: Path) -> set[str]:
    """Every module ``source`` imports, and for ``from m import x`` also ``m.x``
    (x may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text("utf-8"), str(source))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{source}: relative import; the project imports absolutely"
            module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def crossings(package: str, forbidden: str) -> list[str]:
    """``module -> import`` for each import of ``forbidden`` (or below it) in ``package``."""
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    return [
        f"{path.relative_to(ROOT)} -> {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if name == forbidden or name.startswith(f"{forbidden}.")
    ]


@pytest.mark.parametrize(("package", "forbidden"), [
    ("activities", "workflows"), ("limits", "mail"),
    # The inbox reader sits beside mail/ and above store/: activities and the CLI use
    # it, it uses neither, and nothing below it reaches up into it.
    ("inbox", "workflows"), ("inbox", "activities"), ("inbox", "client"),
    ("store", "inbox"), ("mail", "inbox"), ("limits", "inbox"),
])
def test_lower_layer_does_not_import_upper(package: str, forbidden: str) -> None:
    assert crossings(package, forbidden) == []


def test_variants_import_nothing_of_the_project_but_themselves() -> None:
    # specs and store choose and check variants with it (docs/decisions/0052): it sits below both.
    packages = ("config", "specs", "store", "mail", "limits", "activities", "workflows", "client",
                "telemetry", "inbox", "workers")
    assert [c for p in packages for c in crossings("variants", p)] == []


def test_memory_store_does_not_import_redis_store() -> None:
    names = imported_modules(ROOT / "limits" / "memory_store.py")
    assert not {n for n in names if n == "limits.redis_store" or n.startswith("limits.redis_store.")}


def test_rule_sees_the_imports_it_forbids(tmp_path: Path) -> None:
    # The check itself: each way of writing an import is seen.
    module = tmp_path / "probe.py"
    module.write_text(
        "import workflows.mailbox\n"
        "from workflows import models\n"
        "def f() -> None:\n"
        "    from limits.redis_store import ms\n",
        "utf-8",
    )
    assert {"workflows.mailbox", "workflows.models", "limits.redis_store.ms"} <= imported_modules(module)
