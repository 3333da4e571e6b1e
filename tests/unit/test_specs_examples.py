"""The example files the demo command sends: they must keep loading."""

from pathlib import Path

from specs.loading import load_campaign_file, load_mailboxes_file
from specs.templates import render

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


def test_example_mailboxes_load() -> None:
    specs = load_mailboxes_file(EXAMPLES / "mailboxes.yaml")
    assert [s.id for s in specs] == ["demo-1", "demo-2"]
    for spec in specs:
        assert (spec.smtp_host, spec.smtp_port, spec.security) == ("127.0.0.1", 2525, "none")
        assert (spec.password, spec.daily_limit, spec.window.days) == ("demo", 200, (1, 2, 3, 4, 5, 6, 7))


def test_example_campaign_loads() -> None:
    loaded = load_campaign_file(EXAMPLES / "campaign.yaml")
    spec = loaded.spec
    assert (spec.workspace, spec.mailboxes) == ("demo", ["demo-1", "demo-2"])
    assert [s.delay_seconds for s in spec.steps] == [0, 20, 20]
    assert len(loaded.prospects) == 20 and loaded.warnings == []
    assert all(p.email.endswith("@example.com") for p in loaded.prospects)
    first = loaded.prospects[0].template_fields()
    assert "{{" not in render(spec.steps[1].subject, first) + render(spec.steps[2].body, first)


def test_example_campaign_in_working_hours_loads() -> None:
    loaded = load_campaign_file(EXAMPLES / "campaign-working-hours.yaml")
    spec = loaded.spec
    assert spec.schedule is not None and spec.schedule.timezone == "recipient"
    assert [s.delay_business_days for s in spec.steps] == [None, 2]
    zones = [p.place.timezone for p in loaded.prospects]
    assert zones == ["Asia/Kolkata", "America/New_York", "Europe/Berlin", "Australia/Sydney",
                     "America/Los_Angeles", None]  # the last falls back to default_timezone
