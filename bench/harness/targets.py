"""The issue's targets, checked against a result set: each is met, missed or not run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    benchmark: str
    text: str
    check: Callable[[dict[str, Any]], tuple[bool, str]]


def _rate(result: dict[str, Any], rate: int) -> dict[str, Any]:
    return next(r for r in result["rates"] if r["rate_per_s"] == rate)


def _fan(result: dict[str, Any], server: str, n: int) -> dict[str, Any]:
    return next(r for r in result[server] if r["connections"] == n)


def _latency_500(r: dict[str, Any]) -> tuple[bool, str]:
    x = _rate(r, 500)["commit_to_sse"]
    return x["p50_ms"] <= 20 and x["p99_ms"] <= 100, f"p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms"


def _versus(r: dict[str, Any]) -> tuple[bool, str]:
    ours = r["ours"]
    ratio = r["median_latency_ratio_old_over_ours"].get("interval_3s")
    ok = ours["missed"] == 0 and ratio is not None and ratio >= 50
    return ok, f"ours missed {ours['missed']}, old/ours median {ratio}x"


def _held(r: dict[str, Any]) -> tuple[bool, str]:
    x = _fan(r, "gateway", 10000)
    return x["connected"] == 10000, f"{x['connected']} held"


def _rss(r: dict[str, Any]) -> tuple[bool, str]:
    x = _fan(r, "gateway", 10000)["rss_per_connection_kib"]
    return x <= 50, f"{x} KiB/connection at 10k"


def _one_event(r: dict[str, Any]) -> tuple[bool, str]:
    x = _fan(r, "gateway", 5000)["one_event"]["p99_ms"]
    return x <= 250, f"p99 {x} ms at 5k"


def _peer(r: dict[str, Any]) -> tuple[bool, str]:
    ratios = {x["connections"]: x["delivered_per_s_ratio"] for x in r["gateway_vs_nchan"]}
    worst = min(v for v in ratios.values() if v is not None)
    return worst >= 0.5, ", ".join(f"{n}: {v}x" for n, v in ratios.items())


def _workers_held(r: dict[str, Any]) -> tuple[bool, str]:
    n = r["connections"]
    held = [r[f"workers_{w}"]["connected"] for w in (1, 2)]
    return n >= 10000 and held == [n, n], f"{held[0]:,} / {held[1]:,} of {n:,} held"


def _workers_vs_nchan(r: dict[str, Any]) -> tuple[bool, str]:
    ratios = r["to_last_p50_ratio_gateway_over_nchan"]
    ok = r["connections"] >= 10000 and all(v is not None and v <= 1.0 for v in ratios.values())
    text = ", ".join(f"{k.replace('_', ' ')}: {v}x" for k, v in ratios.items())
    return ok, f"{text} at {r['connections']:,}"


def _idle_rss(r: dict[str, Any]) -> tuple[bool, str]:
    kib = [r[f"workers_{w}"]["rss_per_connection_kib"] for w in (1, 2)]
    ok = r["connections"] >= 10000 and max(kib) <= 8
    return ok, f"{kib[0]} KiB (1 worker), {kib[1]} KiB (2 workers) at {r['connections']:,}"


def _capacity(r: dict[str, Any]) -> tuple[bool, str]:
    x = r["gateway"]
    n = x["connections"]
    ok = (
        n >= 40000
        and x["held_at_end"] == n
        and x["heartbeat_misses"] == 0
        and x["every_client_every_event"]
    )
    return ok, (
        f"{x['held_at_end']:,}/{n:,} held on {x['workers']} workers, "
        f"{x['heartbeat_misses']} heartbeat misses, every event to every client: "
        f"{x['every_client_every_event']}"
    )


def _stage2(r: dict[str, Any]) -> tuple[bool, str]:
    one = next(x for x in r["runs"] if x["processes"] == 1)["per_process_per_s"]
    return one is not None and one >= 200, f"{one}/s with one process"


def _n8n_stage2(r: dict[str, Any]) -> tuple[bool, str]:
    one = r["n8n_per_process_per_s"]
    peer = r["raw_per_process_per_s_same_rounds"]
    ratio = r.get("n8n_over_raw")
    return one >= 200, f"{one}/s with one process (raw JSON in the same rounds: {peer}/s, {ratio}x)"


def _poller(r: dict[str, Any]) -> tuple[bool, str]:
    x = next(s for s in r["sizes"] if s["executions"] == 1_000_000)["cycle_with_batch"]
    return x["p50_ms"] <= 10, f"p50 {x['p50_ms']} ms, p95 {x['p95_ms']} ms at 1M"


def _failover(r: dict[str, Any]) -> tuple[bool, str]:
    bad = r["resets"] + r["missing"] + r["duplicates"] + r["rest_reloads_caused"]
    return bad == 0 and r["clients_resumed"] == r["clients"], (
        f"{r['clients']} clients: {r['resets']} resets, {r['missing']} missing, "
        f"{r['duplicates']} duplicates; all resumed {r['all_resumed_after_kill_ms']} ms after kill"
    )


def _stats(r: dict[str, Any]) -> tuple[bool, str]:
    worst = max(r["cases"], key=lambda case: case["api"]["p95_ms"])
    ok = worst["api"]["p95_ms"] <= 100 and r["executions"] >= 1_000_000
    return ok, f"worst p95 {worst['api']['p95_ms']} ms ({worst['case']}) at {r['executions']:,}"


def _triage_detail(r: dict[str, Any]) -> tuple[bool, str]:
    api = r["api"]["step_per_frame"]["p95_ms"]
    page = r["browser"]["step_per_frame"]["p95_ms"]
    opened = r["api"]["open_detail_plus_image"]["p95_ms"]
    ok = max(api, page, opened) <= 100
    return ok, f"p95 per frame: API {api} ms, in Chromium {page} ms; open {opened} ms"


TARGETS = (
    Target("latency", "commit → SSE at 500/s: p50 ≤ 20 ms, p99 ≤ 100 ms", _latency_500),
    Target("versus_old", "0 missed, ≥ 50x lower median than the old design", _versus),
    Target("fanout", "10,000 connections held on one gateway process", _held),
    Target("fanout", "≤ 50 KiB RSS per connection", _rss),
    Target("fanout", "one event to 5,000 clients p99 ≤ 250 ms", _one_event),
    Target("fanout", "≥ 0.5x nchan's delivered events/s", _peer),
    Target("workers", "10,000 clients held with 1 and with 2 gateway workers", _workers_held),
    Target(
        "workers",
        "one event to the last of 10,000 clients ≤ 1.0x nchan (same workers, same client)",
        _workers_vs_nchan,
    ),
    Target("workers", "≤ 8 KiB RSS per idle SSE connection (all processes)", _idle_rss),
    Target(
        "capacity",
        "40,000 clients across workers: all held, 0 heartbeat misses, every event to all",
        _capacity,
    ),
    Target("stage2", "≥ 200 executions/s per process (100 KB JPEGs)", _stage2),
    Target("poller", "≤ 10 ms per cycle at 1M executions", _poller),
    Target("failover", "SIGKILL a gateway: 0 resets, 0 missing, 0 duplicates", _failover),
    Target("stats", "statistics API ≤ 100 ms (p95, every case) at 1M executions", _stats),
    Target(
        "triage_detail", "detail open and camera-sequence step ≤ 100 ms per frame", _triage_detail
    ),
    Target(
        "n8n_stage2", "≥ 200 n8n executions/s per process (decode + binary + WebP)", _n8n_stage2
    ),
)


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    verdicts = []
    for target in TARGETS:
        result = results.get(target.benchmark, {}).get("result")
        if result is None:
            verdicts.append({"target": target.text, "verdict": "not run", "measured": ""})
            continue
        try:
            ok, measured = target.check(result)
        except (KeyError, StopIteration, ValueError, TypeError) as exc:
            verdicts.append(
                {"target": target.text, "verdict": "not measured", "measured": repr(exc)}
            )
            continue
        verdicts.append(
            {"target": target.text, "verdict": "met" if ok else "missed", "measured": measured}
        )
    return verdicts
