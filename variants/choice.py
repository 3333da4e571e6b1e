"""Which variant a prospect gets, and which spintax words: a keyed hash, no state.

HMAC-SHA256 under the key ring's ``variants`` key (config/secrets.py ``derived_key``)
of the send's campaign, step and prospect: the same inputs give the same answer in
every process, on every retry, replay and continue-as-new, and nobody without the key
can tell from outside which variant an address will get (or pick addresses to skew a
test). The first 64 bits of the digest, as a fraction of 2**64, fall into one of the
variants' slices of [0, 1), each as wide as its share of the weights.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from variants.spintax import Pick

KEY_PURPOSE = "variants"  # the key ring's derived key for every choice here
_SCALE = float(2**64)


@dataclass(frozen=True)
class Weighted:
    name: str
    weight: float


def _fraction(key: bytes, message: str) -> float:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def choose_variant(key: bytes, campaign_id: str, step: int, prospect_id: int,
                   variants: Sequence[Weighted]) -> str:
    """The variant of this prospect for this step, in proportion to the weights.
    The order of ``variants`` matters (the file's order): keep it stable."""
    if not variants:
        raise ValueError("a step has at least one variant to choose from")
    point = _fraction(key, f"variant:{campaign_id}:{step}:{prospect_id}") * sum(v.weight for v in variants)
    edge = 0.0
    for variant in variants:
        edge += variant.weight
        if point < edge:
            return variant.name
    return variants[-1].name  # rounding at the very top of the range


def spin_pick(key: bytes, campaign_id: str, step: int, prospect_id: int, variant: str, part: str) -> Pick:
    """The spintax choice of one send's ``part`` ('subject' or 'body'): each group by
    its number, so a text resolves the same way every time it is rendered."""
    head = f"spin:{campaign_id}:{step}:{prospect_id}:{variant}:{part}:"

    def pick(group: int, alternatives: int) -> int:
        return int(_fraction(key, f"{head}{group}") * alternatives)

    return pick
