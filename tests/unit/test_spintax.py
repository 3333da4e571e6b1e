"""Spintax parsing (variants/spintax.py): groups, nesting, escapes, Jinja left alone,
and bad input named by line and column."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from variants.spintax import SpintaxError, combinations, escape, every_text, parse


def texts(text: str) -> list[str]:
    return list(every_text(parse(text)))


def test_groups_multiply_and_jinja_is_copied_as_is() -> None:
    assert texts("{How|Why} {{ company }} {cut|halved}") == [
        "How {{ company }} cut", "How {{ company }} halved",
        "Why {{ company }} cut", "Why {{ company }} halved"]


def test_nested_groups_count_each_inner_alternative() -> None:
    assert texts("{a|{b|c}} d") == ["a d", "b d", "c d"]
    assert combinations(parse("{a|{b|c}} {x|y}")) == 6


def test_escapes_write_the_characters() -> None:
    assert texts(r"\{a|b\} costs \| nothing") == ["{a|b} costs | nothing"]


def test_braces_without_a_bar_stay_text_as_before_spintax() -> None:
    assert texts('payload {"a": 1} and {x}') == ['payload {"a": 1} and {x}']
    assert texts("a | b") == ["a | b"]


def test_jinja_blocks_and_comments_are_not_spintax() -> None:
    assert texts("{% if x %}{a|b}{% endif %}{# {c|d} #}") == [
        "{% if x %}a{% endif %}{# {c|d} #}", "{% if x %}b{% endif %}{# {c|d} #}"]


@pytest.mark.parametrize(("text", "message", "line", "column"), [
    ("{a|b", "'{' is never closed", 1, 1),
    ("ok\n  {a|b", "'{' is never closed", 2, 3),
    ("a}", "'}' closes no '{'", 1, 2),
    ("{a||b}", "empty alternative", 1, 4),
    ("{|a}", "empty alternative", 1, 2),
    ("{a| }", "empty alternative", 1, 4),
])
def test_bad_spintax_is_named_by_line_and_column(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(SpintaxError) as err:
        parse(text)
    assert message in str(err.value)
    assert (err.value.line, err.value.column) == (line, column)


@given(st.lists(st.lists(st.text("abc ", min_size=1, max_size=3).filter(str.strip), min_size=2, max_size=3),
                min_size=1, max_size=3))
def test_every_text_has_as_many_texts_as_combinations_counts(groups: list[list[str]]) -> None:
    text = " ".join("{" + "|".join(g) + "}" for g in groups)
    assert len(texts(text)) == combinations(parse(text))


def test_a_brace_right_before_jinja_opens_a_group() -> None:
    assert texts("{{{ first_name }}|there}") == ["{{ first_name }}", "there"]
    assert texts("{{ x }}") == ["{{ x }}"]


@given(st.text("ab{}|\\% #x", max_size=30))
def test_escaped_text_resolves_to_itself(text: str) -> None:
    assert texts(escape(text)) == [text]
