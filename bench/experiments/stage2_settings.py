"""`python -m bench.experiments.stage2_settings [--rounds N] [--count N] CONFIG…`:
Stage 2 throughput of one worker process under different settings, interleaved.

Each CONFIG is a comma-separated list of environment settings for the worker
(`ETL_CONCURRENCY=6`, `ETL_CONCURRENCY=16,PILLOW_BLOCKS_MAX=0`; an empty
string is the defaults). Every round runs each config once, in turn, with the
same executions as `python -m bench stage2`, so a drift of the shared machine
hits every config alike; the medians are compared, never single runs (they
vary by ±10 % here). Writes bench/results/stage2_settings.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from pathlib import Path
from typing import Any

from bench import stage2_throughput

OUT = Path(__file__).parents[1] / "results" / "stage2_settings.json"


def parse_config(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"bad config {text!r}: expected NAME=VALUE[,NAME=VALUE…]")
    return {name.upper(): value for name, value in pairs}


async def compare(configs: list[str], rounds: int, count: int) -> dict[str, Any]:
    raws, jpeg_bytes = stage2_throughput.raw_executions(count)
    rates: dict[str, list[float]] = {config: [] for config in configs}
    for round_no in range(1, rounds + 1):
        for config in configs:
            saved = dict(os.environ)
            # Worker subprocesses inherit this process's environment.
            os.environ.update(parse_config(config))
            try:
                run = await stage2_throughput.one_run(raws, 1, profile=False)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            rates[config].append(run["per_process_per_s"] or 0.0)
            print(f"round {round_no} {config or '(defaults)'}: {run['per_process_per_s']}/s")
    return {
        "executions": count,
        "mean_jpeg_bytes": jpeg_bytes,
        "rounds": rounds,
        "configs": [
            {
                "config": config or "(defaults)",
                "median_per_s": statistics.median(values),
                "runs_per_s": values,
            }
            for config, values in rates.items()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="+", help="NAME=VALUE[,NAME=VALUE…]; '' = defaults")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    result = asyncio.run(compare(args.configs, args.rounds, args.count))
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for entry in result["configs"]:
        print(f"{entry['config']}: median {entry['median_per_s']}/s of {entry['runs_per_s']}")
    print(f"results: {OUT}")


if __name__ == "__main__":
    main()
