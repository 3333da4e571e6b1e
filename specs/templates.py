"""Subject and body templates: Jinja2, sandboxed, and strict about missing fields.

Templates come from operators, not from code, so they run in the sandbox; a
field a template names but a prospect lacks is an error, never an empty string
in a sent email. On top of Jinja's sandbox (no attribute starting with "_", no
unsafe methods), a template that even names a dunder (``''.__class__``) is
refused when it is read, and no template can build or render more than
``MAX_OUTPUT_CHARS``: ``'x' * 10**9`` and ``'x'|center(10**8)`` are errors, refused
before the string is built (specs/template_bounds.py), not a gigabyte.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes

from specs import BadTemplate
from specs.template_bounds import MAX_OUTPUT_CHARS, BoundedSandbox, cpu_budget

__all__ = ["MAX_OUTPUT_CHARS", "render", "required_fields"]

_ENV = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=512)
def _compiled(template_text: str) -> jinja2.Template:
    # Compiling costs about a millisecond; sends reuse a handful of templates.
    _parsed(template_text)
    try:
        return _ENV.from_string(template_text)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter, found when compiling
        raise BadTemplate(f"template error on its line {exc.lineno}: {exc.message}") from exc


def render(template_text: str, fields: Mapping[str, Any]) -> str:
    try:
        with cpu_budget():
            return _bounded(_compiled(template_text).generate(fields))
    except BadTemplate:
        raise
    except jinja2.TemplateError as exc:
        raise BadTemplate(f"cannot render: {exc.message}") from exc
    except Exception as exc:
        # An expression in the template can raise anything (1/0, "a" + 1).
        raise BadTemplate(f"cannot render: {type(exc).__name__}: {exc}") from exc


def _bounded(chunks: Any) -> str:
    out, size = [], 0
    for chunk in chunks:  # a loop can emit a little many times: stop at the bound
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise BadTemplate(f"cannot render: the result is over {MAX_OUTPUT_CHARS} characters")
        out.append(chunk)
    return "".join(out)


def required_fields(template_text: str) -> set[str]:
    """The fields a template reads from its context (Jinja's own globals excluded)."""
    return meta.find_undeclared_variables(_parsed(template_text)) - set(_ENV.globals)


def _parsed(template_text: str) -> nodes.Template:
    try:
        ast = _ENV.parse(template_text)
    except jinja2.TemplateSyntaxError as exc:
        raise BadTemplate(f"template error on its line {exc.lineno}: {exc.message}") from exc
    _refuse_internals(ast)
    return ast


def _refuse_internals(ast: nodes.Template) -> None:
    """A dunder in a template is an attempt on Python's internals, never a field:
    refuse it at import, with its line, before the sandbox has to."""
    named = [(n.attr, n.lineno) for n in ast.find_all(nodes.Getattr)]
    named += [(n.value, n.lineno) for n in ast.find_all(nodes.Const)]  # x['__class__'], |attr
    for name, line in sorted(named, key=lambda found: found[1]):
        if isinstance(name, str) and name.startswith("__"):
            raise BadTemplate(
                f"template error on its line {line}: {name!r} is not allowed"
                " (templates may not reach Python internals)"
            )
