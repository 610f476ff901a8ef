"""`python -m bench [NAME ...] [--quick]`: run the benchmarks, write JSON, print a table.

`make bench` runs them all at full scale (a few minutes on the 2-core machine);
`--quick` runs every one at a tiny scale (a smoke test of the harness, not figures).
Results merge into bench/results/latest.json (one entry per benchmark, each with
the command, the machine and its load when it ran).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import uvloop

from bench.cases import (
    capacity,
    failover,
    fanout,
    latency,
    layers,
    n8n_latency,
    n8n_stage2,
    poller_cycle,
    soak,
    stage2_throughput,
    stats_api,
    triage_detail,
    versus_old,
)
from bench.harness.infra import QUICK_RESULTS, RESULTS
from bench.harness.machine import describe
from bench.harness.nchan import installed as nchan_installed
from bench.harness.render import render
from bench.harness.targets import evaluate

# A case's `run` with its scale; `--set KEY=VALUE` overrides a keyword of it.
Runner = Callable[..., Awaitable[dict[str, Any]]]

FULL: dict[str, Runner] = {
    "poller": poller_cycle.run,
    "stage2": stage2_throughput.run,
    "latency": latency.run,
    # Commit → execution:batch with the per-hop split (the poller's NOTIFY path).
    "batch": partial(latency.run, rates=(20, 50, 200), duration_s=6.0, profile=False, name="batch"),
    "versus_old": versus_old.run,
    "fanout": fanout.run,
    "failover": failover.run,
    "stats": stats_api.run,
    "n8n_stage2": n8n_stage2.run,
    "n8n_latency": n8n_latency.run,
    "triage_detail": triage_detail.run,
    "layers": layers.run,
    "workers": fanout.run_workers,
    "capacity": capacity.run,
    # An hour; SOAK_DURATION_S / SOAK_WARMUP_S shorten it (bench/soak.py).
    "soak": lambda **kw: soak.run(
        **{
            "duration_s": float(os.environ.get("SOAK_DURATION_S", 3600)),
            "warmup_s": float(os.environ.get("SOAK_WARMUP_S", 600)),
            **kw,
        }
    ),
}
QUICK: dict[str, Runner] = {
    "poller": partial(poller_cycle.run, sizes=(2_000,), cycles=3, batch=5),
    "stage2": partial(
        stage2_throughput.run, count=20, process_counts=(1,), repeats=1, profile=False
    ),
    "latency": partial(latency.run, rates=(20,), duration_s=1.0, profile=False),
    "batch": partial(latency.run, rates=(20,), duration_s=1.0, profile=False, name="batch"),
    "versus_old": partial(
        versus_old.run, count=15, rate=10, max_delay_ms=400, baseline_intervals=(1.0,), drain_s=2.5
    ),
    # The smoke test installs nothing: nchan is compared only where it is already installed.
    "fanout": partial(
        fanout.run, counts=[20], singles=2, burst=3, profile_at=None, peer=nchan_installed()
    ),
    "failover": partial(failover.run, clients=20),
    "stats": partial(stats_api.run, size=5_000, pending=50, repeats=2),
    "n8n_stage2": partial(n8n_stage2.run, count=20, repeats=1),
    "triage_detail": partial(triage_detail.run, size=2_000, cameras=4, anchors=1, steps=5),
    "layers": partial(layers.run, connections=20, peer=nchan_installed()),
    "workers": partial(
        fanout.run_workers, connections=20, singles=2, burst=3, peer=nchan_installed()
    ),
    "capacity": partial(
        capacity.run,
        connections=40,
        workers=2,
        members=2,
        heartbeat_s=1,
        events=2,
        peer=nchan_installed(),
    ),
    # Long enough for a few samples after the warm-up: the smoke test checks the shape only.
    "soak": partial(soak.run, duration_s=8, warmup_s=3, rate=5, clients=20, sample_every_s=1),
}


def scale_option(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` → (KEY, VALUE as JSON: 40000, 2.5, true, [1000, 5000]; else the text)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *FULL], help="benchmarks (all)")
    parser.add_argument("--quick", action="store_true", help="tiny scale: a harness smoke test")
    parser.add_argument("--out", type=Path, help="JSON file (results/latest.json; quick.json)")
    parser.add_argument(
        "--set",
        dest="scale",
        action="append",
        type=scale_option,
        default=[],
        metavar="KEY=VALUE",
        help="a keyword of the case's run(), e.g. --set connections=40000 (one case only)",
    )
    return parser.parse_args(argv)


async def run_one(name: str, runner: Runner, command: str, scale: dict[str, Any]) -> dict[str, Any]:
    machine = describe()
    started = time.monotonic()
    print(f"[bench] {name} ... (load {machine['load_average']})", file=sys.stderr, flush=True)
    result = await runner(**scale)
    took = round(time.monotonic() - started, 1)
    print(f"[bench] {name} done in {took} s", file=sys.stderr, flush=True)
    return {
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": took,
        "machine": machine,
        "load_average_after": describe()["load_average"],
        "result": result,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runners = QUICK if args.quick else FULL
    # A benchmark without a quick form (n8n_latency needs a running n8n) is left out of --quick.
    names = args.names or list(runners)
    missing = [name for name in names if name not in runners]
    if missing:
        print(f"no quick form for {missing}", file=sys.stderr)
        return 2
    scale = dict(args.scale)
    if scale and len(names) != 1:
        print("--set applies to one benchmark: name exactly one", file=sys.stderr)
        return 2
    out: Path = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    results: dict[str, Any] = {}
    if out.exists() and not args.quick:
        # One benchmark re-run replaces its own entry; the others stay.
        results = json.loads(out.read_text()).get("benchmarks", {})
    for name in names:
        command = " ".join(
            [f"python -m bench {name}"]
            + (["--quick"] if args.quick else [])
            + [f"--set {key}={json.dumps(value)}" for key, value in scale.items()]
        )
        # uvloop: the load clients share the 2 cores with the servers they measure.
        results[name] = uvloop.run(run_one(name, runners[name], command, scale))
    document = {
        "scale": "quick" if args.quick else "full",
        "benchmarks": results,
        "targets": evaluate(results),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print("\n".join(render(document)))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
