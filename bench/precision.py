"""Precision: with the limits binding, how much of each limit the engine uses
(achieved / configured, target close to 1.0) and how often the provider saw it
exceeded (target 0).

The provider host enforces the same limits as the engine is configured with: N
messages in any rolling 60 s (beyond that it answers 421 4.7.28 and counts a
violation), C connections at once (beyond that 421 at the greeting), and the
benchmark counts what each capped mailbox sent against its daily cap. The run
ends once every message the caps allow has arrived, plus a grace period in which
any message over a cap would show up, or after at most `max_seconds` (a refusal
makes the engine back the host off for up to 5 minutes, by design).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.engine import EngineRun, run_campaign
from bench.report import Figure
from bench.seed import Seeded, mailbox_email
from client.api import OutreachClient
from localsmtp.provider import AcceptedRecord, HostBehaviour, Provider

HOST = "mx"
UNCAPPED = 1_000_000

FIGURES = [
    Figure("delivered", "emails delivered", 0),
    Figure("rate_ratio", "provider per-minute: sustained rate / limit, whole run", 3),
    Figure("stretch_rate_ratio",
           "provider per-minute: sustained rate / limit, longest stretch without a refusal", 3),
    Figure("busiest_ratio", "provider per-minute: busiest 60 s / limit", 3),
    Figure("connections_ratio", "host connections: peak / limit", 3),
    Figure("cap_ratio", "mailbox daily caps: sent / cap (capped mailboxes, lowest)", 3),
    Figure("rate_violations", "violations: 421 rate-limited by the provider", 0),
    Figure("connection_violations", "violations: connections refused by the provider", 0),
    Figure("cap_violations", "violations: messages over a mailbox cap", 0),
    Figure("duplicates", "duplicate copies seen by the provider", 0),
]


def assigned(prospects: int, mailboxes: int) -> list[int]:
    """Prospects per mailbox (round-robin, as seeded)."""
    return [len(range(k, prospects, mailboxes)) for k in range(mailboxes)]


def sustained_rate(times: list[float], limit: int) -> float:
    """Messages per minute over whole multiples of `limit` messages: from the first
    acceptance to the (k*limit + 1)-th, the largest such one there is (or the last
    one, with fewer than limit + 1). Whole multiples, because a limiter may send each
    window's allowance as a burst: counting a partial last burst, or timing a run
    by its first and last message, would say nothing about the limit."""
    times = sorted(times)
    if len(times) < 2:
        return 0.0
    last = (len(times) - 1) // limit * limit if len(times) > limit else len(times) - 1
    span = times[last] - times[0]
    return last / span * 60 if span > 0 else 0.0


def longest_stretch(times: list[float], refusals: list[float]) -> list[float]:
    """The most acceptances between two refusals (a refusal makes the engine back off:
    the stretches show its rate while it sends, the whole run its rate with back-offs)."""
    stretches: list[list[float]] = [[]]
    cuts = sorted(refusals)
    for at in sorted(times):
        while cuts and cuts[0] <= at:
            cuts.pop(0)
            stretches.append([])
        stretches[-1].append(at)
    return max(stretches, key=len)


def _all_arrived(provider: Provider, first: int, expected: int, grace: float, max_seconds: float) -> Any:
    async def done(client: OutreachClient, seeded: Seeded) -> None:
        def arrived() -> int:
            return sum(1 for r in provider.accepted[first:] if r.host == HOST and r.acknowledged)

        deadline = time.monotonic() + max_seconds
        while arrived() < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(grace)  # anything over a cap would arrive now

    return done


def figures_of(
    run: EngineRun, provider: Provider, since: float, per_minute: int, connections: int,
    caps: dict[str, int],
) -> dict[str, float]:
    times = [r.at for r in run.delivered]
    by_mailbox: dict[str, list[AcceptedRecord]] = {}
    for r in run.delivered:
        by_mailbox.setdefault(r.mailbox, []).append(r)
    sent = {email: len(by_mailbox.get(email, [])) for email in caps}
    rate_refusals = [r.at for r in provider.refusals if r.at >= since and r.reason == "per_minute"]
    refused = [c.opened_at for c in provider.connections
               if c.refused and c.opened_at >= since and c.host == HOST]
    copies = provider.copies()
    return {
        "delivered": len(run.delivered),
        "rate_ratio": sustained_rate(times, per_minute) / per_minute,
        "stretch_rate_ratio":
            sustained_rate(longest_stretch(times, rate_refusals + refused), per_minute) / per_minute,
        "busiest_ratio": provider.most_in_window(HOST, 60.0) / per_minute,
        "connections_ratio": provider.peak_connections(HOST) / connections,
        "cap_ratio": min((sent[e] / cap for e, cap in caps.items()), default=0.0),
        "rate_violations": len(rate_refusals),
        "connection_violations": len(refused),
        "cap_violations": sum(max(0, sent[e] - cap) for e, cap in caps.items()),
        "duplicates": sum(c - 1 for c in copies.values() if c > 1),
    }


async def one_run(
    *, prospects: int, mailboxes: int, per_minute: int, connections: int,
    caps: list[int], grace: float, max_seconds: float, log_dir: Path | None, analyze: bool = True,
) -> tuple[dict[str, float], dict[str, Any]]:
    limits = caps + [UNCAPPED] * (mailboxes - len(caps))
    expected = sum(min(n, cap) for n, cap in zip(assigned(prospects, mailboxes), limits, strict=True))
    settings = {
        "OUTREACH_MAILBOX_SPACING": "0",
        "OUTREACH_LIMIT_OTHER_PER_MINUTE": str(per_minute),
        "OUTREACH_LIMIT_OTHER_CONNECTIONS": str(connections),
    }
    host = HostBehaviour(HOST, max_connections=connections, per_minute=per_minute)
    async with Provider([host]) as provider:
        since = time.time()
        run = await run_campaign(
            provider, HOST, prospects=prospects, daily_limits=limits, workers=1,
            settings=settings,
            done=_all_arrived(provider, len(provider.accepted), expected, grace, max_seconds),
            within=max_seconds + grace + 120, log_dir=log_dir, analyze=analyze,
        )
        capped = {mailbox_email(b.id): b.daily_limit for b in run.seeded.mailboxes
                  if b.daily_limit < UNCAPPED}
        figures = figures_of(run, provider, since, per_minute, connections, capped)
        details = {
            "campaign_id": run.seeded.campaign_id, "expected": expected, "elapsed_s": run.elapsed,
            "all_arrived": len(run.delivered) >= expected,
            "refusals": [{"at": r.at - run.started_at, "reason": r.reason} for r in provider.refusals
                         if r.at >= since]
            + [{"at": c.opened_at - run.started_at, "reason": c.reason} for c in provider.connections
               if c.refused and c.opened_at >= since],
            "peak_connections": provider.peak_connections(HOST),
            "busiest_60s": provider.most_in_window(HOST, 60.0),
            "sent_by_mailbox": {b.id: sum(1 for r in run.delivered if r.mailbox == mailbox_email(b.id))
                                for b in run.seeded.mailboxes},
            "caps": {b.id: b.daily_limit for b in run.seeded.mailboxes if b.daily_limit < UNCAPPED},
        }
    return figures, details


def summary(figures: dict[str, float]) -> str:
    violations = figures["rate_violations"] + figures["connection_violations"] + figures["cap_violations"]
    return (f"{figures['delivered']:.0f} delivered; rate {figures['rate_ratio']:.3f} of the limit"
            f" (busiest 60 s {figures['busiest_ratio']:.3f}), connections {figures['connections_ratio']:.2f},"
            f" caps {figures['cap_ratio']:.2f}; {violations:.0f} violations")
