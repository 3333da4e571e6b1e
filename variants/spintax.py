"""Spintax: ``{a|b|c}`` in a subject or body, one alternative per prospect.

Groups nest (``{Hi|Hello {there|you}}``) and ``\\{``, ``\\}``, ``\\|`` write the character
itself. The templates are Jinja too, so ``{{ ... }}``, ``{% ... %}`` and ``{# ... #}``
are Jinja's and copied as they are: spintax is resolved first, Jinja renders the
result. A brace right before a Jinja opener opens a group (``{{{ name }}|there}``); two
braces are always Jinja's, so a group cannot open with a group (``{{a|b}|c}`` reads
as Jinja): write ``{ {a|b}|c}``.

A brace group without ``|`` at its own level is text, braces and all (``{x}`` stays
``{x}``), so text that used braces before spintax existed keeps its meaning. An
unbalanced brace or an empty alternative is refused, with its line and column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

_JINJA = {"{{": "}}", "{%": "%}", "{#": "#}"}
_ESCAPES = {"\\{": "{", "\\}": "}", "\\|": "|"}


class SpintaxError(ValueError):
    """Bad spintax; ``line`` and ``column`` (from 1) point at the offending character."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.line, self.column = line, column


@dataclass(frozen=True)
class Group:
    """One ``{...|...}``; ``number`` orders the groups of a text (depth first), which is
    what the keyed choice hashes, so the same text always numbers them the same."""

    number: int
    alternatives: tuple[tuple[Piece, ...], ...]


Piece = str | Group


@lru_cache(maxsize=512)
def parse(text: str) -> tuple[Piece, ...]:
    """The text as literal pieces and groups; SpintaxError if it is not well formed.
    (Cached: a worker sends the same few templates over and over.)"""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._i = 0
        self._groups = 0

    def parse(self) -> tuple[Piece, ...]:
        pieces, closer = self._sequence(depth=0)
        if closer is not None:  # a '}' with no group open
            raise self._error("'}' closes no '{' (write \\} for the character)", self._i - 1)
        return pieces

    def _sequence(self, depth: int) -> tuple[tuple[Piece, ...], str | None]:
        """Pieces up to the end, or (inside a group) up to its '|' or '}' (returned)."""
        pieces: list[Piece] = []
        literal: list[str] = []
        text = self._text
        while self._i < len(text):
            two = text[self._i:self._i + 2]
            if two in _ESCAPES and not _jinja_at(text, self._i + 1):
                literal.append(_ESCAPES[two])
                self._i += 2
            elif two in _JINJA and not _group_then_jinja(text, self._i):
                literal.append(self._jinja(two))
            elif text[self._i] == "{":
                if literal:
                    pieces.append("".join(literal))
                    literal = []
                pieces.extend(self._group())
            elif text[self._i] in "|}" and depth > 0:
                self._i += 1
                break
            elif text[self._i] == "}":
                self._i += 1
                return tuple(pieces), "}"
            else:
                literal.append(text[self._i])
                self._i += 1
        else:
            if literal:
                pieces.append("".join(literal))
            return tuple(pieces), None
        if literal:
            pieces.append("".join(literal))
        return tuple(pieces), text[self._i - 1]

    def _jinja(self, opener: str) -> str:
        """A Jinja construct, verbatim up to its closer (Jinja itself checks what is inside)."""
        end = self._text.find(_JINJA[opener], self._i + 2)
        end = len(self._text) if end < 0 else end + 2
        construct = self._text[self._i:end]
        self._i = end
        return construct

    def _group(self) -> tuple[Piece, ...]:
        opened = self._i
        self._i += 1
        number = self._groups
        self._groups += 1
        alternatives: list[tuple[Piece, ...]] = []
        while True:
            start = self._i
            pieces, closer = self._sequence(depth=1)
            if closer is None:
                raise self._error("'{' is never closed (write \\{ for the character)", opened)
            alternatives.append(pieces)
            if closer == "}":
                break
            if not _has_text(pieces):
                raise self._error("empty alternative", start)
        if len(alternatives) == 1:  # no '|': text with its braces, as before spintax
            return ("{", *alternatives[0], "}")
        if not _has_text(alternatives[-1]):
            raise self._error("empty alternative", start)
        return (Group(number, tuple(alternatives)),)

    def _error(self, message: str, at: int) -> SpintaxError:
        line = self._text.count("\n", 0, at) + 1
        column = at - (self._text.rfind("\n", 0, at) + 1) + 1
        return SpintaxError(message, line, column)


def _jinja_at(text: str, i: int) -> bool:
    """A Jinja construct opens at ``i`` (a backslash before one is text: Jinja's own
    braces are never spintax, so there is nothing to escape)."""
    return text[i:i + 2] in _JINJA and not _group_then_jinja(text, i)


def _group_then_jinja(text: str, i: int) -> bool:
    """``{`` then a Jinja opener at ``i`` (``{{{ x }}``, ``{{% if %}``): the brace is spintax's."""
    return text[i] == "{" and text[i + 1:i + 3] in _JINJA


def escape(text: str) -> str:
    """``text`` written so that it resolves to itself: every brace and bar outside Jinja's
    constructs escaped. For texts stored before spintax existed (decision 0052)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        two = text[i:i + 2]
        if two in _JINJA and not _group_then_jinja(text, i):
            end = text.find(_JINJA[two], i + 2)
            end = len(text) if end < 0 else end + 2
            out.append(text[i:end])
            i = end
            continue
        out.append("\\" + text[i] if text[i] in "{}|" else text[i])
        i += 1
    return "".join(out)


def _has_text(pieces: tuple[Piece, ...]) -> bool:
    return any(isinstance(p, Group) or p.strip() for p in pieces)


def combinations(pieces: tuple[Piece, ...]) -> int:
    """How many different texts the pieces can resolve to (at most; two ways may read alike)."""
    return math.prod(sum(combinations(a) for a in p.alternatives) for p in pieces if isinstance(p, Group))


Pick = Callable[[int, int], int]  # (group number, alternatives) -> the alternative taken


def resolve(pieces: tuple[Piece, ...], pick: Pick) -> str:
    """The text with each group replaced by the alternative ``pick`` takes."""
    out: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        else:
            taken = pick(piece.number, len(piece.alternatives)) % len(piece.alternatives)
            out.append(resolve(piece.alternatives[taken], pick))
    return "".join(out)


def every_text(pieces: tuple[Piece, ...]) -> Iterator[str]:
    """Each text the pieces resolve to (``combinations`` of them; count them first)."""
    if not pieces:
        yield ""
        return
    head, rest = pieces[0], pieces[1:]
    heads = [head] if isinstance(head, str) else [t for a in head.alternatives for t in every_text(a)]
    for first in heads:
        for tail in every_text(rest):
            yield first + tail
