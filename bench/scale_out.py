"""Scale-out: the capacity run with 1 and then 2 worker processes on the same inputs
(same prospects and mailboxes, a fresh stack and campaign each), and the ratio of
their rates.

Both workers and the Temporal server, Redis, PostgreSQL and the provider share
this machine's cores, so the ratio says what a second process buys here, not on
a second machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import capacity
from bench.report import Figure

FIGURES = [
    Figure("rate_1", "1 worker: sends per minute", 0),
    Figure("rate_2", "2 workers: sends per minute", 0),
    Figure("ratio", "2 workers / 1 worker", 3),
    Figure("due_p50_1", "1 worker: due to accepted, p50 (s)", 1),
    Figure("due_p50_2", "2 workers: due to accepted, p50 (s)", 1),
    Figure("cpu_worker_1", "1 worker: worker CPU s per 1,000 emails", 1),
    Figure("cpu_worker_2", "2 workers: worker CPU s per 1,000 emails (both)", 1),
    Figure("cpu_temporal_1", "1 worker: Temporal CPU s per 1,000 emails", 1),
    Figure("cpu_temporal_2", "2 workers: Temporal CPU s per 1,000 emails", 1),
    Figure("worker_rss_mb_2", "2 workers: peak RSS of the larger (MiB)", 0),
    Figure("duplicates", "duplicate copies seen by the provider (both runs)", 0),
    Figure("stalled", "campaigns not completed 60 s after their last message (of 2)", 0),
]


async def one_run(
    prospects: int, mailboxes: int, log_dir: Path | None, analyze: bool = True,
) -> tuple[dict[str, float], dict[str, Any]]:
    one, one_details = await capacity.engine_run(prospects, mailboxes, 1, log_dir, analyze)
    two, two_details = await capacity.engine_run(prospects, mailboxes, 2, log_dir, analyze)
    figures = {
        "rate_1": one["sends_per_minute"], "rate_2": two["sends_per_minute"],
        "ratio": two["sends_per_minute"] / one["sends_per_minute"],
        "due_p50_1": one["due_p50"], "due_p50_2": two["due_p50"],
        "cpu_worker_1": one["cpu_worker"], "cpu_worker_2": two["cpu_worker"],
        "cpu_temporal_1": one["cpu_temporal"], "cpu_temporal_2": two["cpu_temporal"],
        "worker_rss_mb_2": two["worker_rss_mb"],
        "duplicates": one["duplicates"] + two["duplicates"],
        "stalled": one["stalled"] + two["stalled"],
    }
    return figures, {"one_worker": {**one, **one_details}, "two_workers": {**two, **two_details}}


def summary(figures: dict[str, float]) -> str:
    return (f"1 worker {figures['rate_1']:.0f}/min, 2 workers {figures['rate_2']:.0f}/min,"
            f" ratio {figures['ratio']:.2f}")
