"""The sending domain's DNS records that Gmail's and Yahoo's 2024 sender rules require:
SPF, DKIM and DMARC (`outreach mailboxes check-dns`, and the health check as a warning).

Each record is judged ``ok``, ``warning`` (published, but weaker than it should be) or
``error`` (missing, unusable, or not looked up). Nothing here writes anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.asyncresolver
import dns.exception
import dns.resolver

Record = Literal["spf", "dkim", "dmarc"]
Level = Literal["ok", "warning", "error"]
RECORDS: tuple[Record, ...] = ("spf", "dkim", "dmarc")
LOOKUP_SECONDS = 3.0  # per lookup, retries included: a health check must not hang on DNS


class DnsLookupFailed(Exception):
    """No answer: a timeout, SERVFAIL, or no server reachable."""


@dataclass(frozen=True)
class Finding:
    record: Record
    level: Level
    detail: str
    name: str  # the name looked up
    value: str | None = None  # the record found

    def as_json(self) -> dict[str, Any]:
        return {"record": self.record, "level": self.level, "detail": self.detail,
                "name": self.name, "value": self.value}


@dataclass(frozen=True)
class SenderReport:
    mailbox_id: str
    domain: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def as_json(self) -> dict[str, Any]:
        return {"mailbox": self.mailbox_id, "domain": self.domain, "ok": not self.errors,
                "findings": [f.as_json() for f in self.findings]}


def parse_resolver(address: str) -> tuple[str, int] | None:
    """``OUTREACH_DNS_RESOLVER``: ``host:port`` (``[v6]:port``), or ``host`` for port
    53; empty is the system's resolver (None)."""
    address = address.strip()
    if not address:
        return None
    host, sep, port = address.rpartition(":")
    if not sep or host.count(":") and not host.startswith("["):  # a bare IPv6 address, or no port
        host, port = address, "53"
    if not port.isdigit() or not 0 < int(port) < 65536 or not host.strip("[]"):
        raise ValueError(f"OUTREACH_DNS_RESOLVER: {address!r} is not host:port")
    return host.strip("[]"), int(port)


class TxtLookup:
    """TXT lookups through one resolver: ``OUTREACH_DNS_RESOLVER``'s, or the system's."""

    def __init__(self, address: str = "") -> None:
        server = parse_resolver(address)
        if server is None:
            self._resolver = dns.asyncresolver.Resolver()
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [server[0]]
            self._resolver.port = server[1]
        self._resolver.lifetime = LOOKUP_SECONDS

    async def txt(self, name: str) -> list[str]:
        """The TXT records at ``name``, each one's strings joined (a long DKIM key is
        split in 255-byte strings); empty when the name or the type does not exist."""
        try:
            answer = await self._resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers,
                dns.resolver.NoResolverConfiguration) as exc:
            raise DnsLookupFailed(f"no answer for {name} TXT ({exc.__class__.__name__})") from exc
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


async def check_sender(
    lookup: TxtLookup, mailbox_id: str, email: str, dkim_selector: str | None
) -> SenderReport:
    """SPF, DKIM (when the mailbox names its selector) and DMARC of the From domain."""
    domain = email.rsplit("@", 1)[1].rstrip(".").lower()
    report = SenderReport(mailbox_id, domain)
    checks: tuple[tuple[Record, str, Callable[[str, list[str]], Finding]], ...] = (
        ("spf", domain, _judge_spf),
        ("dkim", f"{dkim_selector}._domainkey.{domain}" if dkim_selector else "", _judge_dkim),
        ("dmarc", f"_dmarc.{domain}", _judge_dmarc),
    )
    async def one(record: Record, name: str, judge: Callable[[str, list[str]], Finding]) -> Finding:
        if not name:
            return Finding("dkim", "warning", "no dkim_selector in the mailbox's settings:"
                           " DKIM not checked", "")
        try:
            return judge(name, await lookup.txt(name))
        except DnsLookupFailed as exc:
            return Finding(record, "error", f"lookup failed: {exc}", name)

    # The three at once: a resolver that does not answer costs one timeout, not three.
    report.findings.extend(await asyncio.gather(*(one(*check) for check in checks)))
    return report


def _tags(value: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DKIM, DMARC), names lower-cased."""
    tags = {}
    for part in value.split(";"):
        key, sep, val = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(val.split())
    return tags


def _judge_spf(name: str, found: list[str]) -> Finding:
    spf = [v for v in found if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 ")]
    if not spf:
        return Finding("spf", "error", "no SPF record (TXT \"v=spf1 ...\")", name)
    if len(spf) > 1:
        return Finding("spf", "error", f"{len(spf)} SPF records: receivers treat that as a"
                       " permanent error; merge them into one", name, " | ".join(spf))
    value = spf[0]
    terms = value.lower().split()[1:]
    last = next((t for t in terms if t.lstrip("+-~?") == "all"), None)
    if last in ("all", "+all"):
        return Finding("spf", "error", "ends in +all: anyone may send as the domain", name, value)
    if last == "?all":
        return Finding("spf", "warning", "ends in ?all (neutral): receivers learn nothing from it",
                       name, value)
    if last is None and not any(t.startswith("redirect=") for t in terms):
        return Finding("spf", "warning", "no 'all' mechanism or redirect: other senders are"
                       " neutral, not refused", name, value)
    return Finding("spf", "ok", "published", name, value)


def _judge_dkim(name: str, found: list[str]) -> Finding:
    if not found:
        return Finding("dkim", "error", "no DKIM key record", name)
    value = found[0]
    tags = _tags(value)
    if tags.get("v", "DKIM1") != "DKIM1":
        return Finding("dkim", "error", f"v={tags['v']} is not DKIM1", name, value)
    if "p" not in tags:
        return Finding("dkim", "error", "no p= tag: the record holds no public key", name, value)
    if not tags["p"]:
        return Finding("dkim", "error", "empty p=: the key is revoked", name, value)
    return Finding("dkim", "ok", "key published", name, value)


def _judge_dmarc(name: str, found: list[str]) -> Finding:
    dmarc = [v for v in found if v.replace(" ", "").upper().startswith("V=DMARC1")]
    if not dmarc:
        return Finding("dmarc", "error", "no DMARC record (TXT \"v=DMARC1; p=...\")", name)
    if len(dmarc) > 1:
        return Finding("dmarc", "error", f"{len(dmarc)} DMARC records: receivers ignore them all",
                       name, " | ".join(dmarc))
    value = dmarc[0]
    policy = _tags(value).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Finding("dmarc", "error", "no valid p= policy (none, quarantine or reject)", name, value)
    if policy == "none":
        return Finding("dmarc", "warning", "p=none: enough for Gmail's and Yahoo's rules, but"
                       " it asks receivers to do nothing with failing mail", name, value)
    return Finding("dmarc", "ok", f"p={policy}", name, value)
