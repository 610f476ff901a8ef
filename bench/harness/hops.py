"""Where Stage 2 commit → `execution:batch` spends its time, hop by hop.

Every stamp is time.time() on this one machine (one clock for every process):

- ``committed``: the Stage 2 completion's own timestamp (its `stage2.complete`
  event), taken just before the completing statement is sent — the zero of
  the headline figure;
- the poller's batch log line (``published executions.new batch``): when the
  NOTIFY that woke the cycle arrived (``notified_at``), when the cycle began
  (``started_at``), and the claim / publish-with-confirm / commit durations;
- the batch's own ``timestamp``: the poller's clock just before it publishes;
- a stream tap in a process of its own (a plain reader of the event stream, like
  a gateway's): when the broker delivered the batch to a stream consumer;
- the SSE client's receipt (bench/clients/sse_recorder.py).

Critical path: commit → cycle start → publish → stream consumer → SSE client.
The publish confirm and the claim's commit are off that path (the broker
delivers to readers while the poller still waits for its confirm), but they
make the cycle longer, and so the next batch later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bench.clients.recorder import Recorder
from bench.harness.stats import summary_ms

BATCH_LOG = "published executions.new batch"
BATCH_EVENT = "execution:batch"


def stream_tap(amqp_url: str, exchange: str) -> Recorder:
    """A bare reader of the event stream in a process of its own (bench/clients/stream_tap.py)."""
    return Recorder(amqp_url, module="bench.clients.stream_tap", args=(exchange,))


def poller_batches(log_text: str) -> dict[int, dict[str, Any]]:
    """Execution id → the poller's log line of the batch that carried it."""
    batches: dict[int, dict[str, Any]] = {}
    for line in log_text.splitlines():
        if BATCH_LOG not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for execution_id in record.get("execution_ids", []):
            batches.setdefault(execution_id, record)
    return batches


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def hop_split(
    recorder: Recorder, tap: Recorder, poller_log: str, ids: Iterable[int]
) -> dict[str, Any]:
    """Per-hop summaries (ms) over the executions in `ids`, plus how they were batched."""
    committed: dict[int, float] = {}
    published: dict[int, float] = {}
    received: dict[int, float] = {}
    for receipt in recorder.receipts:
        if receipt.event == BATCH_EVENT:
            for execution_id in receipt.ids:
                received.setdefault(execution_id, receipt.received_at)
                if receipt.timestamp:
                    published.setdefault(execution_id, _epoch(receipt.timestamp))
        elif receipt.timestamp and receipt.ids:
            committed.setdefault(receipt.ids[0], _epoch(receipt.timestamp))
    tapped = tap.first_receipt((BATCH_EVENT,))
    batches = poller_batches(poller_log)
    hops: dict[str, list[float]] = {
        name: []
        for name in (
            "commit_to_cycle_start",
            "notify_delivery",
            "notify_to_cycle_start",
            "cycle_start_to_publish",
            "publish_to_stream_reader",
            "stream_reader_to_sse_client",
            "total",
            "claim",
            "publish_confirm",
            "claim_commit",
        )
    }
    carried_by: set[float] = set()
    for i in ids:
        batch = batches.get(i)
        if batch is None or i not in committed or i not in received or i not in published:
            continue
        t0, started = committed[i], batch["started_at"]
        carried_by.add(started)
        hops["commit_to_cycle_start"].append(started - t0)
        notified = batch.get("notified_at")
        if notified is not None and notified >= t0:
            # The first NOTIFY the cycle saw came from this commit (or a later one).
            hops["notify_delivery"].append(notified - t0)
            hops["notify_to_cycle_start"].append(started - notified)
        hops["cycle_start_to_publish"].append(published[i] - started)
        if i in tapped:
            hops["publish_to_stream_reader"].append(tapped[i] - published[i])
            hops["stream_reader_to_sse_client"].append(received[i] - tapped[i])
        hops["total"].append(received[i] - t0)
        hops["claim"].append(batch["claim_ms"] / 1000)
        hops["publish_confirm"].append(batch["publish_ms"] / 1000)
        hops["claim_commit"].append(batch["commit_ms"] / 1000)
    counted = len(hops["total"])
    return {
        "executions": counted,
        "batches": len(carried_by),
        "executions_per_batch": round(counted / len(carried_by), 2) if carried_by else None,
        "hops": {name: summary_ms(values) for name, values in hops.items()},
    }
