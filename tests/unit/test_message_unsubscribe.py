"""The List-Unsubscribe headers and the sender identity in a built message."""

from __future__ import annotations

from typing import Any

import pytest

from mail.errors import HeaderInjection, InvalidAddress, InvalidMessage
from mail.message import ONE_CLICK, build_message
from tests.unit.test_message import mail, parsed

TOKEN = "dTEfazEfYWNtZR9jbXAtMDEyMzQ1Njc4ORsyHzQxMjM0" * 2  # long: the header must not fold it
URL = f"https://unsubscribe.example.com/u/{TOKEN}"
MAILTO = f"mailto:jane@sender.example?subject=unsubscribe%20{TOKEN}"


def raw_headers(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


def test_both_forms_and_the_one_click_header_are_carried_unencoded() -> None:
    raw = build_message(mail(unsubscribe_url=URL, unsubscribe_mailto=MAILTO))
    msg = parsed(raw)
    assert str(msg["List-Unsubscribe"]) == f"<{URL}>, <{MAILTO}>"
    assert str(msg["List-Unsubscribe-Post"]) == ONE_CLICK == "List-Unsubscribe=One-Click"
    head = raw_headers(raw)
    assert "=?" not in head.split("List-Unsubscribe:", 1)[1].split("\r\nList-Unsubscribe-Post")[0]
    assert all(len(line) <= 998 for line in head.split("\r\n"))
    assert f"<{URL}>,\r\n <{MAILTO}>" in head  # folded between the URIs, never inside one


def test_without_a_url_only_the_mailto_form_and_no_one_click_header() -> None:
    msg = parsed(build_message(mail(unsubscribe_mailto=MAILTO)))
    assert str(msg["List-Unsubscribe"]) == f"<{MAILTO}>"
    assert msg["List-Unsubscribe-Post"] is None


def test_a_message_without_links_has_no_list_headers() -> None:
    msg = parsed(build_message(mail()))
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize("changes, error", [
    ({"unsubscribe_url": URL + "\r\nBcc: x@example.org"}, HeaderInjection),
    ({"unsubscribe_mailto": MAILTO + "\nX-Evil: 1"}, HeaderInjection),
    ({"unsubscribe_url": "https://u.example.com/u/a>, <https://evil.example/"}, InvalidMessage),
    ({"unsubscribe_url": "javascript:alert(1)"}, InvalidMessage),
    ({"unsubscribe_url": MAILTO}, InvalidMessage),
    ({"unsubscribe_mailto": URL}, InvalidMessage),
    ({"unsubscribe_url": "https://u.example.com/u/" + "a" * 990}, InvalidMessage),
    ({"reply_to": "replies@example.org\r\nBcc: x@example.org"}, HeaderInjection),
    ({"reply_to": "not an address"}, InvalidAddress),
])
def test_bad_link_or_reply_to_values_are_refused(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        build_message(mail(**changes))


def test_reply_to_and_a_non_ascii_display_name() -> None:
    raw = build_message(mail(from_name="Zoë Müller", reply_to="replies@bücher.de"))
    msg = parsed(raw)
    assert msg["From"].addresses[0].display_name == "Zoë Müller"
    assert str(msg["Reply-To"]) == "replies@xn--bcher-kva.de"
    assert raw_headers(raw).isascii() and "=?utf-8?" in raw_headers(raw)  # an encoded word
