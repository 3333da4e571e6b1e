"""``python -m bench variants``: the winner rule (variants/winner.py) on simulated campaigns.

Each simulated campaign sends two variants ``per_day`` each, day after day, up to
``sends`` per variant. A send draws a reply with its variant's true rate; the reply
arrives an exponential time later (mean ``reply_days``). Once a day the rule is asked,
as the variants schedule asks it, on the sends older than the reply window and the
replies that have arrived on them; it stops the campaign's test when it names a winner.
After the last send the rule is still asked until every send has matured.

Printed: how often a winner was declared (and the right one), and the matured sends per
variant at the decision (median and 80th percentile). No engine runs: it is the rule,
under the same inputs the schedule gives it, a thousand times.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from variants.winner import Arm, decide


@dataclass(frozen=True)
class Scenario:
    name: str
    rate_a: float
    rate_b: float
    sends: int  # per variant, at most


@dataclass
class Outcome:
    scenario: str
    campaigns: int
    winners: int  # any winner declared
    right: int  # variant b (the better one, or either when equal: then every winner is false)
    sends_at_decision: list[int]  # matured sends per variant when the rule decided
    sends_when_right: list[int]  # the same, for the campaigns where it named the better variant

    def figures(self) -> dict[str, Any]:
        decided = sorted(self.sends_at_decision)
        right = sorted(self.sends_when_right)
        need = math.ceil(0.8 * self.campaigns)  # campaigns that must have found the better one
        return {
            "scenario": self.scenario, "campaigns": self.campaigns,
            "winner_rate": self.winners / self.campaigns, "right_rate": self.right / self.campaigns,
            "median_sends": statistics.median(decided) if decided else None,
            "p80_sends": decided[math.ceil(0.8 * len(decided)) - 1] if decided else None,
            # Matured sends per variant by which 80 % of all campaigns had named the better
            # variant (None: fewer than 80 % ever did within the scenario's sends).
            "sends_for_80pct_right": right[need - 1] if len(right) >= need else None,
        }


def one_campaign(rng: random.Random, s: Scenario, per_day: int, window: float, reply_days: float,
                 min_sends: int, confidence: float) -> tuple[str | None, int]:
    """(the winner or None, matured sends per variant when it was named)."""
    arrivals: dict[str, list[tuple[int, float]]] = {"a": [], "b": []}  # (day sent, day answered)
    rates = {"a": s.rate_a, "b": s.rate_b}
    days = math.ceil(s.sends / per_day)
    for day in range(days + math.ceil(window) + 1):
        if day < days:
            for name, rate in rates.items():
                arrivals[name] += [(day, day + rng.expovariate(1 / reply_days))
                                   for _ in range(per_day) if rng.random() < rate]
        now = day + 1.0  # the schedule asks at the end of each day
        matured_days = max(0, min(days, math.floor(now - window)))
        sent = min(matured_days * per_day, s.sends)
        arms = [Arm(name, sent, sum(1 for d, at in arrivals[name] if d < matured_days and at <= now))
                for name in rates]
        verdict = decide(arms, min_sends, confidence)
        if verdict.winner is not None:
            return verdict.winner, sent
    return None, s.sends


def run(s: Scenario, campaigns: int, seed: int, per_day: int, window: float, reply_days: float,
        min_sends: int, confidence: float) -> Outcome:
    rng = random.Random(seed)
    outcome = Outcome(s.name, campaigns, 0, 0, [], [])
    for _ in range(campaigns):
        winner, sends = one_campaign(rng, s, per_day, window, reply_days, min_sends, confidence)
        if winner is not None:
            outcome.winners += 1
            outcome.sends_at_decision.append(sends)
            if winner == "b" and s.rate_b > s.rate_a:
                outcome.right += 1
                outcome.sends_when_right.append(sends)
    return outcome


def naive_bayes_false_winners(campaigns: int, seed: int, per_day: int, sends: int, rate: float) -> float:
    """For comparison: "probability to be best >= 95 %" (Beta posteriors, normal
    approximation), asked daily on equal rates, no reply delay. What peeking does to it."""
    rng = random.Random(seed)
    found = 0
    for _ in range(campaigns):
        a = b = n = 0
        while n < sends:
            n += per_day
            a += sum(rng.random() < rate for _ in range(per_day))
            b += sum(rng.random() < rate for _ in range(per_day))
            ma, mb = (a + 1) / (n + 2), (b + 1) / (n + 2)
            z = (mb - ma) / math.sqrt((ma * (1 - ma) + mb * (1 - mb)) / (n + 3))
            if n >= 200 and abs(z) >= 1.645:  # P(b > a) >= 0.95 or <= 0.05
                found += 1
                break
    return found / campaigns


SCENARIOS = [
    Scenario("2.0% vs 2.0%, 2,000 sends", 0.02, 0.02, 2000),
    Scenario("2.0% vs 2.0%, 10,000 sends", 0.02, 0.02, 10_000),
    Scenario("2.0% vs 3.0%, 2,000 sends", 0.02, 0.03, 2000),
    Scenario("2.0% vs 3.0%, 10,000 sends", 0.02, 0.03, 10_000),
]


def main(argv: list[str]) -> dict[str, Any]:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench variants", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--per-day", type=int, default=100, help="sends per variant per day")
    parser.add_argument("--window-days", type=float, default=3.0, help="the reply window")
    parser.add_argument("--reply-days", type=float, default=1.0, help="mean time to a reply")
    parser.add_argument("--min-sends", type=int, default=200)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    params = {k: v for k, v in vars(args).items() if k != "json"}
    print(f"variants: {params}", flush=True)
    results = []
    for i, s in enumerate(SCENARIOS):
        out = run(s, args.campaigns, args.seed + i, args.per_day, args.window_days, args.reply_days,
                  args.min_sends, args.confidence)
        f = out.figures()
        results.append({**f, **asdict(s)})
        print(f"  {s.name:<28} winner {f['winner_rate']:6.1%}  right {f['right_rate']:6.1%}"
              f"  sends per variant at the decision: median {f['median_sends']}, 80th pct {f['p80_sends']};"
              f" 80 % right by {f['sends_for_80pct_right']}", flush=True)
    naive = naive_bayes_false_winners(args.campaigns, args.seed, args.per_day, 2000, 0.02)
    print(f"  for comparison, 'probability to be best >= 95 %' asked daily, 2.0% vs 2.0%, 2,000 sends:"
          f" a false winner in {naive:.1%}", flush=True)
    doc = {"scenario": "variants", "params": params, "results": results, "naive_bayes_false_winners": naive,
           "command": "python -m bench variants " + " ".join(argv)}
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
