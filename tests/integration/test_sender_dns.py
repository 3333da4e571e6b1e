"""Sender domain checks (`outreach mailboxes check-dns`, and the health check's warning)
against a real DNS server on loopback (tests/localdns.py) with good and bad zones."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.health import MailboxHealth
from activities.maintenance_models import HealthCheckInput
from config.settings import Settings
from localsmtp.server import LocalSmtpServer
from mail.oauth import HttpTokenEndpoint
from mail.sender_dns import TxtLookup, check_sender, parse_resolver
from mail.transport import SmtpTimeouts
from specs import SpecError
from specs.loading import load_mailboxes_file
from store.importer import import_mailboxes
from tests.factories import add_mailbox
from tests.integration.test_cli import outreach
from tests.localdns import LocalDns

KEY = "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA" + "x" * 690  # a 4096-bit key's length
DKIM = "v=DKIM1; k=rsa; p=" + KEY
DKIM_STRINGS = [DKIM[i:i + 255] for i in range(0, len(DKIM), 255)]  # as a zone splits it
ZONES: dict[str, list[list[str]]] = {
    # good: strict SPF, a DKIM key too long for one string (and for a UDP answer), p=reject
    "good.example": [["v=spf1 ip4:192.0.2.10 include:_spf.mail.example -all"],
                     ["google-site-verification=abc"]],
    "s1._domainkey.good.example": [DKIM_STRINGS],
    "_dmarc.good.example": [["v=DMARC1; p=reject; rua=mailto:dmarc@good.example"]],
    # weak: neutral SPF, p=none, a revoked key
    "weak.example": [["v=spf1 include:_spf.mail.example ?all"]],
    "old._domainkey.weak.example": [["v=DKIM1; k=rsa; p="]],
    "_dmarc.weak.example": [["v=DMARC1; p=none"]],
    # bad: two SPF records, a key record without p=, no policy
    "bad.example": [["v=spf1 -all"], ["v=spf1 include:other.example ~all"]],
    "s1._domainkey.bad.example": [["v=DKIM1; k=rsa"]],
    "_dmarc.bad.example": [["v=DMARC1; rua=mailto:x@bad.example"]],
    # open: +all
    "open.example": [["v=spf1 +all"]],
}


@pytest.fixture
async def localdns() -> AsyncIterator[LocalDns]:
    server = LocalDns(ZONES, names={"empty.example"})  # empty.example: a name with no TXT
    await server.start()
    yield server
    await server.stop()


def levels(findings: list) -> dict[str, tuple[str, str]]:  # type: ignore[type-arg]
    return {f.record: (f.level, f.detail) for f in findings}


async def test_a_good_domain_passes_and_its_split_key_comes_whole_over_tcp(localdns: LocalDns) -> None:
    report = await check_sender(TxtLookup(localdns.address), "mb", "Ann@Good.Example", "s1")
    assert [(f.record, f.level) for f in report.findings] == [("spf", "ok"), ("dkim", "ok"), ("dmarc", "ok")]
    dkim = report.findings[1]
    assert dkim.name == "s1._domainkey.good.example" and dkim.value is not None and KEY in dkim.value
    assert localdns.truncated >= 1  # the key's answer did not fit a datagram: asked again over TCP
    assert report.findings[0].value == "v=spf1 ip4:192.0.2.10 include:_spf.mail.example -all"
    assert not report.errors


@pytest.mark.parametrize("email, selector, expected", [
    ("a@weak.example", "old", {"spf": ("warning", "?all"), "dkim": ("error", "revoked"),
                               "dmarc": ("warning", "p=none")}),
    ("a@bad.example", "s1", {"spf": ("error", "2 SPF records"), "dkim": ("error", "no p= tag"),
                             "dmarc": ("error", "no valid p= policy")}),
    ("a@empty.example", "s1", {"spf": ("error", "no SPF record"), "dkim": ("error", "no DKIM key record"),
                               "dmarc": ("error", "no DMARC record")}),
    ("a@nowhere.example", None, {"spf": ("error", "no SPF record"), "dkim": ("warning", "not checked"),
                                 "dmarc": ("error", "no DMARC record")}),
    ("a@open.example", None, {"spf": ("error", "+all"), "dkim": ("warning", "no dkim_selector"),
                              "dmarc": ("error", "no DMARC record")}),
])
async def test_missing_and_weak_records_are_named(
    localdns: LocalDns, email: str, selector: str | None, expected: dict[str, tuple[str, str]],
) -> None:
    report = await check_sender(TxtLookup(localdns.address), "mb", email, selector)
    found = levels(report.findings)
    assert {k: v[0] for k, v in found.items()} == {k: v[0] for k, v in expected.items()}
    for record, (_, says) in expected.items():
        assert says in found[record][1], found[record]


async def test_a_server_that_does_not_answer_is_an_error_not_a_hang() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a port nobody answers on
        s.bind(("127.0.0.1", 0))
        silent = s.getsockname()[1]
        report = await check_sender(TxtLookup(f"127.0.0.1:{silent}"), "mb", "a@good.example", "s1")
    assert {f.level for f in report.findings} == {"error"}
    assert all("lookup failed" in f.detail for f in report.findings)


@pytest.mark.parametrize("value, parsed", [
    ("", None), ("127.0.0.1:5353", ("127.0.0.1", 5353)), ("10.0.0.1", ("10.0.0.1", 53)),
    ("[::1]:53", ("::1", 53)), ("::1", ("::1", 53)),
])
def test_the_resolver_setting(value: str, parsed: tuple[str, int] | None) -> None:
    assert parse_resolver(value) == parsed


@pytest.mark.parametrize("bad", ["127.0.0.1:0", "127.0.0.1:x", ":53", "host:70000"])
def test_a_malformed_resolver_setting_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="OUTREACH_DNS_RESOLVER"):
        parse_resolver(bad)


MAILBOXES = """mailboxes:
  - {{id: good, email: ann@good.example, smtp_host: 127.0.0.1, security: none, dkim_selector: s1{extra}}}
  - {{id: weak, email: bob@weak.example, smtp_host: 127.0.0.1, security: none, dkim_selector: old}}
