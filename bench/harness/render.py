"""The one renderer of bench results: `python -m bench` prints it; `python -m
bench.harness.render` renders bench/results/latest.json as the figure tables of
docs/BENCHMARKS.md (between its `<!-- figures:start -->` and `<!-- figures:end -->`
markers), so the document always shows exactly what the last `make bench` measured.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.harness.infra import REPO_ROOT, RESULTS
from bench.harness.markdown import command_line as _cmd
from bench.harness.markdown import table
from bench.harness.render_scale import scale_out

DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _cpu(percent: dict[str, float]) -> str:
    return ", ".join(f"{name} {value}%" for name, value in percent.items())


def _n8n_latency(entry: dict[str, Any]) -> list[str]:
    """The total, then where it goes: one row per hop along the path."""
    result = entry["result"]
    total = result["n8n_finish_to_sse"]
    summary = (
        f"{result['received']}/{result['n8n_runs']} runs at {result['rate_per_s']} frames/s; "
        f"total p50 {total['p50_ms']} ms, p95 {total['p95_ms']} ms, p99 {total['p99_ms']} ms."
    )
    columns = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
    hops = [[name, *(h[k] for k in columns)] for name, h in result["hops"].items()]
    return [
        "### n8n finish → `etl:stage2:complete` on SSE, by hop",
        "",
        _cmd(entry),
        "",
        summary,
        "",
        *table(["hop", "p50 ms", "p95 ms", "p99 ms", "max ms"], hops),
    ]


def _n8n_stage2(e: dict[str, Any]) -> list[str]:
    r = e["result"]
    out = [
        f"### Stage 2 on n8n-sourced executions (WebP ≤ {r.get('webp_max_px')} px), "
        "beside raw JSON in the same rounds",
        "",
        _cmd(e),
        "",
    ]
    out += table(
        ["source", "per process (median)", f"all {r.get('rounds', 1)} rounds", "CPU %"],
        [
            [
                "n8n (flatted + binary store + WebP)",
                r["n8n_per_process_per_s"],
                " / ".join(str(v) for v in r["n8n_all_runs"]),
                "; ".join(_cpu(c) for c in r["n8n_cpu_pct"]),
            ],
            [
                "raw JSON (base64)",
                r["raw_per_process_per_s_same_rounds"],
                " / ".join(str(v) for v in r["raw_all_runs"]),
                "; ".join(_cpu(c) for c in r.get("raw_cpu_pct", [])),
            ],
        ],
    )
    splits = r.get("cpu_ms_per_execution") or {}
    if splits.get("n8n") and splits.get("raw"):
        steps = sorted(set(splits["n8n"]["steps"]) | set(splits["raw"]["steps"]))
        header = ["CPU ms per execution (median)", *steps, "worker rest", "worker total"]
        rows = [
            [
                source,
                *(x["steps"].get(step, 0.0) for step in steps),
                x["worker_rest"],
                x["worker_total"],
                x["postgres"],
            ]
            for source, x in (("n8n", splits["n8n"]), ("raw", splits["raw"]))
        ]
        out += table([*header, "PostgreSQL"], rows)
    out += [f"n8n ÷ raw (medians): {r.get('n8n_over_raw')}.", ""]
    return out


def render(document: dict[str, Any]) -> list[str]:
    b = document["benchmarks"]
    out: list[str] = []
    any_entry = next(iter(b.values()))
    m = any_entry["machine"]
    out += ["### Machine", ""]
    out += table(
        ["CPU", "cores", "memory", "kernel", "Python", "PostgreSQL", "RabbitMQ", "nchan"],
        [
            [
                m["cpu_model"],
                m["cpus"],
                f"{int(m['memory'].split()[0]) / 2**20:.1f} GiB",
                m["kernel"],
                m["python"],
                m["postgresql"],
                m["rabbitmq"],
                m["nginx_nchan"],
            ]
        ],
    )
    out += ["### Targets", ""]
    out += table(
        ["target", "verdict", "measured"],
        [[t["target"], f"**{t['verdict']}**", t["measured"]] for t in document["targets"]],
    )
    if "latency" in b:
        e = b["latency"]
        out += ["### End-to-end latency (Stage 2 commit → SSE receipt)", "", _cmd(e), ""]
        rows = []
        for r in e["result"]["rates"]:
            c, lag = r["commit_to_sse"], r["outbox_relay_lag"]
            rows.append(
                [
                    r["rate_per_s"],
                    r["achieved_per_s"],
                    f"{r['received']}/{r['completions']}",
                    c["p50_ms"],
                    c["p95_ms"],
                    c["p99_ms"],
                    c["max_ms"],
                    lag["p50_ms"],
                    lag["p99_ms"],
                    _cpu(r["cpu_pct"]),
                ]
            )
        out += table(
            [
                "completions/s",
                "achieved",
                "received",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "relay lag p50",
                "relay lag p99",
                "CPU % of each service",
            ],
            rows,
        )
    if "batch" in b:
        e = b["batch"]
        out += ["### Stage 2 commit → `execution:batch`, hop by hop", "", _cmd(e), ""]
        out += _batch_hops(e["result"]["rates"])
    if "n8n_latency" in b:
        out += _n8n_latency(b["n8n_latency"])
    if "versus_old" in b:
        e = b["versus_old"]
        r = e["result"]
        w = r["workload"]
        out += ["### Ours versus the old polling design", "", _cmd(e), ""]
        out += [
            f"Workload: {w['executions']} executions at {w['ingest_rate_per_s']}/s, Stage 2 "
            f"delay 0-{w['stage2_delay_ms'][1]} ms; {w['completed_out_of_id_order']} completed "
            f"after a newer execution (out of id order); {w['stage2_failed']} failed.",
            "",
        ]
        rows = [
            [
                "ours: `etl:stage2:complete` or `execution:batch`",
                r["ours"]["delivered"],
                r["ours"]["missed"],
                r["ours"]["miss_rate_pct"],
                *[r["ours"]["latency"][k] for k in ("p50_ms", "p95_ms", "p99_ms")],
            ]
        ]
        for name, old in r["old_polling"].items():
            rows.append(
                [
                    f"old polling, {name.replace('interval_', 'every ')}",
                    old["delivered"],
                    old["missed"],
                    old["miss_rate_pct"],
                    *[old["latency"][k] for k in ("p50_ms", "p95_ms", "p99_ms")],
                ]
            )
        out += table(
            ["design", "delivered", "missed", "miss %", "p50 ms", "p95 ms", "p99 ms"], rows
        )
        ratios = ", ".join(
            f"{k.replace('interval_', 'every ')}: {v}x"
            for k, v in r["median_latency_ratio_old_over_ours"].items()
        )
        by_event = r["ours"]["by_event"]
        out += [
            f"Median latency, old ÷ ours: {ratios}. Ours by event: "
            + "; ".join(
                f"`{k}` p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms" for k, v in by_event.items()
            )
            + ".",
            "",
        ]
    if "fanout" in b:
        e = b["fanout"]
        r = e["result"]
        out += ["### SSE fan-out: one gateway process versus nchan", "", _cmd(e), ""]
        rows = []
        for server in ("gateway", "nchan"):
            for x in r[server]:
                one, to_all = x["one_event"], x["one_event_to_all_ms"]
                rows.append(
                    [
                        server,
                        f"{x['connections']:,}",
                        f"{x['connected']:,}",
                        x["connect_s"],
                        x["rss_per_connection_kib"],
                        one["p50_ms"],
                        one["p99_ms"],
                        to_all["max_ms"],
                        f"{x['delivered_per_s']:,}",
                        x["server_cpu_s_per_1k_deliveries"],
                    ]
                )
        out += table(
            [
                "server",
                "connections",
                "held",
                "connect s",
                "RSS KiB/conn",
                "1 event p50 ms",
                "1 event p99 ms",
                "slowest 'to all' ms",
                "delivered events/s",
                "server CPU s / 1k deliveries",
            ],
            rows,
        )
        out += [
            "Gateway ÷ nchan, delivered events/s: "
            + ", ".join(
                f"{x['connections']:,} connections {x['delivered_per_s_ratio']}x"
                for x in r["gateway_vs_nchan"]
            )
            + ".",
            "",
        ]
    out += scale_out(b)
    if "stage2" in b:
        e = b["stage2"]
        r = e["result"]
        out += [
            f"### Stage 2 throughput (JPEGs of ~{r['mean_jpeg_bytes'] // 1000} KB)",
            "",
            _cmd(e),
            "",
        ]
        out += table(
            [
                "worker processes",
                "executions",
                "failed",
                "executions/s",
                "per process (median run)",
                f"per process, all {r.get('repeats', 1)} runs",
                "CPU % per process",
                "wall s incl. start-up",
            ],
            [
                [
                    x["processes"],
                    x["executions"],
                    x["failed"],
                    x["executions_per_s"],
                    x["per_process_per_s"],
                    " / ".join(str(v) for v in x.get("per_process_per_s_all_runs", [])),
                    _cpu(x["cpu_pct"]),
                    x["wall_s_including_startup"],
                ]
                for x in r["runs"]
            ],
        )
        profiled = r.get("profile_run")
        if profiled and profiled.get("profile", {}).get("top_self"):
            top = ", ".join(
                f"{f['frame']} {f['pct']} %" for f in profiled["profile"]["top_self"][:5]
            )
            out += [
                f"Profiled run (py-spy, one process, not counted: "
                f"{profiled['per_process_per_s']}/s under sampling): top self frames {top}.",
                "",
            ]
    if "n8n_stage2" in b:
        out += _n8n_stage2(b["n8n_stage2"])
    if "poller" in b:
        e = b["poller"]
        r = e["result"]
        out += ["### Poller cycle time", "", _cmd(e), ""]
        out += table(
            [
                "executions in table",
                "fill s",
                "idle cycle p50 ms",
                "idle p95",
                "cycle with batch p50 ms",
                "batch p95",
                "batch p99",
                "plain anti-join (reference) ms",
            ],
            [
                [
                    f"{x['executions']:,}",
                    x["fill_s"],
                    x["idle_cycle"]["p50_ms"],
                    x["idle_cycle"]["p95_ms"],
                    x["cycle_with_batch"]["p50_ms"],
                    x["cycle_with_batch"]["p95_ms"],
                    x["cycle_with_batch"]["p99_ms"],
                    x["naive_anti_join_ms"],
                ]
                for x in r["sizes"]
            ],
        )
        big = r["sizes"][-1]
        out += [
            f"Claim statement plan at {big['executions']:,} executions "
            f"(EXPLAIN (ANALYZE, BUFFERS, COSTS OFF), batch of {big['batch']} pending):",
            "",
            "```",
            *big["claim_plan"],
            "```",
            "",
        ]
    return out


def main() -> int:
    document = json.loads(RESULTS.read_text())
    text = DOC.read_text()
    if START not in text or END not in text:
        print(f"{DOC} has no {START} … {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = "\n".join(render(document))
    DOC.write_text(f"{head}{START}\n\n{body}\n{END}{tail}")
    print(f"figures written into {DOC.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _batch_hops(rates: list[dict[str, Any]]) -> list[str]:
    """p50 / p99 of each hop (bench/harness/hops.py), one column pair per rate."""
    header = ["hop (ms)"]
    for r in rates:
        header += [f"{r['rate_per_s']}/s p50", f"{r['rate_per_s']}/s p99"]
    names = list(rates[0]["batch_hops"]["hops"]) if rates else []
    rows = []
    for name in names:
        row: list[Any] = [name]
        for r in rates:
            hop = r["batch_hops"]["hops"][name]
            row += [hop["p50_ms"], hop["p99_ms"]]
        rows.append(row)
    batched = ", ".join(
        f"{r['rate_per_s']}/s: {r['batch_hops']['executions']} executions in "
        f"{r['batch_hops']['batches']} batches"
        for r in rates
    )
    return [*table(header, rows), f"Batching: {batched}.", ""]
