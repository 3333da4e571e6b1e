"""Subject and body templates: Jinja2, sandboxed, and strict about missing fields.

Templates come from operators, not from code, so they run in the sandbox; a
field a template names but a prospect lacks is an error, never an empty string
in a sent email.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from specs import BadTemplate

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=512)
def _compiled(template_text: str) -> jinja2.Template:
    # Compiling costs about a millisecond; sends reuse a handful of templates.
    try:
        return _ENV.from_string(template_text)
    except jinja2.TemplateSyntaxError as exc:
        raise BadTemplate(f"template error on its line {exc.lineno}: {exc.message}") from exc


def render(template_text: str, fields: Mapping[str, Any]) -> str:
    try:
        return _compiled(template_text).render(fields)
    except BadTemplate:
        raise
    except jinja2.TemplateError as exc:
        raise BadTemplate(f"cannot render: {exc.message}") from exc
    except Exception as exc:
        # An expression in the template can raise anything (1/0, "a" + 1).
        raise BadTemplate(f"cannot render: {type(exc).__name__}: {exc}") from exc


def required_fields(template_text: str) -> set[str]:
    """The fields a template reads from its context (Jinja's own globals excluded)."""
    try:
        ast = _ENV.parse(template_text)
    except jinja2.TemplateSyntaxError as exc:
        raise BadTemplate(f"template error on its line {exc.lineno}: {exc.message}") from exc
    return meta.find_undeclared_variables(ast) - set(_ENV.globals)
