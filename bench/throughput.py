"""The former end-to-end throughput benchmark, now the capacity scenario of
`python -m bench` (which measures the same and more). Kept so the old command
still works; its defaults are the old ones:

    python -m bench.throughput --prospects 1000 --mailboxes 10 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio

from bench.__main__ import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prospects", type=int, default=1000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(["capacity", "--prospects", str(args.prospects), "--mailboxes", str(args.mailboxes),
                      "--runs", str(args.runs)]))
