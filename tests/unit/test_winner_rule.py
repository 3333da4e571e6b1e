"""The winner rule (variants/winner.py): an always-valid sequential test, asked as often
as the schedule likes, that declares a false winner rarely and a real one in the end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench import variants as variants_bench
from variants.winner import Arm, decide, evidence


def test_nothing_is_decided_before_every_variant_has_min_sends() -> None:
    verdict = decide([Arm("a", 199, 0), Arm("b", 500, 100)], min_sends=200, confidence=0.95)
    assert verdict.winner is None and "a" in verdict.reason


def test_a_clear_difference_wins_and_the_figures_say_why() -> None:
    verdict = decide([Arm("a", 1000, 20), Arm("b", 1000, 60)], min_sends=200, confidence=0.95)
    assert verdict.winner == "b"
    assert verdict.threshold == pytest.approx(20.0)  # one pair, 1 / (1 - 0.95)
    assert verdict.evidence["b vs a"] >= verdict.threshold


def test_equal_rates_give_no_evidence_and_no_winner() -> None:
    assert evidence(Arm("a", 1000, 20), Arm("b", 1000, 20)) < 1.0
    assert decide([Arm("a", 1000, 20), Arm("b", 1000, 20)], 200, 0.95).winner is None


def test_more_variants_need_more_evidence() -> None:
    three = decide([Arm("a", 1000, 20), Arm("b", 1000, 21), Arm("c", 1000, 60)], 200, 0.95)
    assert three.threshold == pytest.approx(60.0)  # three pairs
    assert three.winner == "c"


def test_peeking_after_every_50_sends_keeps_false_winners_under_the_level() -> None:
    # 2.0 % against 2.0 %, judged after every 50 sends per variant up to 4,000: a
    # fixed-sample test asked this often would declare a winner in about a quarter.
    rng = random.Random(24)
    false_winners = 0
    for _ in range(200):
        a = b = n = 0
        while n < 4000:
            n += 50
            a += sum(rng.random() < 0.02 for _ in range(50))
            b += sum(rng.random() < 0.02 for _ in range(50))
            if decide([Arm("a", n, a), Arm("b", n, b)], 200, 0.95).winner is not None:
                false_winners += 1
                break
    assert false_winners <= 10  # 5 % of 200


def test_the_benchmark_writes_every_figure_of_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "variants.json"
    doc = variants_bench.main(["--campaigns", "20", "--json", str(out)])
    assert json.loads(out.read_text()) == doc
    assert [r["scenario"] for r in doc["results"]] == [s.name for s in variants_bench.SCENARIOS]
    for r in doc["results"]:
        assert {"winner_rate", "right_rate", "median_sends", "p80_sends", "sends_for_80pct_right"} <= set(r)
        assert 0.0 <= r["right_rate"] <= r["winner_rate"] <= 1.0
