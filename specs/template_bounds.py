"""Jinja's sandbox, bounded while it renders (docs/decisions/0047).

Jinja's sandbox stops a template from reaching Python's internals, not from
building a huge value: ``{{ 'x'|center(10**8) }}`` builds 100 million characters
in one call, before any check on the output can see them. So nothing here waits
for a result to measure it. An operation that can multiply its input (padding,
repeating, formatting with a width, replacing, joining, indenting, filling
batches, adding a thousand digits to a number) is sized from its arguments and
refused before it runs when the result would pass ``MAX_OUTPUT_CHARS``; every
other value a filter, call or operator returns is measured, and every
generator is counted as it is consumed. A value's size is its characters plus
one per item, counted through lists, tuples, sets and dicts (``[s] * 1000``
holds a thousand times ``s``). Buffers (macros, ``{% set %}`` blocks, ``{%
filter %}`` blocks) and ``~`` stop at the bound as well, and lists, dicts and sets
cannot be changed in place (``ImmutableSandboxedEnvironment``): an ``append`` in a
loop would grow one past any check.

Time is bounded per render too: every step of every ``{% for %}`` loop checks the
CPU time the render has used on its thread (``MAX_RENDER_CPU_SECONDS``), so a loop
of loops that prints nothing stops instead of running for hours. Each step between
two checks is itself bounded (no operation builds more than the bound), and
recursion is bounded by Python's limit.
"""

from __future__ import annotations

import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from functools import update_wrapper, wraps
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.nodes import Concat
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum, pass_environment
from markupsafe import Markup

# Above any body the settings allow (OUTREACH_MAX_BODY_BYTES is at most 1 MB).
MAX_OUTPUT_CHARS = 1_000_000
# An email's template renders in well under a millisecond; a second of CPU is a loop run away.
MAX_RENDER_CPU_SECONDS = 1.0
MAX_POWER_BITS = 10_000  # 2**10000 has 3011 digits: plenty for any arithmetic in an email
_TEXT = (str, bytes, bytearray)
_SEQUENCES = (*_TEXT, list, tuple)


class TooBig(SecurityError):
    """An operation whose result would pass the bound; refused before it is built."""


class TooSlow(SecurityError):
    """A render whose loops used more CPU than MAX_RENDER_CPU_SECONDS."""


_render = threading.local()  # this thread's render: when its CPU time runs out


class cpu_budget:  # noqa: N801 - used as a context manager, like a function
    """The CPU time one render may use on this thread (loop steps check it)."""

    def __init__(self, seconds: float = MAX_RENDER_CPU_SECONDS) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        self._outer = getattr(_render, "deadline", None)  # a render inside a render keeps the outer
        if self._outer is None:
            _render.deadline = time.thread_time() + self._seconds

    def __exit__(self, *_: object) -> None:
        _render.deadline = self._outer


def loop_steps(iterable: Any) -> Iterator[Any]:
    """A ``{% for %}`` loop's items, each step checking the render's CPU time."""
    for item in iterable:
        deadline = getattr(_render, "deadline", None)
        if deadline is not None and time.thread_time() > deadline:
            raise TooSlow(f"the template's loops used more than {MAX_RENDER_CPU_SECONDS:g} s of CPU")
        yield item


def refuse_over(size: int, what: str) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise TooBig(f"{what} would build more than {MAX_OUTPUT_CHARS} items")


# -- measuring values -----------------------------------------------------------------------