"""


async def test_the_command_prints_a_table_or_json_and_fails_when_a_record_is_missing(
    db: asyncpg.Pool, settings: Settings, tmp_path: Path, localdns: LocalDns,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(MAILBOXES.format(extra=""))
    await import_mailboxes(db, load_mailboxes_file(path))
    assert await db.fetchval("SELECT dkim_selector FROM mailboxes WHERE id = 'weak'") == "old"
    monkeypatch.setenv("OUTREACH_DNS_RESOLVER", localdns.address)

    one = await outreach(settings, "mailboxes", "check-dns", "good")
    assert one.returncode == 0, one.stderr
    assert "good  good.example" in one.stdout and "DKIM   ok" in one.stdout
    every = await outreach(settings, "mailboxes", "check-dns", "--json")
    assert every.returncode == 1, every.stderr
    reports = {r["mailbox"]: r for r in json.loads(every.stdout)}
    assert reports["good"]["ok"] and not reports["weak"]["ok"]
    assert [(f["record"], f["level"]) for f in reports["weak"]["findings"]] == [
        ("spf", "warning"), ("dkim", "error"), ("dmarc", "warning")]
    table = await outreach(settings, "mailboxes", "check-dns", "weak")
    assert table.returncode == 1 and "DKIM   error    empty p=: the key is revoked" in table.stdout

    unknown = await outreach(settings, "mailboxes", "check-dns", "nope")
    assert unknown.returncode == 2 and "mailbox 'nope' does not exist" in unknown.stderr
    monkeypatch.setenv("OUTREACH_DNS_RESOLVER", "127.0.0.1:notaport")
    malformed = await outreach(settings, "mailboxes", "check-dns")
    assert malformed.returncode == 2 and "OUTREACH_DNS_RESOLVER" in malformed.stderr


def test_a_bad_dkim_selector_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mailboxes.yaml"
    path.write_text(MAILBOXES.format(extra="").replace("dkim_selector: s1", "dkim_selector: 's 1'"))
    with pytest.raises(SpecError) as err:
        load_mailboxes_file(path)
    assert str(path) in str(err.value) and "dkim_selector" in str(err.value)
    assert "not a DKIM selector" in str(err.value)


def dns_gauge(record: str) -> float | None:
    return REGISTRY.get_sample_value("outreach_sender_dns_problems", {"record": record})


async def test_the_health_check_logs_and_counts_dns_problems_and_pauses_nothing(
    db: asyncpg.Pool, inbox: LocalSmtpServer, localdns: LocalDns, dev_server: WorkflowEnvironment,
    settings: Settings,
) -> None:
    await add_mailbox(db, "mb-good", inbox.port)
    await add_mailbox(db, "mb-weak", inbox.port)
    for mailbox_id, domain, selector in (("mb-good", "good", "s1"), ("mb-weak", "weak", "old")):
        await db.execute("UPDATE mailboxes SET email = $2, dkim_selector = $3 WHERE id = $1",
                         mailbox_id, f"mb@{domain}.example", selector)
    health = MailboxHealth(db, dev_server.client, settings.task_queue, SmtpTimeouts(5, 5, 5),
                           HttpTokenEndpoint(), dns=TxtLookup(localdns.address))
    result = await ActivityEnvironment().run(health.check_mailboxes, HealthCheckInput())
    assert (result.checked, result.healthy, result.paused) == (2, 2, [])
    assert (dns_gauge("spf"), dns_gauge("dkim"), dns_gauge("dmarc")) == (0, 1, 0)
    assert await db.fetchval("SELECT count(*) FROM mailboxes WHERE paused") == 0

    localdns.txt.pop("_dmarc.good.example.")
    await ActivityEnvironment().run(health.check_mailboxes, HealthCheckInput())
    assert dns_gauge("dmarc") == 1
