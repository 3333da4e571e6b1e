"""A local mail provider for load and fault runs: several SMTP hosts, each an
LocalSmtpServer on its own port with a provider's rules (a connection limit, a
per-minute limit, fixed replies for chosen recipients) and faults that can be
switched on and off while it runs (hang, drop after DATA). It records every
connection and every message it received, so a run can be checked afterwards
from the provider's side rather than from the sender's own ledger.

    async with Provider([HostBehaviour("mx-a", max_connections=5, per_minute=30)]) as provider:
        ... mailboxes send to 127.0.0.1:provider.port("mx-a") ...
        provider.set_behaviour("mx-a", hang=True)
        assert provider.peak_connections("mx-a") <= 5

Everything runs on the caller's event loop; no locks are needed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from localsmtp.server import AcceptedMessage, LocalSmtpServer, Reply

TOO_MANY_CONNECTIONS: Reply = (421, "4.7.0 Too many connections, try again later")
RATE_LIMITED: Reply = (421, "4.7.28 Rate limited, try again later")
FOREVER = 86_400.0  # a hang nobody waits out: the client's timeout ends it


@dataclass
class HostBehaviour:
    name: str
    max_connections: int | None = None
    per_minute: int | None = None
    replies: dict[str, tuple[int, str]] = field(default_factory=dict)  # recipient -> RCPT reply
    hang: bool = False
    drop_after_data: bool = False
    credentials: dict[str, str] | None = None
    # Beyond the contract above, in keyword use:
    hang_seconds: float | None = None  # with hang: how long to stall the greeting (None: forever)
    drop_recipients: frozenset[str] = frozenset()  # dropped after DATA even when drop_after_data is off
    refuse_all: Reply | None = None  # answer every new connection with this (e.g. a 421 spell)
    window_seconds: float = 60.0  # the per-minute limit's window; tests shorten it
    # Where it listens. Senders key their host limits by host name, so hosts that
    # must count apart need addresses of their own (all of 127.0.0.0/8 is loopback).
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class AcceptedRecord:
    at: float
    host: str
    mailbox: str
    recipient: str
    message_id: str
    acknowledged: bool  # False: dropped after DATA, the copy may or may not count as delivered


@dataclass
class ConnectionRecord:
    host: str
    opened_at: float
    closed_at: float | None
    refused: bool
    reason: str = ""  # why it was refused: "connections", "refuse_all"
    peer: str = ""  # the client's address:port, to match the client's own records


@dataclass(frozen=True)
class RefusalRecord:
    """A message the provider turned away because of its own limit (not a scripted reply)."""

    at: float
    host: str
    mailbox: str
    recipient: str
    message_id: str
    reason: str  # "per_minute"


class Provider:
    """Several SMTP hosts on loopback (127.0.0.1 unless told), each with its own free port."""

    def __init__(self, hosts: list[HostBehaviour]) -> None:
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise ValueError(f"provider hosts must have distinct names, got {names}")
        self.accepted: list[AcceptedRecord] = []
        self.connections: list[ConnectionRecord] = []
        self.refusals: list[RefusalRecord] = []
        self._hosts = {h.name: _Host(self, h) for h in hosts}

    async def start(self) -> None:
        for host in self._hosts.values():
            await host.inbox.start(host.behaviour.address, 0)
            host.apply()

    async def stop(self) -> None:
        for host in self._hosts.values():
            await host.inbox.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- control ----------------------------------------------------------------

    def port(self, host: str) -> int:
        return self._host(host).inbox.port

    def address(self, host: str) -> str:
        return self._host(host).behaviour.address

    def inbox(self, host: str) -> LocalSmtpServer:
        """The host's LocalSmtpServer, for its own scripting (`script`, `hang` at a stage, ...)."""
        return self._host(host).inbox

    def behaviour(self, host: str) -> HostBehaviour:
        return dataclasses.replace(self._host(host).behaviour)

    def set_behaviour(self, host: str, **changes: Any) -> None:
        """Change a host's behaviour while it runs; sessions already hanging stay
        hung until their client gives up. `credentials` and `address` are fixed
        once it has started."""
        target = self._host(host)
        target.behaviour = dataclasses.replace(target.behaviour, **changes)
        target.apply()

    # -- observation ------------------------------------------------------------

    # The deadline is this helper's whole point, hence the `timeout` parameter.
    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once `predicate()` holds (checked on every change, and every 50 ms)."""
        await next(iter(self._hosts.values())).inbox.wait_for(predicate, timeout)

    def peak_connections(self, host: str) -> int:
        """Most connections open at once that the host did not refuse."""
        events = []
        for record in self.connections:
            if record.host == host and not record.refused:
                events.append((record.opened_at, 1))
                if record.closed_at is not None:
                    events.append((record.closed_at, -1))
        peak = current = 0
        for _, step in sorted(events):  # at a tie the close (-1) sorts first
            current += step
            peak = max(peak, current)
        return peak

    def most_in_window(self, host: str, seconds: float = 60.0) -> int:
        """Most acknowledged messages the host accepted within any `seconds`."""
        return self.busiest_window(host, seconds)[0]

    def busiest_window(self, host: str, seconds: float = 60.0) -> tuple[int, float]:
        """The most acknowledged messages the host accepted within any `seconds`, and
        when the first window holding that many began (0.0 if it accepted none)."""
        times = sorted(r.at for r in self.accepted if r.host == host and r.acknowledged)
        return _busiest_window(times, seconds)

    def copies(self) -> Counter[str]:
        """Message-ID -> copies received, acknowledged or not."""
        return Counter(r.message_id for r in self.accepted)

    def acknowledged_copies(self) -> Counter[str]:
        return Counter(r.message_id for r in self.accepted if r.acknowledged)

    def refused_connections(self, host: str | None = None, reason: str | None = None) -> int:
        return sum(
            1 for r in self.connections
            if r.refused and host in (None, r.host) and reason in (None, r.reason)
        )

    def save(self, path: str | Path) -> None:
        """Every record as JSON lines, each with its "kind", for checking a run afterwards."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w") as out:
            for kind, records in (("accepted", self.accepted), ("connection", self.connections),
                                  ("refusal", self.refusals)):
                for record in records:
                    out.write(json.dumps({"kind": kind, **dataclasses.asdict(record)}) + "\n")

    def _host(self, name: str) -> _Host:
        try:
            return self._hosts[name]
        except KeyError:
            raise KeyError(f"no provider host named {name!r}; have {sorted(self._hosts)}") from None


