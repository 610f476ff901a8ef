"""Result tables of the scale-out cases (issue 20): 1 vs 2 workers, held connections."""

from __future__ import annotations

from typing import Any

from bench.harness.markdown import command_line, table


def scale_out(benchmarks: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "workers" in benchmarks:
        out += workers(benchmarks["workers"])
    if "capacity" in benchmarks:
        out += capacity(benchmarks["capacity"])
    return out


def workers(entry: dict[str, Any]) -> list[str]:
    r = entry["result"]
    out = [
        f"### Fan-out at {r['connections']:,} clients: 1 vs 2 worker processes, gateway and nchan",
        "",
        command_line(entry),
        "",
    ]
    rows = []
    for key, server in (
        ("workers_1", "gateway, 1 worker"),
        ("nchan_workers_1", "nchan, 1 worker"),
        ("workers_2", "gateway, 2 workers"),
        ("nchan_workers_2", "nchan, 2 workers"),
    ):
        x = r.get(key)
        if x is None:
            continue
        to_all = x["one_event_to_all_ms"]
        rows.append(
            [
                server,
                f"{x['connected']:,}",
                x["connect_s"],
                x["rss_per_connection_kib"],
                to_all["p50_ms"],
                to_all["max_ms"],
                x["one_event"]["p99_ms"],
                f"{x['delivered_per_s']:,}" if x["delivered_per_s"] else "—",
            ]
        )
    out += table(
        [
            "server",
            "held",
            "connect s",
            "RSS KiB/conn (all processes)",
            "1 event to the last client p50 ms",
            "… slowest ms",
            "1 event p99 ms (per client)",
            "delivered events/s (burst)",
        ],
        rows,
    )
    ratios = r.get("to_last_p50_ratio_gateway_over_nchan")
    if ratios:
        out += [
            "Gateway ÷ nchan, one event to the last client (p50): "
            + ", ".join(f"{k.replace('_', ' ')} {v}x" for k, v in ratios.items())
            + ".",
            "",
        ]
    return out


def capacity(entry: dict[str, Any]) -> list[str]:
    r = entry["result"]
    out = ["### Held connections across worker processes, heartbeats counted", ""]
    out += [command_line(entry), ""]
    rows = []
    for name in ("gateway", "nchan"):
        x = r.get(name)
        if not x:
            continue
        per_process = " / ".join(
            f"{p['connections']:,} x {p['rss_per_connection_kib']}"
            for p in x["processes"]
            if p["connections"] > 0
        )
        rows.append(
            [
                f"{name}, {x['workers']} workers",
                f"{x['connections']:,}",
                f"{x['held_at_end']:,}",
                x["client_processes"],
                x["connect_s"],
                f"{x['rss_total_after_kib'] / 1024:,.0f}",
                x["rss_per_connection_kib"],
                per_process,
                f"{x['heartbeats_per_client']['min']}-{x['heartbeats_per_client']['max']}"
                f" (≥ {x['heartbeats_expected_per_client']} in {x['hold_s']} s)",
                x["heartbeat_misses"],
                "yes" if x["every_client_every_event"] else "no",
                " / ".join(str(v) for v in x["one_event_to_last_ms"]),
            ]
        )
    out += table(
        [
            "server",
            "clients",
            "held at end",
            "client processes",
            "connect s",
            "RSS total MiB",
            "KiB/conn",
            "per process: connections x KiB/conn",
            "heartbeats per client",
            "heartbeat misses",
            "every event to every client",
            "each event to the last client ms",
        ],
        rows,
    )
    return out
