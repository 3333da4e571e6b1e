"""The webhook's settings: a URL shown only as scheme, host and path; no webhook without a
secret (inbox/webhook.py, config/logs.py, docs/decisions/0047)."""

from __future__ import annotations

import pytest

from config.logs import redact_url, redact_urls
from inbox.webhook import WebhookMisconfigured, check_config


@pytest.mark.parametrize(("url", "shown"), [
    ("https://crm.example.com/hooks/outreach?token=s3cr3t#frag", "https://crm.example.com/hooks/outreach"),
    ("https://ann:pa55@crm.example.com:8443/h?token=s3cr3t", "https://crm.example.com:8443/h"),
    ("http://[::1]:8080/h?token=s3cr3t", "http://[::1]:8080/h"),
    ("http://127.0.0.1:99999/hook?token=s3cr3t", "http://127.0.0.1:99999/hook"),
    # Malformed: what cannot be told apart from a password is not shown.
    ("http://[::1/hook?token=s3cr3t", "http://[malformed host]"),
    ("http://ann:pa?55@crm.example.com/h", "http://[malformed host]"),
    ("http://ann:pa/55@crm.example.com/h", "http://[malformed host]"),
    ("http:///hook?token=s3cr3t", "http://[malformed host]"),
    ("crm.example.com/hook?token=s3cr3t", "[not a URL]"),
    ("", "[not a URL]"),
])
def test_a_url_is_shown_without_userinfo_query_or_fragment(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_inside_a_message_are_redacted() -> None:
    message = "Cannot connect to http://ann:pa55@h.example/x?token=s3cr3t (see https://h2.example/y#z)"
    assert redact_urls(message) == "Cannot connect to http://h.example/x (see https://h2.example/y)"


@pytest.mark.parametrize("secret", ["", "   "])
def test_no_secret_is_refused_naming_the_setting(secret: str) -> None:
    with pytest.raises(WebhookMisconfigured, match="OUTREACH_WEBHOOK_SECRET is empty"):
        check_config("https://crm.example.com/hook", secret)


@pytest.mark.parametrize("url", ["crm.example.com/hook?token=s3cr3t", "ftp://crm.example.com/h?token=s3cr3t",
                                 "http://127.0.0.1:99999/hook?token=s3cr3t", "http://[::1/hook?token=s3cr3t",
                                 "http:///hook?token=s3cr3t"])
def test_a_url_that_is_not_one_is_refused_without_its_query(url: str) -> None:
    with pytest.raises(WebhookMisconfigured, match="is not an http\\(s\\) URL with a host") as refused:
        check_config(url, "a-long-random-secret")
    assert "s3cr3t" not in str(refused.value) and "token" not in str(refused.value)
