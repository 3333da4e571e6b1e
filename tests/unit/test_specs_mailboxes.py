from datetime import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from specs import SpecError
from specs.loading import load_mailboxes_file
from specs.mailboxes import MailboxSpec, WindowSpec

FIXTURES = Path(__file__).parent.parent / "fixtures"


def mailbox(**overrides: Any) -> MailboxSpec:
    data: dict[str, Any] = {"id": "mb-1", "email": "me@example.com", "smtp_host": "smtp.example.com"}
    data.update(overrides)
    return MailboxSpec.model_validate(data)


def error_text(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as info:
        mailbox(**overrides)
    return str(info.value)


def test_defaults() -> None:
    spec = mailbox()
    assert (spec.provider, spec.security, spec.smtp_port) == ("other", "starttls", 587)
    assert (spec.daily_limit, spec.timezone) == (40, "UTC")
    assert spec.window == WindowSpec(start=time(0, 0), end=time.max, days=(1, 2, 3, 4, 5, 6, 7))


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("tls", 465), ("none", 25)])
def test_port_defaults_by_security(security: str, port: int) -> None:
    assert mailbox(security=security, smtp_host="127.0.0.1").smtp_port == port


def test_explicit_port_wins() -> None:
    assert mailbox(security="tls", smtp_port=2465).smtp_port == 2465


@pytest.mark.parametrize(
    ("host", "provider"),
    [("smtp.gmail.com", "gmail"), ("smtp.googlemail.com", "gmail"), ("aspmx.l.google.com", "gmail"),
     ("smtp.office365.com", "outlook"), ("smtp-mail.outlook.com", "outlook"),
     ("smtp.live.com", "outlook"), ("smtp.hotmail.com", "outlook"),
     ("smtp.mail.yahoo.com", "yahoo"), ("smtp.delivery.com", "other"), ("mail.example.org", "other")],
)
def test_provider_detected_from_host(host: str, provider: str) -> None:
    assert mailbox(smtp_host=host).provider == provider


def test_explicit_provider_wins() -> None:
    assert mailbox(smtp_host="relay.example.com", provider="gmail").provider == "gmail"


def test_email_is_validated_and_normalized() -> None:
    assert mailbox(email="Ada.Lovelace@Example.COM").email == "Ada.Lovelace@example.com"


def test_invalid_email_is_rejected() -> None:
    assert "not a valid address" in error_text(email="sales.example.com")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.3.2.1", "::1", "LOCALHOST"])
def test_security_none_allowed_on_loopback(host: str) -> None:
    assert mailbox(security="none", smtp_host=host).security == "none"


@pytest.mark.parametrize("host", ["smtp.example.com", "10.0.0.5", "localhost.example.com", "128.0.0.1"])
def test_security_none_rejected_off_loopback(host: str) -> None:
    assert "only for a loopback host" in error_text(security="none", smtp_host=host)


def test_password_and_password_env_exclusive() -> None:
    assert "not both" in error_text(password="x", password_env="SMTP_PASSWORD")


def test_password_env_keeps_only_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "the-secret")
    spec = mailbox(password_env="SMTP_PASSWORD")
    assert spec.password is None and "the-secret" not in spec.model_dump_json()


def test_password_env_must_be_a_variable_name() -> None:
    assert "not an environment variable name" in error_text(password_env="MY-PASS")


@pytest.mark.parametrize("field", ["id", "email", "smtp_host", "username", "password", "timezone"])
@pytest.mark.parametrize("bad", ["\r", "\n", "\x00"])
def test_control_characters_rejected_in_every_string(field: str, bad: str) -> None:
    value = {"id": "mb", "email": "me@example.com", "smtp_host": "smtp.example.com",
             "username": "me", "password": "pw", "timezone": "UTC"}[field]
    with pytest.raises(ValidationError) as info:
        mailbox(**{field: value[:1] + bad + value[1:]})
    assert info.value.errors()[0]["loc"][0] == field


