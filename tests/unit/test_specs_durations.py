import pytest

from specs.durations import parse_delay


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("30s", 30), ("15m", 900), ("2h", 7200), ("3d", 259200), ("1d12h", 129600),
     ("1h30m15s", 5415), (" 2h ", 7200), ("0s", 0)],
)
def test_parse_delay_reads_units(text: str, seconds: int) -> None:
    assert parse_delay(text) == seconds


@pytest.mark.parametrize("text", ["", "3", "3w", "d", "-1d", "1.5h", "12h1d", "1d 12h", "3D", "1d1d"])
def test_parse_delay_rejects_what_is_not_a_delay(text: str) -> None:
    with pytest.raises(ValueError, match="not a delay"):
        parse_delay(text)


def test_parse_delay_rejects_more_than_a_year() -> None:
    with pytest.raises(ValueError, match="365 days"):
        parse_delay("400d")
