"""A campaign file read to update a campaign's steps (``outreach campaigns update``):
the steps are checked as ``campaigns create`` checks them; the prospects in the file
are not read (``add-prospects`` adds prospects), and the rest of the file must
describe the same campaign."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError, model_validator

from specs import SpecError
from specs.bounds import InputBounds
from specs.campaigns import CampaignSpec, step_size_problems
from specs.yamlfile import read_yaml, validation_problems


class CampaignUpdateSpec(CampaignSpec):
    @model_validator(mode="after")
    def _one_prospect_source(self) -> CampaignUpdateSpec:
        return self  # replaces the create rule: an update reads no prospects


@dataclass(frozen=True)
class LoadedUpdate:
    spec: CampaignUpdateSpec
    source: str
    bounds: InputBounds


def load_campaign_update(path: str | Path, bounds: InputBounds | None = None) -> LoadedUpdate:
    source, path = str(path), Path(path)
    bounds = bounds or InputBounds.from_settings()
    data, node = read_yaml(path, source, bounds)
    try:
        spec = CampaignUpdateSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(validation_problems(source, exc, node)) from exc
    problems = step_size_problems(spec, bounds, source, node)
    if problems:
        raise SpecError(problems)
    return LoadedUpdate(spec, source, bounds)
