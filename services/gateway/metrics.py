"""Prometheus metrics of one gateway process, read from the hub at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.gateway.hub import Hub


class HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        stats = self.hub.stats
        yield GaugeMetricFamily(
            "gateway_sse_clients", "SSE clients connected now", value=self.hub.client_count
        )
        yield GaugeMetricFamily(
            "gateway_replay_buffer_bytes",
            "bytes of the events kept for Last-Event-ID replay (REPLAY_BUFFER_MAX_BYTES bounds it)",
            value=self.hub.replay_bytes,
        )
        yield CounterMetricFamily(
            "gateway_sse_connections", "SSE connections accepted", value=stats.connections
        )
        yield CounterMetricFamily(
            "gateway_sse_dropped_clients",
            "SSE clients disconnected because their queue was full",
            value=stats.dropped_clients,
        )
        sent = CounterMetricFamily(
            "gateway_sse_events_sent", "SSE events written to clients", labels=["event"]
        )
        for event, count in sorted(stats.events_sent.items()):
            sent.add_metric([event], count)
        yield sent
        published = CounterMetricFamily(
            "gateway_events_published",
            "events fanned out by the hub (stream events)",
            labels=["event"],
        )
        for event, count in sorted(stats.events_published.items()):
            published.add_metric([event], count)
        yield published
        resets = CounterMetricFamily(
            "gateway_sse_resets", "reset events issued, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.resets.items()):
            resets.add_metric([reason], count)
        yield resets
        resumed = CounterMetricFamily(
            "gateway_sse_resumed",
            "clients resumed by Last-Event-ID, by where the missed events came from",
            labels=["source"],
        )
        for source, count in sorted(stats.resumed.items()):
            resumed.add_metric([source], count)
        yield resumed
        yield GaugeMetricFamily(
            "gateway_sse_filters", "distinct event filters in use now", value=self.hub.filter_count
        )


def build_registry(hub: Hub) -> CollectorRegistry:
    """One registry per app, so several apps can live in one process (tests)."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    registry.register(HubCollector(hub))
    return registry
