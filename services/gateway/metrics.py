"""Prometheus metrics of one gateway process, read from the hub at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.gateway.hub import Hub


def labelled_counter(
    name: str, documentation: str, label: str, counts: Mapping[str, int]
) -> CounterMetricFamily:
    """One counter family with a sample per `label` value (sorted: a stable scrape)."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


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
        yield labelled_counter(
            "gateway_sse_events_sent", "SSE events written to clients", "event", stats.events_sent
        )
        yield labelled_counter(
            "gateway_events_published",
            "events fanned out by the hub (stream events)",
            "event",
            stats.events_published,
        )
        yield labelled_counter(
            "gateway_sse_resets", "reset events issued, by reason", "reason", stats.resets
        )
        yield labelled_counter(
            "gateway_sse_resumed",
            "clients resumed by Last-Event-ID, by where the missed events came from",
            "source",
            stats.resumed,
        )
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
