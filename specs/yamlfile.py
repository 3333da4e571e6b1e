"""Reading the operator's YAML files, keeping line numbers for the messages.

The file is composed into nodes first, so a validation error at
``steps[2].delay`` can name the line it came from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from specs import Problem, SpecError
from specs.bounds import InputBounds, file_too_big


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads an unquoted ``10:00`` as the number 600 (base 60); window
    times must stay text, so integers and floats are decimal only here."""


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def read_yaml(
    path: Path, source: str, bounds: InputBounds | None = None
) -> tuple[Any, yaml.Node | None]:
    """The document in ``path`` and its root node; SpecError naming the line if unreadable."""
    too_big = file_too_big(path, bounds or InputBounds.from_settings())
    if too_big is not None:
        raise SpecError([Problem(source, "", f"the file {too_big}")])
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(source, "", f"cannot read the file ({exc})")]) from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        repeated = [Problem(source, f"line {line}", message) for line, message in _repeated_keys(node)]
        if repeated:
            raise SpecError(repeated)
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise SpecError([Problem(source, where, f"not valid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([Problem(source, "", f"not valid YAML: {exc}")]) from exc
    finally:
        loader.dispose()


def _repeated_keys(root: yaml.Node | None) -> list[tuple[int, str]]:
    # PyYAML keeps the last of two equal keys; a second "delay:" must not
    # silently replace the first.
    found: list[tuple[int, str]] = []
    todo = [root]
    seen_nodes: set[int] = set()
    while todo:
        node = todo.pop()
        # An alias (*name) is the same node again: walking it once keeps a
        # "billion laughs" file of nested aliases from taking forever.
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        found.append((key.start_mark.line + 1, f"key {key.value!r} appears twice"))
                    seen.add(key.value)
                todo.append(value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    return sorted(found)


def child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    """The node under ``key`` (a mapping key or a 0-based list position), if any."""
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        item: yaml.Node = node.value[key]
        return item
    return None


def line_of(node: yaml.Node | None, path: Sequence[str | int]) -> int | None:
    """The line of the deepest node along ``path`` that exists (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        node = child(node, key)
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def describe(path: Sequence[str | int]) -> str:
    """``("steps", 1, "delay")`` as ``steps[2].delay``: positions count from 1."""
    text = ""
    for key in path:
        text += f"[{key + 1}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def validation_problems(
    source: str, exc: ValidationError, node: yaml.Node | None, prefix: Sequence[str | int] = ()
) -> list[Problem]:
    """One Problem per pydantic error, located by path and YAML line. ``node`` is
    the node of the validated object; ``prefix`` is its path, for display only."""
    problems = []
    for err in exc.errors():
        path = [k for k in err["loc"] if isinstance(k, str | int)]
        where = describe([*prefix, *path])
        line = line_of(node, path)
        if line is not None:
            where = f"{where} (line {line})" if where else f"line {line}"
        problems.append(Problem(source, where, _message(err)))
    return problems


def _message(err: Any) -> str:
    if err["type"] == "value_error":
        return str(err["ctx"]["error"])
    if err["type"] == "missing":
        return "is required"
    if err["type"] == "extra_forbidden":
        return "is not a known field"
    return str(err["msg"])
