import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from specs import Problem, SpecError
from specs.campaigns import CampaignSpec, resolve_campaign
from specs.loading import load_campaign_file

FIXTURES = Path(__file__).parent.parent / "fixtures"


def campaign(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Launch",
        "workspace": "acme",
        "mailboxes": ["mb-1"],
        "steps": [
            {"subject": "Hi {{ first_name }}", "body": "Hello {{ first_name }} at {{ company }}"},
            {"delay": "2d", "body": "Following up"},
        ],
        "prospects": [{"email": "ada@example.com", "first_name": "Ada", "company": "Acme"}],
    }
    data.update(overrides)
    return data


def write(tmp_path: Path, data: dict[str, Any], csv_text: str | None = None) -> Path:
    if csv_text is not None:
        (tmp_path / "people.csv").write_text(csv_text, encoding="utf-8")
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems(tmp_path: Path, data: dict[str, Any], csv_text: str | None = None) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        load_campaign_file(write(tmp_path, data, csv_text))
    return info.value.problems


def unlined(location: str) -> str:
    """The location without its YAML line, which depends on how the test's dict is dumped."""
    return re.sub(r" \(line \d+\)", "", location)


def messages(tmp_path: Path, data: dict[str, Any], csv_text: str | None = None) -> list[str]:
    return [f"{unlined(p.location)}: {p.message}" for p in problems(tmp_path, data, csv_text)]


CSV = "email,first_name,company\nada@example.com,Ada,Acme\nben@example.com,Ben,Globex\n"


def test_good_inline_campaign(tmp_path: Path) -> None:
    loaded = load_campaign_file(write(tmp_path, campaign()))
    assert [(s.subject, s.delay_seconds) for s in loaded.spec.steps] == [
        ("Hi {{ first_name }}", 0), ("Re: Hi {{ first_name }}", 172800),
    ]
    assert [(p.email, p.fields) for p in loaded.prospects] == [
        ("ada@example.com", {"first_name": "Ada", "company": "Acme"}),
    ]
    assert loaded.warnings == [] and loaded.source == str(tmp_path / "campaign.yaml")


def test_good_csv_campaign_path_relative_to_yaml(tmp_path: Path) -> None:
    data = campaign(prospects=None, prospects_csv="people.csv")
    del data["prospects"]
    loaded = load_campaign_file(write(tmp_path, data, CSV))
    assert [p.email for p in loaded.prospects] == ["ada@example.com", "ben@example.com"]
    assert loaded.prospects[1].fields == {"first_name": "Ben", "company": "Globex"}
    assert loaded.prospects[1].where == "people.csv line 3"


def test_follow_up_subject_kept_when_given(tmp_path: Path) -> None:
    steps = [{"subject": "A", "body": "b"}, {"delay": "1h", "subject": "B {{ email }}", "body": "c"}]
    loaded = load_campaign_file(write(tmp_path, campaign(steps=steps)))
    assert [s.subject for s in loaded.spec.steps] == ["A", "B {{ email }}"]


def test_email_is_always_a_field(tmp_path: Path) -> None:
    steps = [{"subject": "For {{ email }}", "body": "{{ email }}"}]
    loaded = load_campaign_file(write(tmp_path, campaign(steps=steps, prospects=[{"email": "a@b.co"}])))
    assert loaded.prospects[0].template_fields() == {"email": "a@b.co"}


def test_step_one_delay_must_be_zero(tmp_path: Path) -> None:
    steps = [{"subject": "A", "body": "b", "delay": "1d"}]
    assert messages(tmp_path, campaign(steps=steps)) == [
        "steps: step 1 goes out when the campaign starts: leave out its delay",
    ]


def test_step_one_delay_zero_accepted(tmp_path: Path) -> None:
    steps = [{"subject": "A", "body": "b", "delay": 0}, {"body": "c", "delay": "0"}]
    loaded = load_campaign_file(write(tmp_path, campaign(steps=steps)))
    assert [s.delay_seconds for s in loaded.spec.steps] == [0, 0]


def test_follow_up_needs_a_delay(tmp_path: Path) -> None:
    steps = [{"subject": "A", "body": "b"}, {"body": "c"}]
    assert messages(tmp_path, campaign(steps=steps)) == ["steps[2].delay: is required"]


