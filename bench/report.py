"""The printed summary: headline figures per benchmark, then the targets."""

from __future__ import annotations

from typing import Any


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print(_row(header, widths))
    print(_row(["-" * w for w in widths], widths))
    for row in rows:
        print(_row([str(c) for c in row], widths))


def _ms(summary: dict[str, Any], *keys: str) -> list[str]:
    return [f"{summary[k]}" for k in keys]


def print_table(document: dict[str, Any]) -> None:
    b = document["benchmarks"]
    if "latency" in b:
        rows = [
            [
                str(r["rate_per_s"]),
                str(r["achieved_per_s"]),
                f"{r['received']}/{r['completions']}",
                *_ms(r["commit_to_sse"], "p50_ms", "p95_ms", "p99_ms"),
                str(r["outbox_relay_lag"]["p99_ms"]),
            ]
            for r in b["latency"]["result"]["rates"]
        ]
        header = ["rate/s", "achieved", "received", "p50 ms", "p95 ms", "p99 ms", "relay p99"]
        _table("End-to-end latency: Stage 2 commit -> SSE receipt", header, rows)
    if "versus_old" in b:
        r = b["versus_old"]["result"]
        rows = [
            [
                "ours (push + poller)",
                str(r["ours"]["miss_rate_pct"]),
                *_ms(r["ours"]["latency"], "p50_ms", "p95_ms", "p99_ms"),
            ]
        ]
        for name, old in r["old_polling"].items():
            rows.append(
                [
                    f"old polling {name}",
                    str(old["miss_rate_pct"]),
                    *_ms(old["latency"], "p50_ms", "p95_ms", "p99_ms"),
                ]
            )
        w = r["workload"]
        title = (
            f"Ours vs the old polling design ({w['executions']} executions, "
            f"{w['completed_out_of_id_order']} completed out of id order)"
        )
        _table(title, ["design", "missed %", "p50 ms", "p95 ms", "p99 ms"], rows)
    if "fanout" in b:
        r = b["fanout"]["result"]
        rows = []
        for server in ("gateway", "nchan"):
            for x in r[server]:
                rows.append(
                    [
                        server,
                        str(x["connections"]),
                        str(x["connected"]),
                        str(x["rss_per_connection_kib"]),
                        *_ms(x["one_event"], "p50_ms", "p99_ms"),
                        str(x["delivered_per_s"]),
                    ]
                )
        header = ["server", "conns", "held", "KiB/conn", "1 event p50", "p99", "delivered/s"]
        _table("SSE fan-out (one server process)", header, rows)
        ratios = ", ".join(
            f"{x['connections']}: {x['delivered_per_s_ratio']}x" for x in r["gateway_vs_nchan"]
        )
        print(f"gateway / nchan delivered events/s: {ratios}")
    if "stage2" in b:
        r = b["stage2"]["result"]
        rows = [
            [
                str(x["processes"]),
                str(x["executions"]),
                str(x["executions_per_s"]),
                str(x["per_process_per_s"]),
                str(x["cpu_pct"]),
            ]
            for x in r["runs"]
        ]
        title = f"Stage 2 throughput (JPEGs of ~{r['mean_jpeg_bytes'] // 1000} KB)"
        _table(title, ["processes", "executions", "exec/s", "per process", "CPU %"], rows)
    if "poller" in b:
        rows = [
            [
                f"{x['executions']:,}",
                *_ms(x["idle_cycle"], "p50_ms", "p95_ms"),
                *_ms(x["cycle_with_batch"], "p50_ms", "p95_ms"),
                str(x["naive_anti_join_ms"]),
            ]
            for x in b["poller"]["result"]["sizes"]
        ]
        header = ["executions", "idle p50", "idle p95", "batch p50", "batch p95", "naive ms"]
        _table("Poller cycle time (ms)", header, rows)
    targets = [[t["verdict"], t["target"], t["measured"]] for t in document["targets"]]
    _table("Targets", ["verdict", "target", "measured"], targets)
