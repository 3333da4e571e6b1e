"""Sender identity and unsubscribe fields in the mailboxes and campaign files."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from specs import SpecError
from specs.campaigns import CampaignSpec, resolve_campaign
from specs.mailboxes import MailboxSpec

MAILBOX: dict[str, Any] = {"id": "mb", "email": "jane@sender.example", "smtp_host": "smtp.example.com",
                           "password": "x"}
CAMPAIGN: dict[str, Any] = {"name": "c", "workspace": "ws", "mailboxes": ["mb"],
                            "steps": [{"subject": "Hi", "body": "Hello"}],
                            "prospects": [{"email": "bob@example.org"}]}


def test_mailbox_identity_fields_default_to_none_and_are_validated() -> None:
    plain = MailboxSpec.model_validate(MAILBOX)
    assert (plain.from_name, plain.reply_to, plain.unsubscribe_mailto) == (None, None, None)
    spec = MailboxSpec.model_validate({**MAILBOX, "from_name": "Jane Dœ", "reply_to": "Replies@Example.org",
                                       "unsubscribe_mailto": "optout@example.org"})
    assert spec.from_name == "Jane Dœ" and spec.reply_to == "Replies@example.org"


@pytest.mark.parametrize("field, value", [
    ("from_name", "Jane\r\nBcc: x@example.org"),
    ("from_name", ""),
    ("from_name", "x" * 101),
    ("reply_to", "not an address"),
    ("unsubscribe_mailto", "optout@example.org\nBcc: x@example.org"),
])
def test_bad_identity_values_are_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        MailboxSpec.model_validate({**MAILBOX, field: value})


def test_campaign_unsubscribe_mode_and_from_name() -> None:
    assert CampaignSpec.model_validate(CAMPAIGN).unsubscribe == "header"
    spec = CampaignSpec.model_validate({**CAMPAIGN, "unsubscribe": "header_and_footer", "from_name": "Sales"})
    assert (spec.unsubscribe, spec.from_name) == ("header_and_footer", "Sales")
    with pytest.raises(ValidationError, match="unsubscribe"):
        CampaignSpec.model_validate({**CAMPAIGN, "unsubscribe": "footer"})


def test_a_template_may_use_unsubscribe_url_without_a_prospect_field() -> None:
    steps = [{"subject": "Hi", "body": "Hello\n\nNot interested? {{ unsubscribe_url }}"}]
    loaded = resolve_campaign(CampaignSpec.model_validate({**CAMPAIGN, "steps": steps}))
    assert len(loaded.prospects) == 1
    with pytest.raises(SpecError, match="unsubscribe_link"):  # a misspelling is still caught
        resolve_campaign(CampaignSpec.model_validate(
            {**CAMPAIGN, "steps": [{"subject": "Hi", "body": "{{ unsubscribe_link }}"}]}))
