"""The keyed choice of a variant and of spintax words (variants/choice.py, issue 24)."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from variants import spintax
from variants.choice import Weighted, choose_variant, spin_pick

KEY = b"k" * 32
WEIGHTS = [Weighted("short", 1.0), Weighted("proof", 2.0), Weighted("story", 1.0)]


def test_100k_prospects_split_in_proportion_to_the_weights() -> None:
    n = 100_000
    counts = Counter(choose_variant(KEY, "cmp-1", 1, p, WEIGHTS) for p in range(n))
    total = sum(w.weight for w in WEIGHTS)
    for w in WEIGHTS:
        share = w.weight / total
        # Within 4.5 standard deviations of a binomial: fails by chance once in ~150,000 runs.
        assert abs(counts[w.name] - n * share) < 4.5 * math.sqrt(n * share * (1 - share)), counts


def test_the_same_prospect_gets_the_same_variant_every_time() -> None:
    first = [choose_variant(KEY, "cmp-1", 2, p, WEIGHTS) for p in range(500)]
    assert first == [choose_variant(KEY, "cmp-1", 2, p, WEIGHTS) for p in range(500)]


def test_another_key_assigns_differently_so_outsiders_cannot_tell() -> None:
    mine = [choose_variant(KEY, "cmp-1", 1, p, WEIGHTS) for p in range(1000)]
    theirs = [choose_variant(b"x" * 32, "cmp-1", 1, p, WEIGHTS) for p in range(1000)]
    agree = sum(a == b for a, b in zip(mine, theirs, strict=True))
    # Independent draws agree with probability 0.25 + 0.25 + 0.0625 = 0.375 (about 375 of 1000).
    assert 300 < agree < 450


def test_a_step_and_campaign_are_part_of_the_choice() -> None:
    step1 = [choose_variant(KEY, "cmp-1", 1, p, WEIGHTS) for p in range(1000)]
    assert step1 != [choose_variant(KEY, "cmp-1", 2, p, WEIGHTS) for p in range(1000)]
    assert step1 != [choose_variant(KEY, "cmp-2", 1, p, WEIGHTS) for p in range(1000)]


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=20))
def test_spintax_words_are_the_same_on_every_render(prospect: int, step: int) -> None:
    pieces = spintax.parse("{Hi|Hello|Hey} {{ name }}, {a {b|c}|d} {x|y}")
    once = spintax.resolve(pieces, spin_pick(KEY, "cmp-1", step, prospect, "v", "body"))
    again = spintax.resolve(pieces, spin_pick(KEY, "cmp-1", step, prospect, "v", "body"))
    assert once == again
    assert once in set(spintax.every_text(pieces))


def test_spintax_alternatives_are_all_used_about_evenly() -> None:
    pieces = spintax.parse("{a|b|c}")
    counts = Counter(spintax.resolve(pieces, spin_pick(KEY, "c", 1, p, "", "subject")) for p in range(30_000))
    assert set(counts) == {"a", "b", "c"}
    assert all(abs(n - 10_000) < 4.5 * math.sqrt(30_000 * (1 / 3) * (2 / 3)) for n in counts.values())
