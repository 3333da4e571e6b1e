"""Mailboxes: the SMTP accounts campaigns send from, and when each may send."""

from __future__ import annotations

import ipaddress
import re
from datetime import time
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.settings import get_settings
from specs.scalars import Address, DisplayName, OneLine, Slug, SpecModel

Provider = Literal["gmail", "outlook", "yahoo", "other"]
Security = Literal["tls", "starttls", "none"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # position + 1 = ISO weekday
_DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}
# Matched against whole labels of the host name, so "delivery.com" is not "live".
_PROVIDER_LABELS: tuple[tuple[Provider, frozenset[str]], ...] = (
    ("gmail", frozenset({"gmail", "googlemail", "google"})),
    ("outlook", frozenset({"office365", "outlook", "hotmail", "live"})),
    ("yahoo", frozenset({"yahoo"})),
)
_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,253}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
# A DKIM selector: one or more DNS labels (RFC 6376 3.1), as `<selector>._domainkey.<domain>`.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DKIM_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def detect_provider(smtp_host: str) -> Provider:
    labels = set(smtp_host.lower().rstrip(".").split("."))
    return next((name for name, known in _PROVIDER_LABELS if labels & known), "other")


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _check_host(value: str) -> str:
    if not _HOST.fullmatch(value):
        raise ValueError(f"{value!r} is not a host name or IP address")
    return value


def _check_env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _check_dkim_selector(value: str) -> str:
    if len(value) > 63 or not _DKIM_SELECTOR.fullmatch(value):
        raise ValueError(f"{value!r} is not a DKIM selector (DNS labels: letters, digits, '-', '.')")
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        hint = "use an IANA name, e.g. Europe/Paris"
        raise ValueError(f"unknown time zone {value!r} ({hint})") from exc
    return value


def _clock(value: Any, *, end: bool) -> Any:
    if not isinstance(value, str):
        return value
    match = _CLOCK.fullmatch(value.strip())
    hour, minute = (int(match[1]), int(match[2])) if match else (-1, -1)
    if end and (hour, minute) == (24, 0):
        return time.max  # the end of the day; PostgreSQL's 24:00 does not decode to a time
    if not (0 <= hour < 24 and 0 <= minute < 60):
        latest = "24:00" if end else "23:59"
        raise ValueError(f"{value!r} is not a time of day (HH:MM, 00:00 to {latest})")
    return time(hour, minute)


def _iso_weekday(day: Any) -> int:
    if isinstance(day, str) and day.lower() in DAYS:
        return DAYS.index(day.lower()) + 1
    if isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 7:
        return day  # already ISO, as in a dumped spec
    raise ValueError(f"unknown day {day!r}: use {', '.join(DAYS)}")


class WindowSpec(SpecModel):
    """Hours of the mailbox's local day in which it may send; ``end`` 24:00 is ``time.max``."""

    start: time = time(0, 0)
    end: time = time.max
    days: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)  # ISO weekdays, 1 = Monday

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        return _clock(value, end=False)

    @field_validator("end", mode="before")
    @classmethod
    def _end(cls, value: Any) -> Any:
        return _clock(value, end=True)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(f"must be a list of days out of {', '.join(DAYS)}")
        if not value:
            raise ValueError("must name at least one day")
        return tuple(sorted({_iso_weekday(day) for day in value}))


    @model_validator(mode="after")
    def _opens_before_it_closes(self) -> Self:
        if self.start >= self.end:
            raise ValueError("the window must start before it ends")
        return self


class WarmupSpec(SpecModel):
    """A new mailbox's ramp: ``start`` sends on its first day, ``increment`` more each day,
    never above ``daily_limit``."""

    start: int = Field(gt=0)
    increment: int = Field(default=0, ge=0)


class OAuthSpec(SpecModel):
    """XOAUTH2 instead of a password (Google Workspace, Microsoft 365). The worker
    refreshes the access token from the refresh token before it expires."""

    provider: Literal["google", "microsoft"]
    client_id: OneLine
    client_secret: OneLine | None = None
    refresh_token: OneLine


