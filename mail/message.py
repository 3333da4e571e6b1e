"""Building one outgoing email: checked headers, threading, a stable Message-ID.

Nothing here trusts its input, even though imports check the same things
(specs/): a value changed in the database after import meets the same rules.
Every value that becomes a header is checked for CR, LF and NUL (header
injection), addresses are validated by email_validator rather than by the SMTP
library's parsing (aiosmtplib quietly cuts ``a@example.com>x@evil.example``
short), and subject and body sizes are bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict

from mail.errors import HeaderInjection, InvalidAddress, InvalidMessage

_FORBIDDEN = re.compile(r"[\r\n\x00]")
# Ceilings above any import setting (OUTREACH_MAX_SUBJECT_CHARS, _MAX_BODY_BYTES):
# RFC 5322's line length for the subject, and a body no cold email comes near.
MAX_SUBJECT_CHARS = 998
MAX_BODY_BYTES = 1_000_000
# <id-left@id-right> with no spaces, brackets or second "@" (RFC 5322 msg-id, dot-atom form).
_MSG_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")
_ID_PART = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
# A URI inside List-Unsubscribe's angle brackets: printable ASCII, no spaces or brackets.
_LIST_URI = re.compile(r"(https?://|mailto:)[!-;=?-~]+")
_MAX_LINE = 998  # RFC 5322's hard limit on a header line
ONE_CLICK = "List-Unsubscribe=One-Click"


class OutgoingMail(BaseModel):
    model_config = ConfigDict(frozen=True)

    from_address: str
    to_address: str
    subject: str
    body: str  # plain text
    message_id: str  # full "<...@...>" form
    in_reply_to: str | None = None
    references: list[str] = []
    from_name: str | None = None  # display name shown with from_address
    reply_to: str | None = None
    # List-Unsubscribe (RFC 2369): the one-click https address (RFC 8058, which adds
    # List-Unsubscribe-Post), the mailto form, or both (mail/unsubscribe.py builds them).
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None


def message_id_for(
    campaign_id: str, step: int, prospect_id: int, domain: str, key: bytes | None = None
) -> str:
    """The Message-ID of one send: the same send always gets the same id.

    `domain` is usually the mailbox's; an internationalised one is punycoded.
    With ``key`` (the key ring's message-id key) the digest is an HMAC, so nobody
    without the key can write the id of a send they did not receive, e.g. in a
    forged References header (docs/decisions/0036). Each send's id is fixed in its
    ledger row when it is claimed: changing this changes only sends claimed later."""
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidMessage(f"invalid domain {domain!r}") from exc
    if not _ID_PART.fullmatch(campaign_id) or not _ID_PART.fullmatch(domain):
        raise InvalidMessage("campaign id and domain must be dot-atoms of [A-Za-z0-9_-]")
    send_key = f"{campaign_id}.{step}.{prospect_id}"
    if key is None:
        digest = hashlib.sha256(send_key.encode()).hexdigest()[:12]
    else:
        digest = hmac.new(key, send_key.encode(), hashlib.sha256).hexdigest()[:24]
    return f"<{send_key}.{digest}@{domain}>"


def normalize_address(address: str) -> str:
    """The address in ASCII form (IDN domains punycoded), or InvalidAddress.

    SMTPUTF8 (non-ASCII local parts) is refused: not every submission server
    offers it, and a refusal at RCPT would look like the recipient's fault.
    """
    _check_header_value("address", address)
    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid address {address!r}: {exc}") from exc
    return valid.ascii_email or valid.normalized


def build_message(mail: OutgoingMail, now: datetime | None = None) -> bytes:
    """The message as bytes for DATA (CRLF line ends, quoted-printable UTF-8 body)."""
    _check_headers(mail)
    _check_sizes(mail)
    # refold_source="none": the raw List-Unsubscribe below keeps the folding it is given
    # (the default refolds a long one into encoded words, which no receiver reads as
    # URIs); it touches no other header, since only raw ones are refolded from source.
    msg = EmailMessage(policy=SMTP.clone(refold_source="none"))
    msg["From"] = _from_header(mail)
    msg["To"] = _address("to_address", mail.to_address)
    if mail.reply_to is not None:
        msg["Reply-To"] = _address("reply_to", mail.reply_to)
    msg["Subject"] = mail.subject.strip()  # a trailing space folds into a blank line
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = mail.message_id
    if mail.in_reply_to is not None:
        msg["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        msg["References"] = " ".join(mail.references)
    _list_unsubscribe(msg, mail)
    msg["MIME-Version"] = "1.0"
    msg.set_content(mail.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


def _list_unsubscribe(msg: EmailMessage, mail: OutgoingMail) -> None:
    """List-Unsubscribe, one URI per line; List-Unsubscribe-Post only with an http(s)
    URI to post to (RFC 8058 section 3.1)."""
    uris = [u for u in (mail.unsubscribe_url, mail.unsubscribe_mailto) if u is not None]
    if not uris:
        return
    named = (("unsubscribe_url", mail.unsubscribe_url), ("unsubscribe_mailto", mail.unsubscribe_mailto))
    for name, uri in named:
        if uri is not None and not _LIST_URI.fullmatch(uri):
            raise InvalidMessage(f"{name} is not a URI List-Unsubscribe can carry: {uri[:100]!r}")
    if mail.unsubscribe_url is not None and not mail.unsubscribe_url.startswith(("http://", "https://")):
        raise InvalidMessage("unsubscribe_url must be an http(s) address")
    if mail.unsubscribe_mailto is not None and not mail.unsubscribe_mailto.startswith("mailto:"):
        raise InvalidMessage("unsubscribe_mailto must be a mailto: address")
    value = ",\r\n ".join(f"<{u}>" for u in uris)
    if any(len(line) > _MAX_LINE - len("List-Unsubscribe: ") for line in value.split("\r\n")):
        raise InvalidMessage(f"List-Unsubscribe is longer than a header line may be ({_MAX_LINE})")
    msg.set_raw("List-Unsubscribe", value)
    if mail.unsubscribe_url is not None:
        msg["List-Unsubscribe-Post"] = ONE_CLICK


def _from_header(mail: OutgoingMail) -> str:
    address = _address("from_address", mail.from_address)
    if not mail.from_name:
        return address
    # Address quotes and encodes the display name; a bare f-string would not.
    local, _, domain = address.rpartition("@")
    return str(Address(display_name=mail.from_name, username=local, domain=domain))


def _address(name: str, value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidAddress as exc:
        raise InvalidAddress(f"{name}: {exc}") from exc


def _check_sizes(mail: OutgoingMail) -> None:
    if len(mail.subject) > MAX_SUBJECT_CHARS:
        raise InvalidMessage(f"subject is {len(mail.subject)} characters, over {MAX_SUBJECT_CHARS}")
    size = len(mail.body.encode())
    if size > MAX_BODY_BYTES:
        raise InvalidMessage(f"body is {size} bytes, over {MAX_BODY_BYTES}")
    if "\x00" in mail.body:
        raise InvalidMessage("body contains NUL")


def _check_headers(mail: OutgoingMail) -> None:
    values: dict[str, str | None] = {
        "from_address": mail.from_address,
        "from_name": mail.from_name,
        "to_address": mail.to_address,
        "subject": mail.subject,
        "message_id": mail.message_id,
        "in_reply_to": mail.in_reply_to,
        "reply_to": mail.reply_to,
        "unsubscribe_url": mail.unsubscribe_url,
        "unsubscribe_mailto": mail.unsubscribe_mailto,
    }
    values.update({f"references[{i}]": ref for i, ref in enumerate(mail.references)})
    for name, value in values.items():
        if value is not None:
            _check_header_value(name, value)
    _check_message_ids(_ids(mail))


def _ids(mail: OutgoingMail) -> Iterable[tuple[str, str]]:
    yield "message_id", mail.message_id
    if mail.in_reply_to is not None:
        yield "in_reply_to", mail.in_reply_to
    for ref in mail.references:
        yield "references", ref


def _check_message_ids(ids: Iterable[tuple[str, str]]) -> None:
    for name, value in ids:
        if not _MSG_ID.fullmatch(value):
            raise InvalidMessage(f"{name} is not a message id in <left@right> form: {value!r}")


def _check_header_value(name: str, value: str) -> None:
    if _FORBIDDEN.search(value):
        raise HeaderInjection(f"{name} contains CR, LF or NUL")