def size_of(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """Characters of every string in ``value`` plus one per item, through containers;
    counting stops once over ``limit`` (the caller only needs to know that)."""
    total, pending = 0, [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, _TEXT):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            pending.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3  # about its decimal digits
        else:
            total += 1
    return total


class _Counted(Iterator[Any]):
    """A generator's items, counted as they are taken: ``list`` or a loop over a
    generator of a hundred million items stops at the bound."""

    def __init__(self, inner: Iterator[Any]) -> None:
        self._inner = inner
        self._taken = 0

    def __next__(self) -> Any:
        item = next(self._inner)
        self._taken += 1 + size_of(item)
        refuse_over(self._taken, "iterating")
        return item


def checked(value: Any) -> Any:
    """``value`` if it is within the bound; a builtin iterator comes back counted."""
    if isinstance(value, Iterator) and type(value).__module__ == "builtins":
        return _Counted(value)
    refuse_over(size_of(value), f"this {type(value).__name__} value")
    return value


def listed(iterable: Any) -> list[Any]:
    """An iterable's items as a list, never more than the bound allows."""
    return list(checked(iter(iterable)))


def _width(value: Any) -> int:
    """An argument used as a width or count; anything else counts as none (the call
    itself then fails as it would have)."""
    return value if isinstance(value, int) else 0


# -- operators ------------------------------------------------------------------------------

_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def printf_size(template: Any, values: Any) -> int:
    """An upper bound on ``template % values``: every conversion as wide as its widest
    width or precision, or as the largest value."""
    if not isinstance(template, _TEXT):
        return 0  # a number's remainder
    pattern: re.Pattern[Any] = _PRINTF if isinstance(template, str) else re.compile(_PRINTF.pattern.encode())
    found: list[tuple[Any, Any]] = pattern.findall(template)
    parts = values.values() if isinstance(values, dict) else values if isinstance(values, tuple) \
        else (values,)
    widths = [int(n) for spec in found for n in spec if n.isdigit()]
    if any(n in ("*", b"*") for spec in found for n in spec):
        widths += [_width(v) for v in parts]  # a width taken from the values
    largest = max((size_of(v) * 6 for v in parts), default=0)  # %r can escape each character
    return len(template) + len(found) * (largest + max(widths, default=0))


def binop_size(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` if its result would pass the bound."""
    if operator == "*":
        _refuse_repeat(left, right)
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 \
                and left.bit_length() * right > MAX_POWER_BITS:
            raise TooBig("'**' would build a number too large")
    elif operator == "+" and isinstance(left, _SEQUENCES):
        refuse_over(size_of(left) + size_of(right), "'+'")
    elif operator == "%":
        refuse_over(printf_size(left, right), "'%'")


def _refuse_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, _SEQUENCES) and isinstance(times, int):
            refuse_over(size_of(seq) * times, "'*'")
    if isinstance(left, int) and isinstance(right, int) \
            and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
        raise TooBig("'*' would build a number too large")


# -- methods of strings ---------------------------------------------------------------------


def method_args(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a string method whose result would pass the bound; the arguments to call
    it with (``join``'s iterable taken into a list first, to be measured)."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, _TEXT) or not isinstance(method, types.BuiltinMethodType):
        return args
    name = method.__name__
    if name == "join" and args:
        args = (listed(args[0]), *args[1:])
    sizer = _METHOD_SIZES.get(name)
    if sizer is not None:
        refuse_over(sizer(owner, *args, **kwargs), f"{name}()")
    return args


def _padded(owner: Any, width: Any, *_: Any) -> int:
    return max(len(owner), _width(width))


def _tabs_expanded(owner: Any, tabsize: Any = 8) -> int:
    tab = "\t" if isinstance(owner, str) else b"\t"
    return len(owner) + int(owner.count(tab)) * _width(tabsize)


def _replaced(owner: Any, old: Any, new: Any, count: Any = -1) -> int:
    try:
        found = owner.count(old) if old else len(owner) + 1  # "" matches between every two
    except TypeError:
        return 0  # mixed str and bytes: the call itself fails
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(owner) + found * size_of(new)


def _joined(owner: Any, items: Any) -> int:
    return size_of(items) + len(items) * len(owner)


def _translated(owner: Any, table: Any, *_: Any) -> int:
    values = table.values() if isinstance(table, dict) else ()
    return len(owner) * max((size_of(v) for v in values), default=1)


_METHOD_SIZES: dict[str, Callable[..., int]] = {
    "center": _padded, "ljust": _padded, "rjust": _padded, "zfill": _padded,
    "expandtabs": _tabs_expanded, "replace": _replaced, "join": _joined, "translate": _translated,
}


class _FieldBudget(SandboxedFormatter):
    """``str.format``: a width or precision over the bound is refused before the field
    is formatted, and the fields together stop at the bound."""

    _spent = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._spent = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for number in re.findall(r"\d+", format_spec):
            refuse_over(int(number), "a format width")
        formatted = super().format_field(value, format_spec)
        self._spent += len(formatted)
        refuse_over(self._spent, "format()")
        return formatted


class _EscapeFieldBudget(_FieldBudget, SandboxedEscapeFormatter):
    pass


# -- filters and globals --------------------------------------------------------------------


def _center(value: Any, width: Any = 80) -> int:
    return max(len(str(value)), _width(width))


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> int:
    text = str(s)
    indention = len(width) if isinstance(width, str) else _width(width)
    return len(text) + (text.count("\n") + 2) * indention


def _wordwrap(s: Any, width: Any = 79, break_long_words: bool = True, wrapstring: Any = None,
              break_on_hyphens: bool = True) -> int:
    text = str(s)
    lines = len(text) // max(_width(width), 1) + len(text.split()) + text.count("\n") + 1
    return len(text) + lines * (len(str(wrapstring)) if wrapstring is not None else 1)


def _replace(s: Any, old: Any, new: Any, count: Any = None) -> int:
    return _replaced(str(s), str(old), str(new), -1 if count is None else count)


def _format(value: Any, *args: Any, **kwargs: Any) -> int:
    return printf_size(str(value), kwargs or args)


def _filled(value: Any, count: Any, fill_with: Any = None) -> int:
    """``batch`` and ``slice``: ``count`` lists, or ``count`` fill items."""
    return _width(count) * (1 + (size_of(fill_with) if fill_with is not None else 0))


def _urlize(value: Any, trim_url_limit: Any = None, nofollow: bool = False, target: Any = None,
            rel: Any = None, extra_schemes: Any = None) -> int:
    text = str(value)
    per_link = 40 + len(str(target or "")) + len(str(rel or ""))
    return 2 * len(text) + len(text.split()) * per_link


def _summed(iterable: Any, attribute: Any = None, start: Any = 0) -> int:
    if not isinstance(start, int | float):  # sum([[a], [b], ...], []) copies quadratically
        raise SecurityError("sum adds numbers only")
    return 0


_FILTER_SIZES: dict[str, Callable[..., int]] = {
    "center": _center, "indent": _indent, "wordwrap": _wordwrap, "replace": _replace,
    "format": _format, "batch": _filled, "slice": _filled, "urlize": _urlize, "sum": _summed,
}


@pass_environment
def _join(environment: Any, value: Any, d: Any = "", attribute: Any = None) -> str:
    """The ``join`` filter, measured: the items are listed (bounded) first."""
    items = listed(value)
    if attribute is not None:
        items = [make_attrgetter(environment, attribute)(item) for item in items]
    parts = [str(item) for item in items]
    refuse_over(sum(map(len, parts)) + len(parts) * len(str(d)), "join")
    return str(d).join(parts)


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    sizer = _FILTER_SIZES.get(name)
    # A filter Jinja passes its environment or context to takes it first.
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    @wraps(func)  # keeps jinja_pass_arg, so Jinja calls it the same way
    def bounded(*args: Any, **kwargs: Any) -> Any:
        if sizer is not None:
            refuse_over(sizer(*args[skip:], **kwargs), f"the {name} filter")
        return checked(func(*args, **kwargs))

    return bounded


def bounded_filters() -> dict[str, Callable[..., Any]]:
    filters = {name: _bounded_filter(name, func) for name, func in FILTERS.items()}
    filters["join"] = _join
    return filters


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's ``lipsum`` global, refused when it would write more than the bound."""
    refuse_over(_width(n) * _width(max) * 12, "lipsum")  # a word and its space: under 12
    return generate_lorem_ipsum(n, html, min, max)


# -- buffers and the generated code ---------------------------------------------------------


class OutputBuffer(list[str]):
    """Where a macro, a ``{% set %}`` block or a ``{% filter %}`` block collects its
    output: it stops at the bound as the template's own output does."""

    size = 0

    def append(self, chunk: str) -> None:
        self.size += len(chunk)
        refuse_over(self.size, "a block's output")
        super().append(chunk)

    def extend(self, chunks: Iterable[str]) -> None:
        for chunk in chunks:
            self.append(chunk)


def joined(parts: Iterable[Any]) -> str:
    """``a ~ b ~ c``, measured before it is joined."""
    texts = [str(part) for part in parts]
    refuse_over(sum(map(len, texts)), "'~'")
    return "".join(texts)


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with block buffers and ``~`` going through the above."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Every loop's iterable goes through loop_steps (the render's CPU time).
        node.iter = nodes.Call(nodes.EnvironmentAttribute("loop_steps"), [node.iter], [], None, None,
                               lineno=node.lineno)
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.joined((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, where no filter, call or operator builds more than the bound."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    output_buffer = OutputBuffer
    joined = staticmethod(joined)
    loop_steps = staticmethod(loop_steps)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = bounded_filters()
        self.globals["lipsum"] = lipsum

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        binop_size(operator, left, right)
        return checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        args = method_args(obj, args, kwargs)
        return checked(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's own, with a formatter that measures each field."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) \
                or value.__name__ not in ("format", "format_map") or not isinstance(value.__self__, str):
            return None
        template: str = value.__self__
        formatter: _FieldBudget = (_EscapeFieldBudget(self, escape=template.escape)
                                   if isinstance(template, Markup) else _FieldBudget(self))
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return type(template)(formatter.vformat(template, (), args[0]))
            return type(template)(formatter.vformat(template, args, kwargs))

        return update_wrapper(wrapper, value)
