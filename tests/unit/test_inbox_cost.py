"""No message costs more than a bounded amount to classify (issue 22, item 3): the
shapes that froze the worker, each classified with its CPU time printed (never
asserted: the machine is shared) and its structural bounds asserted: what is decoded
is capped, what is parsed is capped, and the classifier still answers."""

from __future__ import annotations

import time
from email.header import decode_header

import pytest

from inbox import headers
from inbox.classify import Classified, InboundClass, Verdict, classify

OURS = "<cmp-1.1.7.k1abc@sender.example.com>"


def encoded_word_dsn(size: int) -> bytes:
    """A DSN whose one-line Diagnostic-Code holds ``size`` bytes of encoded words."""
    words = b"=?utf-8?q?a?= " * (size // 14)
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; pat@prospect.example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 " + words + b"\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: " + OURS.encode() + b"\r\n\r\n--b--\r\n"
    )


def long_subject(size: int) -> bytes:
    words = b"=?utf-8?q?a?= " * (size // 14)
    return b"From: pat@prospect.example.org\r\nSubject: " + words + b"\r\n\r\nhi\r\n"


def many_header_lines(lines: int) -> bytes:
    block = b"".join(b"X-Filler-%d: v\r\n" % n for n in range(lines))
    return b"From: pat@prospect.example.org\r\nSubject: hello\r\n" + block + b"\r\nhi\r\n"


def nested_parts(depth: int) -> bytes:
    opening = b"".join(b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (n, n + 1)
                       for n in range(depth))
    closing = b"".join(b"--b%d--\r\n" % n for n in reversed(range(depth + 1)))
    return (b'From: pat@prospect.example.org\r\nSubject: parts\r\nContent-Type: multipart/mixed;'
            b' boundary="b0"\r\n\r\n' + opening + closing)


def sibling_parts(count: int) -> bytes:
    parts = b"".join(b"--b\r\n\r\nx\r\n" for _ in range(count))  # headerless: text/plain
    return (b'From: pat@prospect.example.org\r\nSubject: parts\r\nContent-Type: multipart/mixed;'
            b' boundary="b"\r\n\r\n' + parts + b"--b--\r\n")


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every header text handed to decode_header (quadratic in it)."""
    lengths: list[int] = []

    def spy(value: str) -> list[tuple[bytes | str, str | None]]:
        lengths.append(len(value))
        return decode_header(value)

    monkeypatch.setattr(headers, "decode_header", spy)
    return lengths


def timed(name: str, raw: bytes, headers_only: bool = False) -> Classified:
    start = time.process_time()
    found = classify(raw, headers_only=headers_only)
    print(f"\n{name}: {len(raw) / 2**20:.2f} MiB, {time.process_time() - start:.3f} s of CPU")
    return found


def test_a_two_mib_diagnostic_code_of_encoded_words_is_decoded_only_in_part(decoded: list[int]) -> None:
    found = timed("2 MiB Diagnostic-Code", encoded_word_dsn(2 * 2**20 - 4096))
    assert decoded and max(decoded) <= headers.HEADER_DECODE_CHARS
    assert found.kind is InboundClass.BOUNCE and found.references == (OURS,)
    [failure] = found.failures
    assert failure.verdict is Verdict.HARD and len(failure.diagnostic) <= 500


def test_a_one_mib_subject_is_decoded_only_in_part(decoded: list[int]) -> None:
    found = timed("1 MiB Subject", long_subject(2**20))
    assert decoded and max(decoded) <= headers.HEADER_DECODE_CHARS
    assert found.kind is InboundClass.REPLY
    assert 0 < len(found.subject) <= headers.HEADER_DECODE_CHARS


@pytest.mark.parametrize("headers_only", [False, True])
def test_a_hundred_thousand_header_lines_are_read_only_up_to_the_header_cap(headers_only: bool) -> None:
    raw = many_header_lines(100_000)
    found = timed(f"100k header lines (headers_only={headers_only})", raw, headers_only=headers_only)
    assert found.kind is InboundClass.REPLY and found.headers_only
    assert "header section over 256 KiB" in found.detail
    parsed = headers.parse(raw, headers_only=headers_only)
    assert len(parsed.msg.keys()) < headers.HEADER_BLOCK_BYTES // 10


@pytest.mark.parametrize(("shape", "raw"), [
    ("20,000 nested parts", nested_parts(20_000)),
    ("20,000 sibling parts", sibling_parts(20_000)),
])
def test_twenty_thousand_parts_are_not_parsed(shape: str, raw: bytes) -> None:
    found = timed(shape, raw)
    assert found.kind is InboundClass.REPLY and found.headers_only
    assert "classified from headers only" in found.detail


def test_the_parts_walked_are_bounded() -> None:
    raw = sibling_parts(headers.MAX_DELIMITERS - 10)
    parsed = headers.parse(raw, headers_only=False)
    assert not parsed.headers_only
    assert sum(1 for _ in headers.walk(parsed.msg)) == headers.MAX_PARTS_WALKED
