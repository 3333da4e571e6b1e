"""Building one outgoing email: checked headers, threading, a stable Message-ID.

Nothing here trusts its input, even though imports check the same things
(specs/): a value changed in the database after import meets the same rules.
Every value that becomes a header is checked for CR, LF and NUL (header
injection), addresses are validated by email_validator rather than by the SMTP
library's parsing (aiosmtplib quietly cuts ``a@example.com>x@evil.example``
short), and subject and body sizes are bounded.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email import quoprimime
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
# refold_source="none": the raw List-Unsubscribe keeps the folding it is given (the
# default refolds a long one into encoded words, which no receiver reads as URIs); it
# touches no other header, since only raw ones are refolded from source.
_POLICY = SMTP.clone(refold_source="none")
_FOLD_AT = 78  # the policy's max_line_length: a longer header line is folded
# What the email package writes back unchanged: printable ASCII, single spaces, no
# edge spaces, nothing that looks like an RFC 2047 encoded word.
_PLAIN_VALUE = re.compile(r"(?!.*=\?)(?!.*  )[!-~]+( [!-~]+)*")
# A display name of atoms only (RFC 5322 atext), which needs no quotes.
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_NEWLINES = re.compile(r"\r\n|\r|\n")


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


@functools.lru_cache(maxsize=4096)  # pure; a mailbox's own addresses come back every send
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
    date = format_datetime(now or datetime.now(UTC))
    fast = _plain_message(mail, date)
    return fast if fast is not None else _policy_message(mail, date)


def _plain_message(mail: OutgoingMail, date: str) -> bytes | None:
    """The same bytes as `_policy_message` for the common message, written directly.

    The email package parses and re-renders every header it is given, a few
    milliseconds a message, a tenth of a worker's CPU. When every header is
    short printable ASCII that needs no quoting or encoding, its rendering is the
    value itself; anything else (an encoded subject, a display name that must be
    quoted, a line that folds) returns None and goes through the email package.
    tests/unit/test_message_fast_path.py checks the two agree byte for byte."""
    from_name = mail.from_name
    if from_name and not _PLAIN_PHRASE.fullmatch(from_name):
        return None
    from_address = _address("from_address", mail.from_address)
    headers = [("From", f"{from_name} <{from_address}>" if from_name else from_address),
               ("To", _address("to_address", mail.to_address))]
    if mail.reply_to is not None:
        headers.append(("Reply-To", _address("reply_to", mail.reply_to)))
    headers += [("Subject", mail.subject.strip()), ("Date", date)]
    lines = []
    for name, value in headers:
        line = f"{name}: {value}"
        if len(line) > _FOLD_AT or not _PLAIN_VALUE.fullmatch(value):
            return None
        lines.append(line)
    # A msg-id has no space to fold at: the email package writes it as it is.
    lines.append(f"Message-ID: {mail.message_id}")
    lines += [f"{name}: {value}" for name, value in _threading(mail)]
    unsubscribe = _list_unsubscribe(mail)
    if unsubscribe is not None:
        # Written raw and never refolded (_POLICY), as in _policy_message.
        lines.append(f"List-Unsubscribe: {unsubscribe}")
        if mail.unsubscribe_url is not None:
            lines.append(f"List-Unsubscribe-Post: {ONE_CLICK}")
    lines += ["MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"',
              "Content-Transfer-Encoding: quoted-printable", ""]
    # What email.contentmanager does for cte="quoted-printable", with CRLF line ends.
    body = b"\n".join(mail.body.encode("utf-8").splitlines()) + b"\n"
    encoded = quoprimime.body_encode(body.decode("latin-1"), _FOLD_AT)
    return ("\r\n".join(lines) + "\r\n" + _NEWLINES.sub("\r\n", encoded)).encode("ascii")


def _policy_message(mail: OutgoingMail, date: str) -> bytes:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = _from_header(mail)
    msg["To"] = _address("to_address", mail.to_address)
    if mail.reply_to is not None:
        msg["Reply-To"] = _address("reply_to", mail.reply_to)
    msg["Subject"] = mail.subject.strip()  # a trailing space folds into a blank line
    msg["Date"] = date
    msg["Message-ID"] = mail.message_id
    for name, value in _threading(mail):
        msg.set_raw(name, value)
    unsubscribe = _list_unsubscribe(mail)
    if unsubscribe is not None:
        msg.set_raw("List-Unsubscribe", unsubscribe)
        if mail.unsubscribe_url is not None:
            msg["List-Unsubscribe-Post"] = ONE_CLICK
    msg["MIME-Version"] = "1.0"
    msg.set_content(mail.body, subtype="plain", charset="utf-8", cte="quoted-printable")
    return msg.as_bytes()


def _threading(mail: OutgoingMail) -> list[tuple[str, str]]:
    """In-Reply-To and References, raw: the email package takes them for unstructured
    text and encodes a line over 78 characters as RFC 2047 words, which no mail
    client reads as message ids (the thread breaks). References folds between ids."""
    headers = []
    if mail.in_reply_to is not None:
        headers.append(("In-Reply-To", mail.in_reply_to))
    if mail.references:
        lines = [f"References: {mail.references[0]}"]
        for ref in mail.references[1:]:
            if len(lines[-1]) + 1 + len(ref) <= _FOLD_AT:
                lines[-1] += f" {ref}"
            else:
                lines.append(f" {ref}")
        headers.append(("References", "\r\n".join(lines).removeprefix("References: ")))
    return headers


def _list_unsubscribe(mail: OutgoingMail) -> str | None:
    """List-Unsubscribe's value, one URI per line, checked; None without URIs.
    List-Unsubscribe-Post goes with an http(s) URI only (RFC 8058 section 3.1)."""
    uris = [u for u in (mail.unsubscribe_url, mail.unsubscribe_mailto) if u is not None]
    if not uris:
        return None
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
    return value


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
