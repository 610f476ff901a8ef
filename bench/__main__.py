"""`python -m bench [NAME ...] [--quick]`: run the benchmarks, write JSON, print a table.

`make bench` runs them all at full scale (a few minutes on the 2-core machine);
`--quick` runs every one at a tiny scale (a smoke test of the harness, not figures).
Results merge into bench/results/latest.json (one entry per benchmark, each with
the command, the machine and its load when it ran).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench.harness.infra import QUICK_RESULTS, RESULTS
from bench.harness.machine import describe
from bench.harness.nchan import installed as nchan_installed
from bench.harness.render import render
from bench.harness.targets import evaluate

# A case's `run` with its scale; `--set KEY=VALUE` overrides a keyword of it.
Runner = Callable[..., Awaitable[dict[str, Any]]]


def case(module: str, function: str = "run", **scale: Any) -> Runner:
    """`bench.cases.<module>.<function>` at `scale`, imported only when it runs: one
    `python -m bench NAME` (a process per case in the smoke test) loads one case's
    dependencies, not every case's (playwright, the gateway app, …)."""

    async def runner(**overrides: Any) -> dict[str, Any]:
        run: Runner = getattr(importlib.import_module(f"bench.cases.{module}"), function)
        return await run(**{**scale, **overrides})

    return runner


FULL: dict[str, Runner] = {
    "poller": case("poller_cycle"),
    "stage2": case("stage2_throughput"),
    "latency": case("latency"),
    # Commit → execution:batch with the per-hop split (the poller's NOTIFY path).
    "batch": case("latency", rates=(20, 50, 200), duration_s=6.0, profile=False, name="batch"),
    "versus_old": case("versus_old"),
    "fanout": case("fanout"),
    "failover": case("failover"),
    "stats": case("stats_api"),
    "n8n_stage2": case("n8n_stage2"),
    "n8n_latency": case("n8n_latency"),
    "triage_detail": case("triage_detail"),
    "layers": case("layers"),
    "workers": case("fanout", "run_workers"),
    "capacity": case("capacity"),
    # An hour; SOAK_DURATION_S / SOAK_WARMUP_S shorten it (bench/cases/soak.py).
    "soak": case(
        "soak",
        duration_s=float(os.environ.get("SOAK_DURATION_S", 3600)),
        warmup_s=float(os.environ.get("SOAK_WARMUP_S", 600)),
    ),
}
# Tiny: each case's code path end to end, nothing measured; waits that only matter
# for figures (settling, holding, draining, soaking) are cut to what the checks need.
QUICK: dict[str, Runner] = {
    "poller": case("poller_cycle", sizes=(2_000,), cycles=3, batch=5),
    "stage2": case("stage2_throughput", count=20, process_counts=(1,), repeats=1, profile=False),
    "latency": case("latency", rates=(20,), duration_s=1.0, profile=False),
    "batch": case("latency", rates=(20,), duration_s=1.0, profile=False, name="batch"),
    # A second of ingest; the drain outlasts one tick of the old loop (1 s).
    "versus_old": case(
        "versus_old", count=15, rate=20, max_delay_ms=400, baseline_intervals=(1.0,), drain_s=1.2
    ),
    # The smoke test installs nothing: nchan is compared only where it is already installed.
    "fanout": case(
        "fanout", counts=[20], singles=1, burst=3, profile_at=None, peer=nchan_installed()
    ),
    "failover": case("failover", clients=20, before_s=0.5, after_s=1.0),
    "stats": case("stats_api", size=5_000, pending=50, repeats=2),
    "n8n_stage2": case("n8n_stage2", count=20, repeats=1),
    "triage_detail": case("triage_detail", size=2_000, cameras=4, anchors=1, steps=5),
    "layers": case("layers", connections=20, peer=nchan_installed(), settle_s=0.1),
    "workers": case(
        "fanout", "run_workers", connections=20, singles=1, burst=3, peer=nchan_installed()
    ),
    # Held for 1.5 heartbeat intervals (each client must get 1 beat), then one event.
    "capacity": case(
        "capacity",
        connections=40,
        workers=2,
        members=2,
        heartbeat_s=1,
        hold_intervals=1.5,
        events=1,
        peer=nchan_installed(),
    ),
    # Two samples after the warm-up are all the smoke test checks (the shape).
    "soak": case("soak", duration_s=3, warmup_s=1, rate=5, clients=20, sample_every_s=0.5),
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
