"""Benchmarks anyone can rerun: each scenario prints a table (a column per run, then
the median) and can write it as JSON. Everything runs locally, each engine run on
a stack of its own: a private Temporal dev server and redis-server, a fresh
PostgreSQL database, `outreach worker` processes, and the in-process provider
(inbox.provider). See docs/benchmarks.md.

    python -m bench capacity  --runs 3 --prospects 5000 --json docs/benchmarks/capacity.json
    python -m bench precision --runs 3 --json docs/benchmarks/precision.json
    python -m bench scale-out --runs 3 --prospects 3000 --json docs/benchmarks/scale-out.json
    python -m bench scale     --runs 1 --sizes 10000,100000,1000000 --json docs/benchmarks/scale.json
    python -m bench variants  --campaigns 1000 --json docs/benchmarks/variants.json  (the winner rule)
    python -m bench replies   # the reply rules against the labelled set (no services)

They print figures and assert nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import capacity, precision, replies, scale, scale_out
from bench.report import Figure, table, write_json

RunResult = tuple[dict[str, float], dict[str, Any]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs", type=int, default=3, help="runs; the table shows each and the median")
    common.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    common.add_argument("--log-dir", type=Path, help="keep the workers' logs here")
    common.add_argument("--no-analyze", dest="analyze", action="store_false",
                        help="do not ANALYZE after seeding (shows the scheduler without statistics)")

    cap = scenarios.add_parser("capacity", parents=[common], help="one worker, limits non-binding")
    cap.add_argument("--prospects", type=int, default=5000)
    cap.add_argument("--mailboxes", type=int, default=20)
    cap.add_argument("--workers", type=int, default=1)

    pre = scenarios.add_parser("precision", parents=[common], help="limits binding")
    pre.add_argument("--prospects", type=int, default=440)
    pre.add_argument("--mailboxes", type=int, default=4)
    pre.add_argument("--per-minute", type=int, default=120, help="the provider's (and engine's) limit")
    pre.add_argument("--connections", type=int, default=3, help="the host's (and engine's) limit")
    pre.add_argument("--caps", default="40,80",
                     help="daily caps of the first mailboxes, comma-separated; the rest are uncapped")
    pre.add_argument("--grace", type=float, default=20.0,
                     help="seconds to keep watching after the last message the caps allow")
    pre.add_argument("--max-seconds", type=float, default=900.0,
                     help="end a run after this long even if not every message arrived")

    out = scenarios.add_parser("scale-out", parents=[common], help="1 vs 2 worker processes")
    out.add_argument("--prospects", type=int, default=3000)
    out.add_argument("--mailboxes", type=int, default=20)

    rep = scenarios.add_parser("replies", help="reply intent rules against the labelled set (in-process)")
    rep.add_argument("--quiet", action="store_true", help="figures only, not each mistake")
    rep.add_argument("--held-out", action="store_true",
                     help="the held-out set (tests/fixtures/replies/holdout), never tuned on")

    sca = scenarios.add_parser("scale", parents=[common], help="cost per email at 10k, 100k, 1M prospects")
    sca.add_argument("--sizes", default="10000,100000,1000000", help="campaign sizes, comma-separated")
    sca.add_argument("--emails", type=int, default=5000,
                     help="emails each run sends (half step 1, half step 2)")
    sca.add_argument("--mailboxes", type=int, default=20)
    sca.add_argument("--zones", type=int, default=0, choices=range(0, 25), metavar="0-24",
                     help="spread prospects over this many zones under a 09:00-17:00 recipient window")
    return parser


async def _scale(args: argparse.Namespace, argv: list[str] | None) -> list[RunResult]:
    """A column per size (median of its runs), not per run: the point is the row's flatness."""
    sizes = [int(n) for n in args.sizes.split(",") if n.strip()]
    params = {"sizes": sizes, "emails": args.emails, "mailboxes": args.mailboxes, "analyze": args.analyze,
              "zones": args.zones}
    print(f"scale: {params}; {args.runs} run(s) per size", flush=True)
    results: list[RunResult] = []
    by_size: dict[int, list[dict[str, float]]] = {}
    for n in sizes:
        for i in range(1, args.runs + 1):
            result = await scale.one_run(n, args.emails, args.mailboxes, args.log_dir, args.analyze,
                                         args.zones)
            print(f"  {n:,} prospects, run {i}: {scale.summary(result[0])}", flush=True)
            results.append(result)
            by_size.setdefault(n, []).append(result[0])
    print()
    print(scale.table(sizes, by_size))
    if args.json is not None:
        write_json(args.json, "scale", params, scale.FIGURES, [r for r, _ in results],
                   [d for _, d in results], argv)
        print(f"\nwrote {args.json}")
    return results


def _scenario(args: argparse.Namespace) -> tuple[list[Figure], Callable[[], Awaitable[RunResult]],
                                                 Callable[[dict[str, float]], str], dict[str, Any]]:
    log, analyze = args.log_dir, args.analyze
    if args.scenario == "capacity":
        params = {"prospects": args.prospects, "mailboxes": args.mailboxes, "workers": args.workers,
                  "analyze": analyze}
        return capacity.FIGURES, lambda: capacity.one_run(
            args.prospects, args.mailboxes, args.workers, log, analyze), capacity.summary, params
    if args.scenario == "precision":
        caps = [int(c) for c in args.caps.split(",") if c.strip()]
        if len(caps) > args.mailboxes:
            raise SystemExit(f"--caps: {len(caps)} caps for {args.mailboxes} mailboxes")
        params = {"prospects": args.prospects, "mailboxes": args.mailboxes, "per_minute": args.per_minute,
                  "connections": args.connections, "caps": caps, "grace_s": args.grace,
                  "max_seconds": args.max_seconds, "analyze": analyze}
        return precision.FIGURES, lambda: precision.one_run(
            prospects=args.prospects, mailboxes=args.mailboxes, per_minute=args.per_minute,
            connections=args.connections, caps=caps, grace=args.grace, max_seconds=args.max_seconds,
            log_dir=log, analyze=analyze,
        ), precision.summary, params
    params = {"prospects": args.prospects, "mailboxes": args.mailboxes, "analyze": analyze}
    return scale_out.FIGURES, lambda: scale_out.one_run(
        args.prospects, args.mailboxes, log, analyze), scale_out.summary, params


async def main(argv: list[str] | None = None) -> list[RunResult]:
    args = _parser().parse_args(argv)
    if args.scenario == "replies":
        corpus = replies.CORPUS / "holdout" if args.held_out else replies.CORPUS
        print(replies.report(replies.measure(replies.load(corpus)), show_mistakes=not args.quiet))
        return []
    if args.log_dir is not None:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    if args.scenario == "scale":
        return await _scale(args, argv)
    figures, run, summary, params = _scenario(args)
    print(f"{args.scenario}: {params}; {args.runs} run(s)", flush=True)
    results: list[RunResult] = []
    for i in range(1, args.runs + 1):
        result = await run()
        print(f"  run {i}: {summary(result[0])}", flush=True)
        results.append(result)
    runs = [r for r, _ in results]
    print()
    print(table(figures, runs))
    if args.json is not None:
        write_json(args.json, args.scenario, params, figures, runs, [d for _, d in results], argv)
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["variants"]:  # a simulation of the winner rule: no stack, no engine
        from bench import variants

        variants.main(sys.argv[2:])
        sys.exit(0)
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