def test_unknown_field_rejected() -> None:
    assert "Extra inputs are not permitted" in error_text(dialy_limit=5)


@pytest.mark.parametrize("slug", ["", "a b", "a.b", "x" * 65, "é"])
def test_id_must_be_a_slug(slug: str) -> None:
    assert "is not an id" in error_text(id=slug)


@pytest.mark.parametrize("limit", [0, -1])
def test_daily_limit_must_be_positive(limit: int) -> None:
    error_text(daily_limit=limit)


def test_window_round_trips_through_a_dump() -> None:
    spec = mailbox(window={"start": "09:00", "end": "24:00", "days": ["sat", "sun"]})
    assert MailboxSpec.model_validate(spec.model_dump()) == spec


def test_timezone_validated() -> None:
    assert mailbox(timezone="America/New_York").timezone == "America/New_York"
    assert "unknown time zone 'Mars/Olympus'" in error_text(timezone="Mars/Olympus")


def test_window_parsed() -> None:
    window = mailbox(window={"start": "08:30", "end": "24:00", "days": ["mon", "Fri"]}).window
    assert (window.start, window.end, window.days) == (time(8, 30), time.max, (1, 5))


@pytest.mark.parametrize(
    ("window", "message"),
    [({"start": "24:00"}, "not a time of day"), ({"end": "24:01"}, "not a time of day"),
     ({"start": "9h"}, "not a time of day"), ({"start": "10:00", "end": "09:00"}, "start before"),
     ({"days": ["mon", "funday"]}, "unknown day 'funday'"), ({"days": [0]}, "unknown day 0"),
     ({"days": []}, "at least one day"),
     ({"days": "mon"}, "list of days")],
)
def test_bad_windows_rejected(window: dict[str, Any], message: str) -> None:
    assert message in error_text(window=window)


def test_file_as_list_with_yaml_times(tmp_path: Path) -> None:
    specs = load_mailboxes_file(FIXTURES / "mailboxes.yaml")
    assert [s.id for s in specs] == ["sales-1", "local_2"]
    # An unquoted 9:00 is base-60 integer in YAML 1.1; the loader keeps it a time.
    assert specs[0].window.start == time(9, 0) and specs[0].window.end == time(17, 30)
    assert specs[0].password_env == "SALES_1_SMTP_PASSWORD" and specs[0].provider == "gmail"


def test_file_as_mapping(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("mailboxes:\n  - {id: a, email: a@example.com, smtp_host: smtp.example.com}\n")
    assert [s.id for s in load_mailboxes_file(path)] == ["a"]


def test_file_with_duplicate_ids_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "- {id: a, email: a@example.com, smtp_host: smtp.example.com}\n"
        "- {id: a, email: b@example.com, smtp_host: smtp.example.com}\n"
    )
    with pytest.raises(SpecError) as info:
        load_mailboxes_file(path)
    assert str(info.value) == (
        f"{path}: mailboxes[2] (line 2): id 'a' is already used by mailboxes[1] (line 1)"
    )


def test_file_collects_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "- id: a\n"
        "  email: not-an-address\n"
        "  smtp_host: smtp.example.com\n"
        "  security: none\n"
        "- id: b\n"
        "  email: b@example.com\n"
        "  smtp_host: smtp.example.com\n"
        "  timezone: Nowhere/Town\n"
    )
    with pytest.raises(SpecError) as info:
        load_mailboxes_file(path)
    lines = str(info.value).splitlines()
    assert [p.location for p in info.value.problems] == [
        "mailboxes[1].email (line 2)", "mailboxes[1].security (line 4)",
        "mailboxes[2].timezone (line 8)",
    ]
    assert lines[0].startswith(f"{path}: mailboxes[1].email (line 2): not a valid address")


def test_file_that_is_not_a_list_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("id: a\n")
    with pytest.raises(SpecError, match="must be a list of mailboxes"):
        load_mailboxes_file(path)