class _Host:
    """One host's rules, called by its LocalSmtpServer's sessions (inbox.server.HostRules)."""

    def __init__(self, provider: Provider, behaviour: HostBehaviour) -> None:
        self.provider = provider
        self.behaviour = behaviour
        self.inbox = LocalSmtpServer(credentials=behaviour.credentials,
                                     hostname=f"{behaviour.name}.localhost")
        self.inbox.rules = self
        self._open: dict[str, ConnectionRecord] = {}  # by peer, while open
        self._admitted = 0
        self._received: list[float] = []  # times of every message received, for per_minute

    def apply(self) -> None:
        b = self.behaviour
        self.inbox.hang("connect", (b.hang_seconds or FOREVER) if b.hang else 0.0)

    def admit_connection(self, peer: str) -> Reply | None:
        b = self.behaviour
        self._forget_departed()
        refusal, reason = None, ""
        if b.refuse_all is not None:
            refusal, reason = b.refuse_all, "refuse_all"
        elif b.max_connections is not None and self._admitted >= b.max_connections:
            refusal, reason = TOO_MANY_CONNECTIONS, "connections"
        record = ConnectionRecord(b.name, time.time(), None, refusal is not None, reason, peer)
        self.provider.connections.append(record)
        self._open[peer] = record
        if refusal is None:
            self._admitted += 1
        return refusal

    def _forget_departed(self) -> None:
        """Close the records of clients that hung up before this new one arrived."""
        for peer, record in list(self._open.items()):
            if not record.refused and self.inbox.client_left(peer):
                self.connection_closed(peer)

    def connection_closed(self, peer: str) -> None:
        record = self._open.pop(peer, None)
        if record is None:  # the client left before its session began
            return
        record.closed_at = time.time()
        if not record.refused:
            self._admitted -= 1

    def admit_recipient(self, recipient: str) -> Reply | None:
        replies = {r.strip().lower(): reply for r, reply in self.behaviour.replies.items()}
        return replies.get(recipient.strip().lower())

    def admit_message(self, message: AcceptedMessage) -> Reply | None:
        b = self.behaviour
        if b.per_minute is None:
            return None
        now = time.time()
        # Every copy received counts, acknowledged or not: the provider has it. The
        # window is open at its start, as in most_in_window.
        recent = len(self._received) - bisect_right(self._received, now - b.window_seconds)
        if recent < b.per_minute:
            return None
        for recipient in message.rcpt_tos:
            self.provider.refusals.append(RefusalRecord(
                now, b.name, message.mail_from, recipient, message.message_id or "", "per_minute"))
        return RATE_LIMITED

    def drop_message(self, message: AcceptedMessage) -> bool:
        b = self.behaviour
        if b.drop_after_data:
            return True
        chosen = {r.strip().lower() for r in b.drop_recipients}
        return any(r.strip().lower() in chosen for r in message.rcpt_tos)

    def received(self, message: AcceptedMessage, acknowledged: bool) -> None:
        now = time.time()
        self._received.append(now)
        for recipient in message.rcpt_tos:
            self.provider.accepted.append(AcceptedRecord(
                now, self.behaviour.name, message.mail_from, recipient, message.message_id or "",
                acknowledged))


def _busiest_window(times: list[float], seconds: float) -> tuple[int, float]:
    """Most of the sorted `times` inside any half-open window [t, t + seconds), and the
    first such t (a window starts at a message)."""
    most, began, start = 0, 0.0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        if end - start + 1 > most:
            most, began = end - start + 1, times[start]
    return most, began
