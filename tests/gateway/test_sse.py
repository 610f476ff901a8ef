"""GET /api/events over a real socket, fed by real bus messages."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
from httpx_sse import ServerSentEvent

from shared.bus import Bus
from shared.contracts import (
    ExecutionBatch,
    ExecutionSummary,
    Stage2Complete,
    Stage2Failed,
    encode,
)
from testkit.factories import execution_summary, stage2_complete
from testkit.gateway import Gateway, GatewayFactory
from testkit.sse import SseConnector, SseFactory
from testkit.waiting import wait_until


async def past_a_small_ring(
    gateway_factory: GatewayFactory, sse_to: SseFactory, bus: Bus, count: int
) -> tuple[Gateway, SseConnector, list[ServerSentEvent]]:
    """A gateway whose replay ring holds 2 events, after `count` completions (ids 1..count)
    went through it; returns it, a connector, and the events as a client read them."""
    gateway = await gateway_factory(replay_buffer_size=2)
    sse = sse_to(gateway)
    early = await sse.connect()
    for i in range(1, count + 1):
        await bus.publish(stage2_complete(i))
    sent = [await early.next() for _ in range(count)]
    # Wait until the hub has fanned out all of them (bus delivery is asynchronous).
    await wait_until(
        lambda: sum(gateway.hub.stats.events_published.values()) >= count, "bus delivery"
    )
    return gateway, sse, sent


async def test_stage2_complete_reaches_two_clients_with_exact_payload_and_id(
    gateway: Gateway, sse: SseConnector, bus: Bus
) -> None:
    first = await sse.open()
    connection = await first.next()
    assert connection.event == "connection"
    assert connection.id == ""  # control events carry no id
    data = json.loads(connection.data)
    assert set(data) == {"client_id", "timestamp", "resumed_from"}
    assert data["resumed_from"] is None
    second = await sse.connect()

    message = stage2_complete(201)
    await bus.publish(message)

    events = [await first.next(), await second.next()]
    for event in events:
        assert event.event == "etl:stage2:complete"
        assert event.data == encode(message).decode()  # the bus body, untouched
        assert Stage2Complete.model_validate_json(event.data) == message
        assert re.fullmatch(r"\d+-[0-9a-f]{8}", event.id)  # stream offset + fingerprint
    assert events[0].id == events[1].id


async def test_each_routing_key_becomes_its_sse_event(
    gateway: Gateway, sse: SseConnector, bus: Bus
) -> None:
    client = await sse.connect()
    batch = ExecutionBatch(
        executions=[execution_summary(7), execution_summary(8)], timestamp=datetime.now(UTC)
    )
    failed = Stage2Failed(
        execution_id=9, error="image is not a JPEG", retry_count=3, timestamp=datetime.now(UTC)
    )
    await bus.publish(batch)
    await bus.publish(failed)
    got = [await client.next(), await client.next()]
    assert [(e.event, e.data) for e in got] == [
        ("execution:batch", encode(batch).decode()),
        ("etl:stage2:failed", encode(failed).decode()),
    ]
    ids = [int(e.id.split("-")[0]) for e in got]
    assert ids[1] == ids[0] + 1


async def test_invalid_bus_messages_never_reach_clients_and_the_stream_goes_on(
    gateway: Gateway, sse: SseConnector, bus: Bus
) -> None:
    client = await sse.connect()
    await bus.publish_raw("stage2.complete", b"{not json")
    await bus.publish_raw("stage2.failed", json.dumps({"execution_id": 1}).encode())
    good = stage2_complete(3)
    await bus.publish(good)
    event = await client.next()
    assert event.data == encode(good).decode()
    assert sum(gateway.hub.stats.events_published.values()) == 1


async def test_reconnect_with_last_event_id_replays_exactly_the_missed_events(
    gateway: Gateway, sse: SseConnector, bus: Bus
) -> None:
    watcher = await sse.connect()  # stays connected throughout
    leaver = await sse.connect()
    await bus.publish(stage2_complete(1))
    seen = await leaver.next()
    assert (await watcher.next()).id == seen.id
    await leaver.source.response.aclose()
    await wait_until(lambda: gateway.hub.client_count == 1, "the leaver to be unregistered")

    missed = [stage2_complete(i) for i in (2, 3, 4)]
    for message in missed:
        await bus.publish(message)
    missed_ids = [(await watcher.next()).id for _ in missed]

    back = await sse.open(last_event_id=seen.id)
    connection = await back.next()
    assert connection.event == "connection"
    assert json.loads(connection.data)["resumed_from"] == seen.id
    replayed = [await back.next() for _ in missed]
    assert [e.id for e in replayed] == missed_ids
    assert [e.data for e in replayed] == [encode(m).decode() for m in missed]

    live = stage2_complete(5)
    await bus.publish(live)
    after = await back.next()  # the next live event, nothing duplicated in between
    assert after.data == encode(live).decode()
    assert (await watcher.next()).id == after.id


async def test_last_event_id_query_parameter_resumes_like_the_header(
    gateway: Gateway, sse: SseConnector, bus: Bus
) -> None:
    # A page that must open a new EventSource cannot set the header.
    watcher = await sse.connect()
    await bus.publish(stage2_complete(1))
    first = await watcher.next()
    await bus.publish(stage2_complete(2))
    missed = await watcher.next()

    back = await sse.open(params={"last_event_id": first.id})
    connection = await back.next()
    assert json.loads(connection.data)["resumed_from"] == first.id
    replayed = await back.next()
    assert (replayed.id, replayed.data) == (missed.id, missed.data)


async def test_an_id_older_than_the_ring_is_read_back_from_the_stream(
    gateway_factory: GatewayFactory, sse_to: SseFactory, bus: Bus
) -> None:
    gateway, sse, sent = await past_a_small_ring(gateway_factory, sse_to, bus, 5)
    # The ring holds 4 and 5 only: 2 and 3 come back from the stream, then the ring.
    back = await sse.connect(last_event_id=sent[0].id)
    replayed = [await back.next() for _ in range(4)]
    assert [(e.id, e.data) for e in replayed] == [(e.id, e.data) for e in sent[1:]]
    assert gateway.hub.stats.resumed["stream"] == 1
    live = stage2_complete(99)
    await bus.publish(live)
    assert (await back.next()).data == encode(live).decode()


async def test_unusable_last_event_id_gets_reset_then_live_events(
    gateway_factory: GatewayFactory, sse_to: SseFactory, bus: Bus
) -> None:
    gateway, sse, sent = await past_a_small_ring(gateway_factory, sse_to, bus, 4)
    first_id = sent[0].id
    offset, _, tag = first_id.partition("-")
    wrong_tag = f"{(int(tag, 16) ^ 1):08x}"

    for stale, reason in [
        # Another message at that offset (a recreated stream), in and before the ring.
        (f"{offset}-{wrong_tag}", "no longer in the stream"),
        (f"{gateway.hub.head_offset}-{wrong_tag}", "unknown or expired event id"),
        # A position this stream never reached.
        ("999999-0123abcd", "unknown or expired event id"),
        ("not-an-id", "malformed event id"),
    ]:
        client = await sse.connect(last_event_id=stale)
        reset = await client.next()
        assert reset.event == "reset"
        assert reason in json.loads(reset.data)["reason"]
        assert reset.id == gateway.hub.head_id

    live = stage2_complete(99)
    await bus.publish(live)
    assert (await client.next()).data == encode(live).decode()


async def test_heartbeats_arrive_on_the_interval_without_ids(
    gateway_factory: GatewayFactory, sse_to: SseFactory
) -> None:
    gateway = await gateway_factory(heartbeat_interval_s=0.2)
    sse = sse_to(gateway)
    client = await sse.connect()
    for _ in range(2):
        beat = await client.next(skip_heartbeats=False)
        assert beat.event == "heartbeat"
        assert beat.id == ""
        assert set(json.loads(beat.data)) == {"timestamp"}


async def test_a_disconnected_client_is_removed_at_once(
    gateway: Gateway, sse: SseConnector, http: httpx.AsyncClient
) -> None:
    client = await sse.connect()
    assert gateway.hub.client_count == 1
    assert "gateway_sse_clients 1.0" in (await http.get("/metrics")).text
    await client.source.response.aclose()
    await wait_until(lambda: gateway.hub.client_count == 0, "the client to be unregistered")
    assert "gateway_sse_clients 0.0" in (await http.get("/metrics")).text


async def test_a_slow_client_is_dropped_while_a_fast_one_keeps_receiving(
    gateway_factory: GatewayFactory, sse_to: SseFactory, bus: Bus
) -> None:
    gateway = await gateway_factory(client_queue_size=4, client_drop_grace_s=0.2)
    sse = sse_to(gateway)
    slow = await sse.connect()  # reads nothing until the drop
    fast = await sse.connect()
    big = ExecutionBatch(
        executions=[execution_summary(i) for i in range(1, 201)], timestamp=datetime.now(UTC)
    )
    sent_ids: list[str] = []
    # Once the socket buffers towards the stalled reader are full, its queue
    # fills and the hub drops it. The bound is only a guard.
    for _ in range(5000):
        await bus.publish(big)
        event = await fast.next()  # the fast client gets every event, in step
        assert event.data == encode(big).decode()
        sent_ids.append(event.id)
        if gateway.hub.stats.dropped_clients:
            break
    assert gateway.hub.stats.dropped_clients == 1
    assert gateway.hub.client_count == 1  # only the fast one is left

    # The fast client keeps receiving after the drop.
    await bus.publish(stage2_complete(1))
    after = await fast.next()
    assert after.event == "etl:stage2:complete"
    sent_ids.append(after.id)

    # The slow client's stream ends after what was already on the wire ...
    got: list[str] = []
    try:
        while True:
            got.append((await slow.next()).id)
    except (httpx.HTTPError, StopAsyncIteration):
        pass
    assert got == sent_ids[: len(got)]
    assert len(got) < len(sent_ids)
    # ... and it resumes by Last-Event-ID with exactly what it missed.
    back = await sse.connect(last_event_id=got[-1])
    replayed = [(await back.next()).id for _ in sent_ids[len(got) :]]
    assert replayed == sent_ids[len(got) :]


async def test_filtered_streams_get_only_their_executions_and_resume_per_filter(
    gateway: Gateway, sse: SseConnector, bus: Bus
) -> None:
    def on(execution_id: int, camera: str, level: str) -> ExecutionSummary:
        return execution_summary(execution_id, camera_id=camera, alert_level=level)

    params = {"camera": "cam-a", "alert_level": ["high", "critical"]}
    filtered = await sse.connect(params=params)
    everything = await sse.connect()
    batches = [
        [on(1, "cam-a", "high"), on(2, "cam-b", "high"), on(3, "cam-a", "low")],
        [on(4, "cam-b", "critical")],  # nothing for the filter: not sent to it at all
        [on(5, "cam-a", "critical")],
    ]
    for executions in batches:
        await bus.publish(ExecutionBatch(executions=executions, timestamp=datetime.now(UTC)))
    all_events = [await everything.next() for _ in batches]
    got = [await filtered.next() for _ in range(2)]
    assert [[e["id"] for e in json.loads(ev.data)["executions"]] for ev in got] == [[1], [5]]
    assert [ev.id for ev in got] == [all_events[0].id, all_events[2].id]  # stream positions

    # Resuming the filtered stream from its first event replays only its matches.
    back = await sse.connect(params=params, last_event_id=got[0].id)
    replayed = await back.next()
    assert (replayed.id, replayed.data) == (got[1].id, got[1].data)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        bad = await http.get("/api/events", params={"alert_level": "severe"})
    assert bad.status_code == 422
