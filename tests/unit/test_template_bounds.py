"""A template cannot build a huge value, not even for a moment: operations that multiply
their input are refused from their arguments, before the result exists
(specs/template_bounds.py, docs/decisions/0047)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from specs import BadTemplate
from specs.templates import render, required_fields

PEAK_BYTES = 50 * 2**20

# Each builds at least 10**8 characters (or items) if nothing stops it before it runs.
HUGE = {
    "center filter": "{{ 'x'|center(10**8) }}",
    "center method": "{{ 'x'.center(10**8) }}",
    "ljust": "{{ 'x'.ljust(10**8) }}",
    "rjust": "{{ 'x'.rjust(10**8, '*') }}",
    "zfill": "{{ '1'.zfill(10**8) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(10**6) }}",
    "format filter width": "{{ '%100000000s'|format('x') }}",
    "% width": "{{ '%100000000s' % 'x' }}",
    "% precision": "{{ '%.100000000f' % 1.5 }}",
    "% width from the values": "{{ '%*s' % (10**8, 'x') }}",
    "% repeated fields": "{{ '%(a)s' * 100000 % {'a': 'x' * 1000} }}",
    "str.format width": "{{ '{:>100000000}'.format('x') }}",
    "str.format nested width": "{{ '{0:{1}}'.format('x', 10**8) }}",
    "str.format repeated fields": "{{ ('{0}' * 300000).format('x' * 1000) }}",
    "format_map": "{{ '{a:^100000000}'.format_map({'a': 'x'}) }}",
    "* on strings": "{{ 'x' * 10**8 }}",
    "* on lists": "{{ ['x' * 1000] * 10**5 }}",
    # 10**2000 passes the '**' bound; squaring it 12 times makes a number of 27 million bits.
    "* on numbers": "{% set ns = namespace(n=10**2000) %}{% for i in range(12) %}{% set ns.n = ns.n * ns.n %}"
                    "{% endfor %}",
    "+ doubling": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                  "{% endfor %}",
    "~ doubling": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                  "{% endfor %}",
    "~ of many": "{% set s = 'x' * 1000000 %}{{ (s ~ s ~ s ~ s)|length }}",
    "replace filter": "{{ ('x' * 1000)|replace('x', 'y' * 100000) }}",
    "replace of nothing": "{{ ('x' * 1000)|replace('', 'y' * 100000) }}",
    "replace method": "{{ ('x' * 1000).replace('x', 'y' * 100000) }}",
    "translate": "{{ ('x' * 1000).translate({120: 'y' * 100000}) }}",
    "join filter": "{{ (['x' * 1000] * 1000)|join(',') }}",
    "join separator": "{{ ('x' * 1000)|join('y' * 100000) }}",
    "join method": "{{ ('y' * 100000).join(['x'] * 1000) }}",
    "indent": "{{ ('a\n' * 1000)|indent(100000) }}",
    "wordwrap": "{{ ('a ' * 1000)|wordwrap(1, true, 'y' * 100000) }}",
    "batch fill": "{{ [1]|batch(10**8, 'x')|list|length }}",
    "slice": "{{ []|slice(10**8)|list|length }}",
    "lipsum": "{{ lipsum(10**6) }}",
    "a list shown whole": "{% set s = 'x' * 1000000 %}{{ ([s] * 1000)|string|length }}",
    "a macro's output": "{% set s = 'x' * 1000000 %}{% macro m() %}{% for i in range(1000) %}{{ s }}"
                        "{% endfor %}{% endmacro %}{{ m()|length }}",
    "a set block": "{% set s = 'x' * 1000000 %}{% set b %}{% for i in range(1000) %}{{ s }}{% endfor %}"
                   "{% endset %}{{ b|length }}",
    "a filter block": "{% filter center(10**8) %}x{% endfilter %}",
    "map through center": "{{ ['x']|map('center', 10**8)|list }}",
    "output of a loop": "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
}


def test_center_of_a_hundred_million_is_refused_quickly_and_small() -> None:
    # The case of the issue: Jinja's sandbox built the whole string (peaking near 500 MB)
    # and only the output's size check saw it.
    tracemalloc.start()
    try:
        with pytest.raises(BadTemplate, match="center filter would build more than 1000000"):
            render("{{ 'x'|center(10**8) }}", {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"peak {peak / 2**20:.0f} MiB"


RUNAWAY = {
    "a loop of loops that prints nothing": "{% for i in range(100000) %}{% for j in range(100000) %}"
                                           "{% endfor %}{% endfor %}",
    "a loop of large values never printed": "{% for i in range(100000) %}{% set y = 'x' * 999999 %}"
                                            "{% endfor %}",
    "a loop in a macro called in a loop": "{% macro m() %}{% for j in range(100000) %}{% endfor %}"
                                          "{% endmacro %}{% for i in range(100000) %}{{ m() }}{% endfor %}",
}


@pytest.mark.parametrize("name", list(RUNAWAY))
def test_loops_that_run_away_stop_at_the_renders_cpu_budget(name: str) -> None:
    # Before: these ran for hours (10**10 loop steps), holding the send worker's loop.
    started = time.thread_time()
    with pytest.raises(BadTemplate, match="loops used more than 1 s of CPU"):
        render(RUNAWAY[name], {})
    print(f"{name}: refused after {time.thread_time() - started:.2f} s of CPU")


def test_a_render_after_a_refused_one_has_its_own_budget() -> None:
    with pytest.raises(BadTemplate):
        render(RUNAWAY["a loop of loops that prints nothing"], {})
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}", {}) == "012"


@pytest.mark.parametrize("name", list(HUGE))
def test_an_operation_that_would_build_too_much_is_refused_before_it_runs(name: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BadTemplate, match="cannot render: .*(would build|is over)"):
            render(HUGE[name], {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{name}: peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ name|center(9) }}|", "   Ada   |"),
    ("{{ name.ljust(5, '.') }}{{ name.rjust(5) }}{{ '7'.zfill(3) }}", "Ada..  Ada007"),
    ("{{ '%05.1f|%-4s' % (3.14159, 'ab') }}", "003.1|ab  "),
    ("{{ '%s and %s'|format(name, 'Bob') }}", "Ada and Bob"),
    ("{{ '{:>6}|{n}'.format(name, n=2) }}{{ '{a}'.format_map({'a': 1}) }}", "   Ada|21"),
    ("{{ [1, 2, 3]|join(', ') }} {{ '-'.join(['a', 'b']) }}", "1, 2, 3 a-b"),
    ("{{ people|join(', ', attribute='n') }}", "x, y"),
    ("{{ 'a b c'|replace(' ', '_') }} {{ 'a\tb'.expandtabs(2) }}", "a_b_c a b"),
    ("{{ 'one two three'|wordwrap(7) }}", "one two\nthree"),
    ("{{ 'a\nb'|indent(2) }}", "a\n  b"),
    ("{{ [1, 2, 3, 4, 5]|batch(2, 0)|list }} {{ [1, 2, 3]|slice(2)|list }}",
     "[[1, 2], [3, 4], [5, 0]] [[1, 2], [3]]"),
    ("{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(name) }}{% set b %}in{% endset %}{{ b ~ '!' }}",
     "<Ada>in!"),
    ("{% filter upper %}{{ name }}{% endfilter %} {{ [1, 2]|sum }} {{ 'ab' * 3 }} {{ 2 ** 10 }}",
     "ADA 3 ababab 1024"),
    ("{% set ns = namespace(c=0) %}{% for i in range(4) %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}",
     "6"),
    ("{{ cycler('a', 'b').next() }}{{ 'x'.translate({120: 'yz'}) }}", "ayz"),
    ("{{ 'see https://example.com'|urlize }}",
     'see <a href="https://example.com" rel="noopener">https://example.com</a>'),
    ("{{ ('x' * 999990)|length }}", "999990"),  # just under the bound is fine
])
def test_ordinary_templates_render_as_before(template: str, expected: str) -> None:
    assert render(template, {"name": "Ada", "people": [{"n": "x"}, {"n": "y"}]}) == expected


def test_lists_and_dicts_cannot_be_changed_in_place() -> None:
    # An append in a loop grows one list past any check on results.
    with pytest.raises(BadTemplate, match="unsafe"):
        render("{% set l = [] %}{% for i in range(10) %}{{ l.append(i) }}{% endfor %}", {})
    with pytest.raises(BadTemplate, match="sum adds numbers only"):
        render("{{ [[1]] * 10|sum(start=[]) }}", {})


def test_jinja_globals_are_still_not_fields() -> None:
    assert required_fields("{{ lipsum(1) }}{{ range(2)|list }}{{ name }}") == {"name"}
