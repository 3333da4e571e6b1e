import pytest

from specs import BadTemplate
from specs.templates import render, required_fields


def test_render_fills_fields() -> None:
    assert render("Hi {{ first_name }} at {{ company }}", {"first_name": "Ada", "company": "Acme"}) == (
        "Hi Ada at Acme"
    )


def test_render_does_not_escape_html() -> None:
    assert render("{{ x }}", {"x": "<b>&"}) == "<b>&"


def test_render_refuses_a_missing_field() -> None:
    with pytest.raises(BadTemplate, match="'company' is undefined"):
        render("{{ company }}", {})


def test_render_runs_in_the_sandbox() -> None:
    with pytest.raises(BadTemplate):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_render_reports_errors_raised_by_expressions() -> None:
    with pytest.raises(BadTemplate, match="ZeroDivisionError"):
        render("{{ 1 / n }}", {"n": 0})


def test_syntax_error_names_the_template_line() -> None:
    with pytest.raises(BadTemplate, match="template error on its line 2"):
        required_fields("fine\n{{ broken ")


def test_required_fields_lists_variables_but_not_jinja_globals() -> None:
    text = "{% for i in range(2) %}{{ a }}{% endfor %}{% if b %}{{ c | upper }}{% endif %}"
    assert required_fields(text) == {"a", "b", "c"}


def test_bad_template_is_a_value_error() -> None:
    assert issubclass(BadTemplate, ValueError)
