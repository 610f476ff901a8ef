"""`python -m bench.experiments.soak_tracemalloc [DURATION_S] [WARMUP_S] [--untraced]`: is the
gateway's RSS creep during a soak a leak?

Runs the soak (bench/soak.py: 30 executions/s, 200 reading SSE clients) with the
gateway under tracemalloc (bench/experiments/gateway_variant.py). After warm-up
and then every `every_s` it asks the gateway for an allocation dump; each dump
first notes the traced total, then runs a full garbage collection and lists what
is still alive by allocation site. Growth that survives the collection, at one
site, dump after dump, is a leak; growth that the collection takes back is
garbage waiting for a (deliberately rare, see services/gateway/__main__.py)
full collection. Writes bench/results/soak_tracemalloc.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.cases import soak

OUT = Path(__file__).parents[1] / "results" / "soak_tracemalloc.json"


def _read_dump(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def _parse(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    head = lines[0].split()
    # "total N bytes in M blocks (traced T before collecting C objects)"
    return {
        "live_bytes": int(head[1]),
        "traced_before_collect": int(head[7]),
        "collected_objects": int(head[10]),
        "sites": {site: int(size) for size, _, site in (line.split(" ", 2) for line in lines[1:])},
    }


async def main(
    duration_s: float, warmup_s: float, every_s: float = 60.0, *, trace_python: bool = True
) -> dict[str, Any]:
    """With `trace_python` False the gateway runs untraced (tracemalloc's own snapshots
    move RSS); then the only probe is a malloc_trim(0) just before the end."""
    trace = Path(tempfile.mkdtemp()) / "gateway-alloc"
    trimmed = trace.with_name("gateway-trim")
    dumps: list[dict[str, Any]] = []
    trims: list[dict[str, Any]] = []
    due = [warmup_s if trace_python else duration_s - 15]

    async def on_sample(elapsed: float, pid: int) -> None:
        if elapsed < due[0]:
            return
        if not trace_python:
            due[0] = float("inf")
            os.kill(pid, signal.SIGUSR2)
            for _ in range(100):
                await asyncio.sleep(0.1)
                text = _read_dump(trimmed)
                if text is not None:
                    before, after = map(int, text.split())
                    trims.append({"at_s": round(elapsed), "rss_before": before, "rss_after": after})
                    return
            return
        due[0] += every_s
        path = Path(f"{trace}.{len(dumps) + 1}")
        os.kill(pid, signal.SIGUSR1)
        for _ in range(300):
            await asyncio.sleep(0.1)
            text = _read_dump(path)
            if text is not None:
                dumps.append({"at_s": round(elapsed), **_parse(text)})
                return

    result = await soak.run(
        duration_s=duration_s,
        warmup_s=warmup_s,
        gateway_module="bench.experiments.gateway_variant",
        gateway_env=(
            {"BENCH_TRACEMALLOC": str(trace), "BENCH_TRACEMALLOC_COLLECT": "1"}
            if trace_python
            else {"BENCH_MALLOC_TRIM": str(trimmed)}
        ),
        on_sample=on_sample,
    )
    growth: dict[str, int] = {}
    if len(dumps) >= 2:
        first, last = dumps[0]["sites"], dumps[-1]["sites"]
        growth = {
            site: last.get(site, 0) - first.get(site, 0)
            for site in set(first) | set(last)
            if abs(last.get(site, 0) - first.get(site, 0)) >= 4096
        }
    return {
        "soak": {k: v for k, v in result.items() if k != "samples"},
        "rss_samples": result["samples"],
        "dumps": [{k: v for k, v in d.items() if k != "sites"} for d in dumps],
        "malloc_trim": trims,
        "live_growth_by_site_bytes": dict(sorted(growth.items(), key=lambda kv: -abs(kv[1]))),
    }


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    untraced = "--untraced" in sys.argv
    duration = float(args[0]) if args else 600.0
    warmup = float(args[1]) if len(args) > 1 else 240.0
    report = asyncio.run(main(duration, warmup, trace_python=not untraced))
    out = OUT.with_name("soak_untraced.json") if untraced else OUT
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples"}, indent=1))
