"""/healthz, /readyz and /metrics, including a broker outage and a database outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from shared.bus import Bus
from shared.contracts import Stage2Failed, encode
from testkit.gateway import Gateway, GatewayFactory
from testkit.sse import SseConnector, close_all
from testkit.tcp_proxy import ProxyFactory
from testkit.waiting import WAIT_S


async def _wait_status(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        response = await client.get(path)
        if response.status_code == status or loop.time() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_health_ready_and_metrics(gateway: Gateway, http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": True, "broker": True}}
    metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "gateway_sse_clients",
        "gateway_sse_connections_total",
        "gateway_sse_dropped_clients_total",
        "gateway_sse_events_sent_total",
        "gateway_events_published_total",
        "gateway_sse_filters",
        "process_cpu_seconds_total",
    ):
        assert name in metrics.text


async def test_broker_outage_makes_it_unready_and_the_stream_resumes_without_a_gap(
    gateway_factory: GatewayFactory, amqp_url: str, tcp_proxy: ProxyFactory, bus: Bus
) -> None:
    proxy, proxied_amqp = tcp_proxy(amqp_url)
    gateway = await gateway_factory(amqp_url=proxied_amqp)
    sse = SseConnector(gateway.base_url, [])

    messages = {
        i: Stage2Failed(execution_id=i, error="boom", retry_count=1, timestamp=datetime.now(UTC))
        for i in (1, 2, 3)
    }

    def failed(execution_id: int) -> Stage2Failed:
        return messages[execution_id]

    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as http:
        try:
            client = await sse.connect()
            await bus.publish(failed(1))
            assert (await client.next()).data == encode(failed(1)).decode()
            proxy.cut()
            down = await _wait_status(http, "/readyz", 503)
            assert down.status_code == 503
            assert down.json()["checks"] == {"database": True, "broker": False}
            # Published while this gateway is cut off: kept by the stream.
            await bus.publish(failed(2))

            proxy.restore()
            assert (await _wait_status(http, "/readyz", 200)).status_code == 200
            await bus.publish(failed(3))
            # No reset, no gap, no duplicate: the reader re-reads and skips what it had.
            got = [await client.next() for _ in range(2)]
            assert [e.event for e in got] == ["etl:stage2:failed"] * 2
            assert [e.data for e in got] == [encode(failed(i)).decode() for i in (2, 3)]
            assert gateway.hub.stats.resets == {}
        finally:
            await close_all(sse)


async def test_database_outage_makes_it_unready(
    gateway_factory: GatewayFactory, database_url: str, tcp_proxy: ProxyFactory
) -> None:
    proxy, proxied_db = tcp_proxy(database_url)
    gateway = await gateway_factory(database_url=proxied_db)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=WAIT_S) as http:
        assert (await http.get("/readyz")).status_code == 200
        proxy.cut()
        down = await _wait_status(http, "/readyz", 503)
        assert down.status_code == 503
        assert down.json()["checks"] == {"database": False, "broker": True}
        assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
        unavailable = await http.get("/api/executions")
        assert unavailable.status_code == 503
        assert unavailable.json() == {"detail": "database unavailable, retry shortly"}
        proxy.restore()
        assert (await _wait_status(http, "/readyz", 200)).status_code == 200
