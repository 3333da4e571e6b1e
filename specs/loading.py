"""Loading the operator's YAML files into validated specs.

Every problem in a file is collected before anything is raised, so one run
shows the operator everything to fix. Structure comes first: a campaign whose
YAML does not validate is reported before its prospects are read.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from specs import Problem, SpecError
from specs.bounds import InputBounds
from specs.campaigns import CampaignSpec, LoadedCampaign, resolve_campaign
from specs.mailboxes import MailboxSpec
from specs.yamlfile import child, describe, line_of, read_yaml, validation_problems


def load_mailboxes_file(path: str | Path, bounds: InputBounds | None = None) -> list[MailboxSpec]:
    """Mailboxes from YAML: a list, or a mapping with a ``mailboxes`` list."""
    source, path = str(path), Path(path)
    data, node = read_yaml(path, source, bounds)
    if isinstance(data, dict) and set(data) == {"mailboxes"}:
        data, node = data["mailboxes"], child(node, "mailboxes")
    if not isinstance(data, list):
        message = "must be a list of mailboxes, or a mapping with one key: mailboxes"
        raise SpecError([Problem(source, "", message)])
    problems: list[Problem] = []
    specs: list[MailboxSpec] = []
    first_seen: dict[str, str] = {}
    for index, item in enumerate(data):
        try:
            spec = MailboxSpec.model_validate(item)
        except ValidationError as exc:
            problems += validation_problems(source, exc, child(node, index), ("mailboxes", index))
            continue
        here = f"{describe(('mailboxes', index))} (line {line_of(node, [index])})"
        if spec.id in first_seen:
            message = f"id {spec.id!r} is already used by {first_seen[spec.id]}"
            problems.append(Problem(source, here, message))
        first_seen.setdefault(spec.id, here)
        specs.append(spec)
    if problems:
        raise SpecError(problems)
    return specs


def load_campaign_file(path: str | Path, bounds: InputBounds | None = None) -> LoadedCampaign:
    """A campaign from YAML with its prospects read, checked and deduplicated.
    ``bounds`` default to the settings' (``OUTREACH_MAX_*``)."""
    source, path = str(path), Path(path)
    bounds = bounds or InputBounds.from_settings()
    data, node = read_yaml(path, source, bounds)
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_problems(source, exc, node)) from exc
    return resolve_campaign(spec, base_dir=path.parent, source=source, node=node, bounds=bounds)
