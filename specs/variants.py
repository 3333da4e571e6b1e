"""A step's variants in the campaign file (docs/decisions/0052): names, weights, their
subjects and bodies with spintax, and the step's winner rule.

A step written the old way (``subject``, ``body``) is one implicit variant, named ''.
Every problem names its step and variant (``steps[1].variants[2]``, with the YAML
line) and, for spintax, the line and column inside the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from specs.scalars import OneLine, SpecModel, Text
from specs.templates import required_fields
from variants.spintax import SpintaxError, combinations, every_text, parse

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
# The most texts one variant's subject and body may make together: each is checked
# against prospects at import, and an operator can read what a few dozen say, not more.
MAX_COMBINATIONS = 1000
# Each combination is rendered against this many of the first prospects at import
# (the first combination of each variant against every prospect, as templates always were).
SAMPLE_PROSPECTS = 5


def check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a variant name: 1-40 letters, digits, '.', '-' or '_'")
    return value


def check_spintax(value: str) -> str:
    """Well-formed spintax, and Jinja in every text it makes (the raw text is not Jinja:
    ``{{{ name }}|there}`` is a group), or ValueError with the place in the text. Over
    the limit of texts, the count is the problem (variant_problems) and Jinja waits."""
    try:
        pieces = parse(value)
    except SpintaxError as exc:
        raise ValueError(f"spintax: {exc}") from None
    if combinations(pieces) <= MAX_COMBINATIONS:
        for text in every_text(pieces):
            required_fields(text)  # BadTemplate (a ValueError) on a Jinja syntax error
    return value


VariantName = Annotated[str, AfterValidator(check_name)]
Template = Annotated[Text, AfterValidator(check_spintax)]
SubjectTemplate = Annotated[OneLine, Field(min_length=1), AfterValidator(check_spintax)]


class VariantSpec(SpecModel):
    """One version of a step. ``subject`` None in a follow-up: it threads, "Re: " and the
    subject this prospect's step 1 had."""

    name: VariantName
    weight: float = 1.0
    subject: SubjectTemplate | None = None
    body: Template

    @field_validator("weight")
    @classmethod
    def _positive(cls, weight: float) -> float:
        if not weight > 0:
            raise ValueError(f"weight is {weight:g}: a variant's weight must be above 0")
        return weight

    def combinations(self) -> int:
        return combinations(parse(self.subject or "")) * combinations(parse(self.body))

    def texts(self) -> Iterator[tuple[str | None, str]]:
        """Every (subject, body) this variant can send, spintax resolved (count first)."""
        subjects: list[str | None] = list(every_text(parse(self.subject))) if self.subject else [None]
        for subject in subjects:
            for body in every_text(parse(self.body)):
                yield subject, body


class WinnerRuleSpec(SpecModel):
    """When a variant wins its step: ``metric`` over each variant's sends older than the
    reply window, once each has ``min_sends`` of them, decided at ``confidence``
    (variants/winner.py)."""

    metric: Literal["reply_rate", "positive_reply_rate"] = "positive_reply_rate"
    min_sends: int = Field(default=200)
    confidence: float = Field(default=0.95)

    @field_validator("min_sends")
    @classmethod
    def _enough(cls, n: int) -> int:
        if n < 30:
            raise ValueError(f"min_sends is {n}: at least 30 sends per variant before any decision")
        return n

    @field_validator("confidence")
    @classmethod
    def _probability(cls, c: float) -> float:
        if not 0.5 <= c < 1:
            raise ValueError(f"confidence is {c:g}: between 0.5 and 1 (e.g. 0.95)")
        return c


def variant_problems(variants: list[VariantSpec], winner: WinnerRuleSpec | None) -> list[str]:
    """What is wrong with a step's variants as a set (each variant was checked alone)."""
    problems = []
    names = [v.name for v in variants]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"variants named more than once: {', '.join(repeated)}")
    if winner is not None and len(variants) < 2:
        problems.append("a winner rule needs at least two variants to choose from")
    for v in variants:
        n = v.combinations()
        if n > MAX_COMBINATIONS:
            problems.append(f"{describe_variant(v.name)}: its spintax makes {n} texts, over the limit of"
                            f" {MAX_COMBINATIONS}: fewer alternatives, or another variant")
    return problems


# The variant a step without ``variants`` is.
IMPLICIT = ""


def describe_variant(name: str) -> str:
    return f"variant {name!r}" if name != IMPLICIT else "the step"


def implicit_variant(subject: str | None, body: str) -> VariantSpec:
    return VariantSpec.model_construct(name=IMPLICIT, weight=1.0, subject=subject, body=body)
