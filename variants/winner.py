"""The winner rule: a sequential test that may be asked every hour for months.

A test asked again and again ("peeking") finds a false winner far more often than its
level says, if it is a fixed-sample test or a Bayesian "probability to be best". So the
rule is a mixture sequential probability ratio test (mSPRT; Johari, Pekelis and Walsh,
"Always valid inference", 2017), whose statistic may be looked at after every send:
for two variants whose true rates are equal, the chance that it *ever* crosses
``1 / alpha`` is at most ``alpha``. With ``confidence`` c the rule compares the leader
with every other variant and asks each of the k(k-1)/2 pairs to cross
``pairs / (1 - c)`` (Bonferroni), so a false winner is declared with probability at
most ``1 - c`` over the whole life of the step, however often the schedule asks.

For rates p_a and p_b from n_a and n_b sends, with s2 the variance of their difference
under "no difference" (the pooled rate) and tau2 the spread of differences the test
is tuned to find (half the pooled rate: a 50 % relative lift)::

    L = sqrt(s2 / (s2 + tau2)) * exp(tau2 * (p_a - p_b)**2 / (2 * s2 * (s2 + tau2)))

Only sends older than the reply window count, with the replies they have drawn: a
young send has had no time to be answered, and counting it would pull every rate
down towards zero, faster for the variant sent more lately. Each variant needs
``min_sends`` of them before anything is decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# tau as a share of the pooled rate: the relative lift the mixture centres on.
RELATIVE_LIFT = 0.5
METRICS = ("reply_rate", "positive_reply_rate")


@dataclass(frozen=True)
class Arm:
    """A variant's matured sends (delivered, older than the reply window) and the ones
    of them answered (a reply, or a positive one, as the rule's metric says)."""

    name: str
    sends: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.sends if self.sends else 0.0


@dataclass(frozen=True)
class Verdict:
    winner: str | None
    reason: str
    # Per pair "leader vs other": the statistic and the threshold it must reach.
    evidence: dict[str, float]
    threshold: float


def evidence(a: Arm, b: Arm) -> float:
    """The mSPRT statistic for "a and b differ" (1.0: no evidence either way)."""
    n_a, n_b = a.sends, b.sends
    if not n_a or not n_b:
        return 1.0
    pooled = (a.successes + b.successes) / (n_a + n_b)
    if pooled <= 0.0 or pooled >= 1.0:
        return 1.0
    s2 = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    tau2 = (RELATIVE_LIFT * pooled) ** 2
    diff = a.rate - b.rate
    log_l = 0.5 * math.log(s2 / (s2 + tau2)) + tau2 * diff * diff / (2 * s2 * (s2 + tau2))
    return math.exp(min(log_l, 700.0))  # beyond e**700 the answer is the same: yes


def decide(arms: Sequence[Arm], min_sends: int, confidence: float) -> Verdict:
    """A winner among ``arms`` (the step's variants still taking prospects), or None
    with the reason; ``evidence`` and ``threshold`` are the figures to record."""
    pairs = len(arms) * (len(arms) - 1) // 2
    threshold = pairs / (1.0 - confidence) if pairs else math.inf
    if len(arms) < 2:
        return Verdict(None, "fewer than two variants take prospects", {}, threshold)
    short = [a.name for a in arms if a.sends < min_sends]
    if short:
        return Verdict(None, f"under {min_sends} matured sends: {', '.join(short)}", {}, threshold)
    leader = max(arms, key=lambda a: (a.rate, -a.sends))
    found = {f"{leader.name} vs {a.name}": evidence(leader, a) for a in arms if a is not leader}
    weakest = min(found.values())
    if weakest < threshold or any(a.rate >= leader.rate for a in arms if a is not leader):
        return Verdict(None, f"not yet: evidence {weakest:.3g} of {threshold:.3g} needed", found, threshold)
    return Verdict(leader.name, f"evidence {weakest:.3g} >= {threshold:.3g}", found, threshold)
