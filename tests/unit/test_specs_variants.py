"""Variants in the campaign file (specs/variants.py, issue 24): what imports, and bad
input named by file, step, variant and place in the text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs import SpecError
from specs.campaigns import combination_counts, threads
from specs.loading import load_campaign_file


def campaign(
    tmp_path: Path, steps: list[dict[str, Any]], prospects: list[dict[str, str]] | None = None,
) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump({
        "name": "c", "workspace": "ws", "mailboxes": ["mb"], "steps": steps,
        "prospects": prospects or [{"email": "a@example.com", "first_name": "Ada", "company": "Acme"}],
    }, sort_keys=False))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as err:
        load_campaign_file(path)
    return [str(p) for p in err.value.problems]


TWO = [{"name": "a", "subject": "Hi {{ first_name }}", "body": "one"},
       {"name": "b", "weight": 2, "subject": "{Hello|Hey} {{ first_name }}", "body": "{x|y|z}"}]


def test_variants_with_a_winner_rule_load_and_count_their_combinations(tmp_path: Path) -> None:
    loaded = load_campaign_file(campaign(tmp_path, [
        {"variants": TWO, "winner": {"metric": "reply_rate", "min_sends": 100, "confidence": 0.9}},
        {"delay": "1d", "body": "again"}]))
    first = loaded.spec.steps[0]
    assert [v.name for v in first.all_variants()] == ["a", "b"]
    assert first.winner is not None and first.winner.min_sends == 100
    assert loaded.spec.steps[1].subject is None  # threads on what each prospect got
    assert combination_counts(loaded.spec.steps) == [(1, "a", 1), (1, "b", 6), (2, "", 1)]


def test_a_step_without_variants_is_one_implicit_variant(tmp_path: Path) -> None:
    loaded = load_campaign_file(campaign(tmp_path, [{"subject": "S", "body": "B"}]))
    assert [(v.name, v.subject, v.body) for v in loaded.spec.steps[0].all_variants()] == [("", "S", "B")]


@pytest.mark.parametrize(("variant", "expected"), [
    ({"name": "b", "subject": "{Hello|Hey {{ first_name }}", "body": "x"},
     "steps[1].variants[2].subject (line 11): spintax: '{' is never closed (write \\{ for the character)"
     " (line 1, column 1)"),
    ({"name": "b", "subject": "S", "body": "{x||y}"},
     "steps[1].variants[2].body (line 12): spintax: empty alternative (line 1, column 4)"),
    ({"name": "b", "weight": 0, "subject": "S", "body": "x"},
     "steps[1].variants[2].weight (line 11): weight is 0: a variant's weight must be above 0"),
    ({"name": "a", "subject": "S", "body": "x"},
     "steps[1] (line 6): variants named more than once: a"),
])
def test_bad_variants_are_named_by_file_step_variant_and_place(
    tmp_path: Path, variant: dict[str, Any], expected: str,
) -> None:
    path = campaign(tmp_path, [{"variants": [TWO[0], variant]}])
    found = problems(path)
    assert found == [f"{path}: {expected}"], found


def test_winner_rule_needs_two_variants_and_thirty_sends(tmp_path: Path) -> None:
    one = campaign(tmp_path, [{"variants": TWO[:1], "winner": {"min_sends": 200}}])
    assert problems(one) == [
        f"{one}: steps[1] (line 6): a winner rule needs at least two variants to choose from"]
    few = campaign(tmp_path, [{"variants": TWO, "winner": {"min_sends": 29}}])
    assert problems(few) == [f"{few}: steps[1].winner.min_sends (line 15): min_sends is 29:"
                             " at least 30 sends per variant before any decision"]


def test_too_many_combinations_is_refused_with_the_count(tmp_path: Path) -> None:
    body = " ".join("{a|b|c|d}" for _ in range(5))  # 4**5 = 1024
    path = campaign(tmp_path, [{"variants": [TWO[0], {"name": "b", "subject": "S", "body": body}]}])
    assert problems(path) == [f"{path}: steps[1] (line 6): variant 'b': its spintax makes 1024 texts,"
                              " over the limit of 1000: fewer alternatives, or another variant"]


def test_every_combination_is_checked_against_the_prospects(tmp_path: Path) -> None:
    path = campaign(tmp_path, [{"variants": [TWO[0], {"name": "b", "subject": "S",
                                                      "body": "{Hi|Hi {{ title }}} there"}]}])
    assert problems(path) == [
        f"{path}: prospects[1] (line 14): step 1 variant 'b' body (spintax 2 of 2) uses {{{{ title }}}},"
        " which this prospect lacks"]


def test_a_follow_up_of_variants_threads_and_step_one_needs_subjects(tmp_path: Path) -> None:
    path = campaign(tmp_path, [{"variants": [{"name": "a", "body": "x"}, TWO[1]]}])
    assert problems(path) == [f"{path}: steps (line 6): step 1 has nothing to reply to:"
                              " variant(s) 'a' need a subject"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(["hi", "{{ first_name }}", "{{ title }}", "there"]),
                         min_size=2, max_size=3), min_size=1, max_size=3))
def test_every_spintax_text_renders_or_the_import_fails(tmp_path: Path, groups: list[list[str]]) -> None:
    # The prospect has first_name, not title: the import fails exactly when some
    # combination would need title, whichever alternative the hash would pick.
    body = " ".join("{" + "|".join(g) + "}" for g in groups)
    path = campaign(tmp_path, [{"variants": [TWO[0], {"name": "b", "subject": "S", "body": body}]}])
    needs_title = any("{{ title }}" in alternative for g in groups for alternative in g)
    if needs_title:
        assert any("uses {{ title }}, which this prospect lacks" in p for p in problems(path))
    else:
        assert load_campaign_file(path).spec.steps[0].all_variants()[1].body == body


def test_a_plain_follow_up_threads_on_a_spun_step_one(tmp_path: Path) -> None:
    loaded = load_campaign_file(campaign(tmp_path, [{"subject": "{{{ first_name }}|Hi} there", "body": "b"},
                                                    {"delay": "1d", "body": "c"}]))
    follow_up = loaded.spec.steps[1].all_variants()[0]
    assert threads(loaded.spec.steps, 2, follow_up)