@pytest.mark.parametrize(("delay", "message"), [("3 days", "not a delay"), (5, "has no unit")])
def test_bad_delay_rejected(tmp_path: Path, delay: Any, message: str) -> None:
    steps = [{"subject": "A", "body": "b"}, {"body": "c", "delay": delay}]
    [problem] = problems(tmp_path, campaign(steps=steps))
    assert unlined(problem.location) == "steps[2].delay" and message in problem.message


def test_template_syntax_error_reported(tmp_path: Path) -> None:
    steps = [{"subject": "A {% if %}", "body": "b"}, {"delay": "1d", "body": "{{ x"}]
    found = messages(tmp_path, campaign(steps=steps))
    assert found[0].startswith("steps[1].subject: template error on its line 1")
    assert found[1].startswith("steps[2].body: template error on its line 1")
    assert len(found) == 2  # the derived "Re:" subject does not repeat step 1's problem


def test_line_break_in_subject_template_rejected(tmp_path: Path) -> None:
    steps = [{"subject": "Hi\r\nBcc: x@example.com", "body": "b"}]
    assert messages(tmp_path, campaign(steps=steps)) == [
        "steps[1].subject: must not contain a line break (CR or LF)",
    ]


def test_subject_that_renders_a_line_break_rejected(tmp_path: Path) -> None:
    steps = [{"subject": 'Hi {{ "\\n" if first_name == "Ada" }}', "body": "b"}]
    prospects = [{"email": "ada@example.com", "first_name": "Ada"},
                 {"email": "bob@example.com", "first_name": "Bob"}]
    assert messages(tmp_path, campaign(steps=steps, prospects=prospects)) == [
        "prospects[1]: step 1 subject as rendered must not contain a line break (CR or LF)",
    ]


@pytest.mark.parametrize("name", ["two\nlines", "cr\rhere", "nul\x00"])
def test_control_characters_in_name_rejected(tmp_path: Path, name: str) -> None:
    [problem] = problems(tmp_path, campaign(name=name))
    assert unlined(problem.location) == "name"


def test_body_may_span_lines_but_not_hold_nul(tmp_path: Path) -> None:
    steps = [{"subject": "A", "body": "line 1\nline 2"}]
    assert load_campaign_file(write(tmp_path, campaign(steps=steps))).spec.steps[0].body
    steps = [{"subject": "A", "body": "nul\x00"}]
    assert messages(tmp_path, campaign(steps=steps)) == [
        "steps[1].body: must not contain a NUL character",
    ]


def test_mailboxes_required_and_unique(tmp_path: Path) -> None:
    assert "at least 1 item" in messages(tmp_path, campaign(mailboxes=[]))[0]
    assert messages(tmp_path, campaign(mailboxes=["a", "b", "a"])) == [
        "mailboxes: listed more than once: a",
    ]


def test_prospects_source_is_one_of_two(tmp_path: Path) -> None:
    both = campaign(prospects_csv="people.csv")
    assert "not both" in messages(tmp_path, both, CSV)[0]
    neither = campaign()
    del neither["prospects"]
    assert "either prospects" in messages(tmp_path, neither)[0]


def test_unknown_key_rejected(tmp_path: Path) -> None:
    assert messages(tmp_path, campaign(mailbox=["x"])) == ["mailbox: is not a known field"]


def test_invalid_inline_address_names_the_item(tmp_path: Path) -> None:
    prospects = [{"email": "ada@example.com", "first_name": "A", "company": "C"},
                 {"email": "bob at example.com", "first_name": "B", "company": "C"}]
    [problem] = problems(tmp_path, campaign(prospects=prospects))
    assert unlined(problem.location) == "prospects[2].email"
    assert problem.message.startswith("not a valid address (")


