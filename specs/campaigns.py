"""Campaigns: steps (subject, body, delay), the mailboxes they leave from, and
the prospects they go to, checked together so a send never meets a template
field its prospect lacks or a subject that renders a line break."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, field_validator, model_validator

from specs import BadTemplate, Problem, SpecError
from specs.bounds import InputBounds, over
from specs.durations import parse_delay
from specs.on_reply import OnReplySpec, ReplyPolicy
from specs.prospects import Prospect, deduplicate, inline_rows, read_csv, to_prospect
from specs.scalars import DisplayName, OneLine, Slug, SpecModel, forbid_controls, forbid_line_breaks
from specs.schedule import ScheduleSpec, business_days, business_days_floor, check_zone
from specs.templates import render, required_fields
from specs.variants import (
    SAMPLE_PROSPECTS,
    SubjectTemplate,
    Template,
    VariantSpec,
    WinnerRuleSpec,
    check_spintax,
    implicit_variant,
    variant_problems,
)
from specs.yamlfile import child, describe, line_of
from variants.spintax import every_text, parse

REPLY_PREFIX = "Re: "
# Fields every send fills in itself; a template may use them whatever the prospects hold.
SEND_FIELDS = frozenset({"email", "unsubscribe_url"})
# What a template's {{ unsubscribe_url }} renders as when import checks the templates.
_SAMPLE_UNSUBSCRIBE_URL = "https://unsubscribe.example/u/" + "x" * 80


class StepSpec(SpecModel):
    """One email of the sequence: a subject and a body, or ``variants`` of them (with a
    ``winner`` rule, docs/decisions/0052). ``delay`` (``3d``, ``12h``) counts from the
    prospect's previous step and is held here in seconds; ``2 business days`` (``2bd``)
    counts the recipient's working days instead (``delay_business_days``; the seconds
    are then a lower bound, decision 0051)."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    subject: SubjectTemplate | None = None
    body: Template | None = None
    variants: list[VariantSpec] | None = Field(default=None, min_length=1)
    winner: WinnerRuleSpec | None = None
    delay_seconds: int = Field(alias="delay", ge=0)
    delay_business_days: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _business_days(cls, data: Any) -> Any:
        delay = data.get("delay") if isinstance(data, dict) else None
        n = business_days(delay) if isinstance(delay, str) else None
        if n is None:
            return data
        return {**data, "delay": f"{business_days_floor(n)}s", "delay_business_days": n}

    @field_validator("delay_seconds", mode="before")
    @classmethod
    def _delay(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_delay(value)
        if isinstance(value, int) and not isinstance(value, bool) and value != 0:
            raise ValueError(f"{value} has no unit: write e.g. {value}d, {value}h or {value}m")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> StepSpec:
        if self.variants is None:
            if self.body is None:
                raise ValueError("give a body (and a subject), or variants")
        elif self.subject is not None or self.body is not None:
            raise ValueError("give a subject and a body, or variants, not both")
        problems = variant_problems(self.all_variants(), self.winner)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def all_variants(self) -> list[VariantSpec]:
        """The step's variants; a step without ``variants`` is one, named ''."""
        if self.variants is not None:
            return self.variants
        assert self.body is not None  # _one_form
        return [implicit_variant(self.subject, self.body)]


class CampaignSpec(SpecModel):
    """Prospects come inline (``prospects``) or from a CSV file (``prospects_csv``,
    relative to the YAML file's folder), never both."""

    name: Annotated[OneLine, Field(min_length=1, max_length=200)]
    workspace: Slug
    mailboxes: list[Slug] = Field(min_length=1)
    steps: list[StepSpec] = Field(min_length=1)
    prospects: list[dict[str, Any]] | None = None
    prospects_csv: Annotated[OneLine, Field(min_length=1)] | None = None
    # Overrides the mailboxes' from_name; `header_and_footer` also ends every body with
    # a line holding the unsubscribe link (docs/decisions/0031).
    from_name: DisplayName | None = None
    unsubscribe: Literal["header", "header_and_footer"] = "header"
    # Stays running with nothing left to send, for prospects added later, until closed.
    open: bool = False
    # "workspace": skip prospects active in another running campaign of the workspace.
    dedupe: Literal["campaign", "workspace"] = "campaign"
    # What a reply found in the inbox does (inbox/): stop this campaign's sequence for
    # the prospect (true), every campaign of the workspace ("workspace"), or nothing.
    stop_on_reply: bool | Literal["workspace"] = True
    stop_on_auto_reply: bool = False
    # The recipient's window (issue 23); none: the mailbox's window alone, as before.
    schedule: ScheduleSpec | None = None
    # The zone of prospects whose own could not be found; none: their mailbox's.
    default_timezone: str | None = None

    @field_validator("default_timezone")
    @classmethod
    def _default_zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    # What each kind of reply does (specs/on_reply.py): postpone on out-of-office,
    # suppress on an opt-out in words, ...; unset classes follow stop_on_reply.
    on_reply: OnReplySpec = Field(default_factory=OnReplySpec)

    @property
    def reply_policy(self) -> ReplyPolicy:
        return self.on_reply.policy(self.reply_stops, self.stop_on_auto_reply)

    @property
    def reply_stops(self) -> str:
        """stop_on_reply as stored: 'campaign', 'workspace' or 'none'."""
        if self.stop_on_reply == "workspace":
            return "workspace"
        return "campaign" if self.stop_on_reply else "none"

    @model_validator(mode="before")
    @classmethod
    def _thread_follow_ups(cls, data: Any) -> Any:
        # Filled in the raw input, so a validated step always has a subject and
        # a delay: step 1 defaults to no delay, a follow-up to "Re: <step 1>".
        # A follow-up of a step 1 with variants keeps no subject: it threads on the one
        # each prospect received (specs.campaigns.stored_variants).
        steps = data.get("steps") if isinstance(data, dict) else None
        if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
            return data
        first = {**steps[0], "delay": steps[0].get("delay", 0)}
        if "variants" in steps[0]:
            return {**data, "steps": [first, *steps[1:]]}
        subject = steps[0].get("subject")
        # When step 1 has no usable subject that is its own problem; the
        # placeholder keeps it from being repeated once per follow-up.
        reply = REPLY_PREFIX + (subject if _usable_subject(subject) else "")
        rest = [s if s.get("subject") is not None or "variants" in s else {**s, "subject": reply}
                for s in steps[1:]]
        return {**data, "steps": [first, *rest]}

    @field_validator("steps")
    @classmethod
    def _first_goes_at_start(cls, steps: list[StepSpec]) -> list[StepSpec]:
        if steps[0].delay_seconds != 0 or steps[0].delay_business_days:
            raise ValueError("step 1 goes out when the campaign starts: leave out its delay")
        if steps[0].variants is None and steps[0].subject is None:
            raise ValueError("step 1 needs a subject")
        threading = [v.name for v in steps[0].all_variants() if v.subject is None]
        if threading:
            raise ValueError("step 1 has nothing to reply to: variant(s)"
                             f" {', '.join(map(repr, threading))} need a subject")
        return steps

    @field_validator("mailboxes")
    @classmethod
    def _unique(cls, ids: list[str]) -> list[str]:
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return ids

    @model_validator(mode="after")
    def _one_prospect_source(self) -> CampaignSpec:
        if (self.prospects is None) == (self.prospects_csv is None):
            raise ValueError("give either prospects (a list) or prospects_csv (a file), not both")
        return self


def _usable_subject(subject: Any) -> bool:
    if not isinstance(subject, str):
        return False
    try:
        check_spintax(forbid_line_breaks(subject))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class LoadedCampaign:
    spec: CampaignSpec
    prospects: list[Prospect]  # validated, normalized, first of each address only
    warnings: list[Problem]  # duplicates dropped
    source: str  # the campaign file, for messages


def resolve_campaign(
    spec: CampaignSpec,
    *,
    base_dir: Path = Path("."),
    source: str = "<campaign>",
    node: yaml.Node | None = None,
    bounds: InputBounds | None = None,
) -> LoadedCampaign:
    """Reads and checks the prospects of ``spec`` against its templates."""
    bounds = bounds or InputBounds.from_settings()
    problems = step_size_problems(spec, bounds, source, node)
    if problems:  # rendering an oversized template for every prospect tells nothing more
        raise SpecError(problems)
    columns: list[str] | None = None
    if spec.prospects_csv is not None:
        label = spec.prospects_csv
        csv_file = read_csv(base_dir / spec.prospects_csv, label, source, bounds)
        columns, rows, problems = csv_file.columns, csv_file.rows, csv_file.problems
    else:
        label = "prospects"
        rows = inline_rows(spec.prospects or [], child(node, "prospects"))
        if len(rows) > bounds.prospects:
            message = f"more than {bounds.prospects} prospects (OUTREACH_MAX_PROSPECTS)"
            raise SpecError([Problem(source, label, message)])
    if problems:  # the file itself is unusable (too big, too many rows, bad header)
        raise SpecError(problems)
    valid = [p for row in rows if (p := to_prospect(row, source, problems, bounds)) is not None]
    prospects, warnings = deduplicate(valid, source)
    problems += template_problems(spec.steps, prospects, columns, label, source, bounds)
    if not prospects and not problems:
        problems.append(Problem(source, label, "has no prospects"))
    if problems:
        raise SpecError(problems)
    return LoadedCampaign(spec, prospects, warnings, source)


def step_size_problems(
    spec: CampaignSpec, bounds: InputBounds, source: str, node: yaml.Node | None
) -> list[Problem]:
    problems = []
    for n, step in enumerate(spec.steps):
        for i, variant in enumerate(step.all_variants()):
            here: tuple[str | int, ...] = ("steps", n, "variants", i) if step.variants else ("steps", n)
            for key, too_big in (("subject", _subject_too_big(variant.subject or "", bounds)),
                                 ("body", _body_too_big(variant.body, bounds))):
                if too_big is not None:
                    path = (*here, key)
                    where = f"{describe(path)} (line {line_of(node, path)})" if node else describe(path)
                    problems.append(Problem(source, where, too_big))
    return problems


def _subject_too_big(subject: str, bounds: InputBounds) -> str | None:
    return over(len(subject), bounds.subject_chars, "characters", "max_subject_chars")


def _body_too_big(body: str, bounds: InputBounds) -> str | None:
    return over(len(body.encode()), bounds.body_bytes, "bytes", "max_body_bytes")


def threads(steps: list[StepSpec], n: int, variant: VariantSpec) -> bool:
    """Whether variant of step ``n`` (from 1) takes its subject from the prospect's step 1:
    a follow-up without one of its own, or the "Re: <step 1>" filled in for it."""
    if n == 1:
        return False
    first = steps[0]
    return variant.subject is None or (
        first.variants is None and variant.subject == REPLY_PREFIX + (first.subject or ""))


def combination_counts(steps: list[StepSpec]) -> list[tuple[int, str, int]]:
    """(step, variant, how many texts its spintax makes) for every variant: what the
    import prints."""
    return [(n, v.name, v.combinations()) for n, step in enumerate(steps, 1) for v in step.all_variants()]


@dataclass(frozen=True)
class _Template:
    what: str  # "step 2 variant 'proof' body (spintax 3 of 8)", for messages
    text: str  # spintax resolved: Jinja only
    is_subject: bool
    everyone: bool  # rendered for every prospect; else for the first SAMPLE_PROSPECTS


def template_problems(
    steps: list[StepSpec], prospects: list[Prospect], columns: list[str] | None, label: str,
    source: str, bounds: InputBounds,
) -> list[Problem]:
    """Each prospect against every template of ``steps``: fields it lacks, renders that
    break. Every spintax text of every variant counts: its fields are needed by every
    prospect (any may get it), and it is rendered for the first prospects; the first
    text of each variant is rendered for every prospect."""
    templates = _distinct_templates(steps)
    needs: Needs = [(t.what, required_fields(t.text) - SEND_FIELDS) for t in templates]
    if columns is not None:
        # Every CSV row has the same columns: one problem per missing column, not per row.
        gaps = [
            f"{what} uses {{{{ {name} }}}}, which is not a column"
            for what, names in needs
            for name in sorted(names - set(columns))
        ]
        if gaps:
            return [Problem(source, f"{label} line 1 (header)", gap) for gap in gaps]
    problems: list[Problem] = []
    everyone = [t for t in templates if t.everyone]
    for i, prospect in enumerate(prospects):
        problems += _prospect_problems(needs, templates if i < SAMPLE_PROSPECTS else everyone,
                                       prospect, source, bounds)
    return problems


Needs = list[tuple[str, set[str]]]  # ("step 2 body", fields it reads besides email)


def _prospect_problems(
    needs: Needs, templates: list[_Template], prospect: Prospect, source: str, bounds: InputBounds,
) -> list[Problem]:
    absent = [
        f"{what} uses {{{{ {name} }}}}, which this prospect lacks"
        for what, names in needs
        for name in sorted(names - prospect.fields.keys())
    ]
    if absent:
        return [Problem(source, prospect.where, message) for message in dict.fromkeys(absent)]
    return _render_problems(templates, prospect, source, bounds)


def _distinct_templates(steps: list[StepSpec]) -> list[_Template]:
    """Each distinct text of every variant, spintax resolved every way. A follow-up that
    threads ("Re: <step 1>") needs the fields and renders the line breaks step 1 does,
    so it is skipped rather than reported twice."""
    found: dict[tuple[str, bool], _Template] = {}
    for n, step in enumerate(steps, 1):
        for variant in step.all_variants():
            whose = f"step {n}" + (f" variant {variant.name!r}" if variant.name else "")
            parts = [("body", variant.body, False)]
            if not threads(steps, n, variant):
                parts.insert(0, ("subject", variant.subject or "", True))
            for part, text, is_subject in parts:
                texts = list(every_text(parse(text)))
                for i, resolved in enumerate(texts):
                    spun = f" (spintax {i + 1} of {len(texts)})" if len(texts) > 1 else ""
                    what = f"{whose} {part}{spun}"
                    found.setdefault((resolved, is_subject), _Template(what, resolved, is_subject, i == 0))
    return list(found.values())


def _render_problems(
    templates: list[_Template], prospect: Prospect, source: str, bounds: InputBounds
) -> list[Problem]:
    problems = []
    fields = {**prospect.template_fields(), "unsubscribe_url": _SAMPLE_UNSUBSCRIBE_URL}
    for t in templates:
        what = t.what
        try:
            rendered = render(t.text, fields)
        except BadTemplate as exc:
            problems.append(Problem(source, prospect.where, f"{what}: {exc}"))
            continue
        try:
            if t.is_subject:
                forbid_controls(rendered)  # a rendered subject becomes a header
        except ValueError as exc:
            problems.append(Problem(source, prospect.where, f"{what} as rendered {exc}"))
            continue
        check = _subject_too_big if t.is_subject else _body_too_big
        too_big = check(rendered, bounds)
        if too_big is not None:
            problems.append(Problem(source, prospect.where, f"{what} as rendered {too_big}"))
    return problems