class MailboxSpec(SpecModel):
    """One SMTP account. A password is either given or named by ``password_env``,
    whose value the worker reads from its own environment at send time."""

    id: Slug
    email: Address
    provider: Provider = "other"  # detected from smtp_host when left out
    smtp_host: Annotated[OneLine, AfterValidator(_check_host)]
    smtp_port: int = Field(default=587, ge=1, le=65535)  # chosen by security when left out
    security: Security = "starttls"
    username: OneLine | None = None
    password: OneLine | None = None
    password_env: Annotated[OneLine, AfterValidator(_check_env_name)] | None = None
    daily_limit: int = Field(default_factory=lambda: get_settings().default_daily_limit, gt=0)
    timezone: Annotated[OneLine, AfterValidator(_check_timezone)] = "UTC"
    window: WindowSpec = Field(default_factory=WindowSpec)
    warmup: WarmupSpec | None = None
    oauth: OAuthSpec | None = None
    # Sender identity (docs/decisions/0031): the From header's display name, a
    # Reply-To address, and where the List-Unsubscribe mailto form writes
    # (default: this mailbox).
    from_name: DisplayName | None = None
    reply_to: Address | None = None
    unsubscribe_mailto: Address | None = None
    # The DKIM selector the sending domain publishes a key under, for `mailboxes check-dns`.
    dkim_selector: Annotated[OneLine, AfterValidator(_check_dkim_selector)] | None = None
    # Reading replies and bounces (inbox/, README "Inbox"): all optional; without
    # imap_host the inbox is not read. Credentials default to the SMTP ones.
    imap_host: Annotated[OneLine, AfterValidator(_check_host)] | None = None
    imap_port: int | None = Field(default=None, ge=1, le=65535)  # by imap_security when left out
    imap_security: Security = "tls"
    imap_username: OneLine | None = None
    imap_password: OneLine | None = None
    imap_password_env: Annotated[OneLine, AfterValidator(_check_env_name)] | None = None
    imap_folders: list[Annotated[OneLine, Field(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: ["INBOX"], min_length=1, max_length=20)
    # Whose Authentication-Results header vouches for a sender (docs/decisions/0050):
    # the provider's authserv-id, or "topmost" for one that writes none (Microsoft 365).
    # Default by imap_host for Gmail and Microsoft 365; elsewhere none is believed.
    imap_authserv_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]{1,253}$")] | None = None

    @model_validator(mode="after")
    def _imap_settings(self) -> Self:
        check_imap(self)
        return self

    @model_validator(mode="after")
    def _oauth_needs_a_user_and_no_password(self) -> Self:
        if self.oauth is not None:
            if self.username is None:
                raise ValueError("oauth needs a username (the mailbox's address, usually)")
            if self.password is not None or self.password_env is not None:
                raise ValueError("give either oauth or a password, not both")
        return self

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        # Filled in before validation so provider and smtp_port are never None.
        if not isinstance(data, dict):
            return data
        host, security = data.get("smtp_host"), data.get("security", "starttls")
        filled = dict(data)
        if "provider" not in data and isinstance(host, str):
            filled["provider"] = detect_provider(host)
        if "smtp_port" not in data and isinstance(security, str) and security in _DEFAULT_PORTS:
            filled["smtp_port"] = _DEFAULT_PORTS[security]
        return filled

    @field_validator("security")
    @classmethod
    def _encrypted_off_this_host(cls, value: str, info: ValidationInfo) -> str:
        host = info.data.get("smtp_host")  # absent when the host itself was invalid
        if value == "none" and host is not None and not is_loopback(host):
            # Without TLS the password and every message cross the network in clear.
            raise ValueError(
                f"'none' is allowed only for a loopback host (localhost, 127.0.0.0/8, ::1),"
                f" not {host!r}: use tls or starttls"
            )
        return value

    @field_validator("password_env")
    @classmethod
    def _one_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("password") is not None:
            raise ValueError("give password or password_env, not both")
        return value


_IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}


def check_imap(spec: MailboxSpec) -> None:
    """Fill ``imap_port`` by security; refuse IMAP fields without a host, a plain
    connection off this host and two passwords (as for SMTP)."""
    if spec.imap_host is None:
        given = [n for n in ("imap_port", "imap_username", "imap_password", "imap_password_env",
                             "imap_authserv_id")
                 if getattr(spec, n) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} given without imap_host")
        return
    if spec.imap_security == "none" and not is_loopback(spec.imap_host):
        raise ValueError(
            f"imap_security 'none' is allowed only for a loopback host, not {spec.imap_host!r}:"
            " use tls or starttls"
        )
    if spec.imap_password is not None and spec.imap_password_env is not None:
        raise ValueError("give imap_password or imap_password_env, not both")
    if spec.imap_port is None:
        spec.imap_port = _IMAP_PORTS[spec.imap_security]
    if spec.imap_authserv_id is None:
        spec.imap_authserv_id = default_authserv_id(spec.imap_host)
    spec.imap_authserv_id = spec.imap_authserv_id.lower() if spec.imap_authserv_id else None


# The providers' own Authentication-Results, by their IMAP host. Gmail's names
# mx.google.com; Microsoft 365 (and Outlook.com) write theirs with no authserv-id at
# all ("Authentication-Results: spf=pass (sender IP is ...) ..."), prepended above
# whatever the sender wrote: "topmost".
_AUTHSERV_IDS = {
    "imap.gmail.com": "mx.google.com", "imap.googlemail.com": "mx.google.com",
    "outlook.office365.com": "topmost", "outlook.office.com": "topmost",
    "imap-mail.outlook.com": "topmost",
}


def default_authserv_id(imap_host: str) -> str | None:
    return _AUTHSERV_IDS.get(imap_host.lower().rstrip("."))