def test_invalid_csv_address_names_the_line(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    csv_text = CSV + "not-an-address,Cy,Initech\n"
    [problem] = problems(tmp_path, data, csv_text)
    assert str(problem).startswith(
        f"{tmp_path / 'campaign.yaml'}: people.csv line 4, column email: not a valid address ("
    )


def test_first_data_row_is_line_two(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    [problem] = problems(tmp_path, data, "email,first_name,company\nnope,A,C\n")
    assert problem.location == "people.csv line 2, column email"


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00"])
def test_control_characters_in_email_rejected(tmp_path: Path, bad: str) -> None:
    prospects = [{"email": f"ada@example.com{bad}Bcc: x@example.com", "first_name": "A", "company": "C"}]
    [problem] = problems(tmp_path, campaign(prospects=prospects))
    assert unlined(problem.location) == "prospects[1].email"


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00"])
def test_control_characters_in_field_rejected(tmp_path: Path, bad: str) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    csv_text = f'email,first_name,company\nada@example.com,"A{bad}B",Acme\n'
    [problem] = problems(tmp_path, data, csv_text)
    assert problem.location == "people.csv line 2, column first_name"


def test_missing_field_names_the_prospect_row(tmp_path: Path) -> None:
    prospects = [{"email": "ada@example.com", "first_name": "A", "company": "C"},
                 {"email": "bob@example.com", "first_name": "B"}]
    assert messages(tmp_path, campaign(prospects=prospects)) == [
        "prospects[2]: step 1 body uses {{ company }}, which this prospect lacks",
    ]


def test_missing_csv_column_reported_once_on_the_header(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    assert messages(tmp_path, data, "email,first_name\na@example.com,A\nb@example.com,B\n") == [
        "people.csv line 1 (header): step 1 body uses {{ company }}, which is not a column",
    ]


def test_render_errors_reported_per_prospect(tmp_path: Path) -> None:
    steps = [{"subject": "A", "body": "{{ 100 // seats }}"}]
    prospects = [{"email": "a@example.com", "seats": 4}, {"email": "b@example.com", "seats": 0}]
    [problem] = problems(tmp_path, campaign(steps=steps, prospects=prospects))
    assert unlined(problem.location) == "prospects[2]" and "ZeroDivisionError" in problem.message


def test_duplicates_dropped_and_reported(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    csv_text = CSV + "ADA@example.com,Ada2,Acme\ncy@example.com,Cy,Initech\nBen@Example.COM,B,G\n"
    loaded = load_campaign_file(write(tmp_path, data, csv_text))
    assert [p.email for p in loaded.prospects] == ["ada@example.com", "ben@example.com", "cy@example.com"]
    assert loaded.prospects[0].fields["first_name"] == "Ada"  # the first row wins
    assert [(w.location, w.message) for w in loaded.warnings] == [
        ("people.csv line 4", "ADA@example.com repeats people.csv line 2; this one is dropped"),
        ("people.csv line 6", "Ben@example.com repeats people.csv line 3; this one is dropped"),
    ]


def test_csv_header_problems(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    assert messages(tmp_path, data, "mail,first_name,first_name,\n") == [
        "people.csv line 1 (header): column 4 has no name",
        "people.csv line 1 (header): column 'first_name' appears twice",
        "people.csv line 1 (header): no email column (columns: mail, first_name, first_name, )",
    ]


def test_csv_email_column_case_insensitive_and_bom_tolerated(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    csv_text = "\ufeffEmail , first_name,company\nada@example.com,Ada,Acme\n\n,,\n"
    loaded = load_campaign_file(write(tmp_path, data, csv_text))
    assert [p.email for p in loaded.prospects] == ["ada@example.com"]


def test_csv_ragged_row_rejected(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    assert messages(tmp_path, data, CSV + "cy@example.com,Cy\n") == [
        "people.csv line 4: has 2 cells, the header has 3",
    ]


def test_csv_without_prospects_rejected(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    assert messages(tmp_path, data, "email,first_name,company\n") == ["people.csv: has no prospects"]


def test_missing_csv_file_reported(tmp_path: Path) -> None:
    data = campaign(prospects_csv="nowhere.csv")
    del data["prospects"]
    assert messages(tmp_path, data)[0].startswith("nowhere.csv: cannot read the file")


def test_inline_values_keep_numbers_and_dates_become_text(tmp_path: Path) -> None:
    path = write(tmp_path, campaign())
    path.write_text(path.read_text() + "- {email: b@example.com, first_name: B, company: C,"
                    " seats: 12, since: 2024-05-01}\n")
    loaded = load_campaign_file(path)
    assert loaded.prospects[1].fields == {
        "first_name": "B", "company": "C", "seats": 12, "since": "2024-05-01",
    }


def test_nested_inline_value_rejected(tmp_path: Path) -> None:
    prospects = [{"email": "a@example.com", "first_name": ["A"], "company": "C"}]
    assert messages(tmp_path, campaign(prospects=prospects)) == [
        "prospects[1].first_name: must be text or a number, not list",
    ]


def test_all_problems_collected_one_line_each(tmp_path: Path) -> None:
    data = campaign(prospects_csv="people.csv")
    del data["prospects"]
    csv_text = "email,first_name,company\nbad1,A,C\nok@example.com,B,C\nbad2,C,C\n"
    with pytest.raises(SpecError) as info:
        load_campaign_file(write(tmp_path, data, csv_text))
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) == 2
    assert "people.csv line 2, column email" in lines[0] and "people.csv line 4" in lines[1]


def test_repeated_yaml_key_rejected(tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text("name: a\nsteps:\n  - subject: x\n    delay: 1d\n    delay: 2d\n")
    with pytest.raises(SpecError) as info:
        load_campaign_file(path)
    assert str(info.value) == f"{path}: line 5: key 'delay' appears twice"


def test_spec_error_message_is_capped_but_keeps_every_problem() -> None:
    error = SpecError([Problem("f.yaml", f"line {n}", "bad") for n in range(120)])
    assert len(error.problems) == 120
    assert str(error).splitlines()[-1] == "... and 70 more problems"


def test_locations_carry_yaml_lines(tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text(
        "name: Launch\n"
        "workspace: acme\n"
        "mailboxes: [mb-1]\n"
        "steps:\n"
        "  - subject: Hi {{ first_name }}\n"
        "    body: Hello\n"
        "  - body: Again\n"
        "    delay: 3 weeks\n"
        "prospects:\n"
        "  - {email: ada@example.com, first_name: Ada}\n"
    )
    with pytest.raises(SpecError) as info:
        load_campaign_file(path)
    assert [p.location for p in info.value.problems] == ["steps[2].delay (line 8)"]
    path.write_text(path.read_text().replace("3 weeks", "3w").replace("first_name: Ada", "x: 1"))
    with pytest.raises(SpecError) as info:
        load_campaign_file(path)
    assert str(info.value) == (
        f"{path}: steps[2].delay (line 8): not a delay: '3w' (write e.g. 3d, 2h, 15m, 30s, 1d12h or 0)"
    )
    path.write_text(path.read_text().replace("3w", "3d"))
    with pytest.raises(SpecError) as info:
        load_campaign_file(path)
    assert str(info.value) == (
        f"{path}: prospects[1] (line 10): step 1 subject uses {{{{ first_name }}}},"
        " which this prospect lacks"
    )


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "campaign.yaml"
    path.write_text("name: x\nsteps: [\n  {subject: a\nworkspace: w\n")
    with pytest.raises(SpecError) as info:
        load_campaign_file(path)
    [problem] = info.value.problems
    assert problem.file == str(path) and problem.location.startswith("line ")
    assert problem.message.startswith("not valid YAML")


def test_spec_built_in_python_resolves_without_a_file() -> None:
    spec = CampaignSpec.model_validate(campaign())
    loaded = resolve_campaign(spec)
    assert loaded.prospects[0].where == "prospects[1]" and loaded.source == "<campaign>"


def test_fixture_campaigns_load() -> None:
    inline = load_campaign_file(FIXTURES / "campaign_inline.yaml")
    assert len(inline.prospects) == 2 and len(inline.warnings) == 1
    assert inline.prospects[1].fields["seats"] == 12
    from_csv = load_campaign_file(FIXTURES / "campaign_csv.yaml")
    assert len(from_csv.prospects) == 4 and "line 5" in str(from_csv.warnings[0])


def test_fixture_with_bad_rows_reports_each(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_campaign_file(FIXTURES / "campaign_bad_csv.yaml")
    assert [p.location for p in info.value.problems] == [
        "prospects_bad.csv line 3, column email",
        "prospects_bad.csv line 4, column first_name",
        "prospects_bad.csv line 5",
    ]
