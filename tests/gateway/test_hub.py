"""The fan-out hub on its own: ids, replay, resets, filters, bounded queues."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.gateway.event_filters import EventFilter
from services.gateway.hub import Client, Event, Hub, Position, Where, fingerprint
from shared.contracts import ExecutionBatch, ExecutionSummary, encode
from testkit.factories import stage2_complete


def _publish(hub: Hub, event: str, data: str) -> Event:
    published = hub.publish(event, data)
    assert published is not None
    return published


def _drain(client: Client) -> list[Event | None]:
    return client.pending()


async def test_ids_are_stream_offset_and_fingerprint() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    first = hub.publish("etl:stage2:complete", "{}", offset=7, tag="0000abcd")
    second = hub.publish("etl:stage2:failed", "{}", offset=9, tag="0000abce")
    assert first and first.id == "7-0000abcd"
    assert second and second.id == "9-0000abce"
    assert hub.head_id == "9-0000abce"
    # The same message at the same offset gets the same id in any process.
    assert fingerprint("m1", b"{}") == fingerprint("m1", b"{}") != fingerprint("m2", b"{}")


async def test_an_offset_seen_already_is_not_published_again() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    client, _ = hub.subscribe(None)
    hub.publish("e", "a", offset=1, tag="00000001")
    assert hub.publish("e", "a", offset=1, tag="00000001") is None  # a reader re-delivering
    assert hub.publish("e", "a", offset=0, tag="00000001") is None
    assert len(_drain(client)) == 1


async def test_where_a_position_is() -> None:
    hub = Hub(replay_size=2, client_queue_size=10)
    for offset in (9, 10, 11, 12):
        hub.publish("e", str(offset), offset=offset, tag=f"{offset:08x}")
    assert hub.where(Position(12, f"{12:08x}")) is Where.IN_BUFFER
    assert hub.where(Position(11, f"{11:08x}")) is Where.IN_BUFFER
    assert hub.where(Position(11, f"{99:08x}")) is Where.MISMATCH  # another message there
    # 10 was evicted last: who saw it missed exactly the ring; 9 needs the stream.
    assert hub.where(Position(10, f"{10:08x}")) is Where.IN_BUFFER
    assert hub.where(Position(9, f"{9:08x}")) is Where.BEFORE_BUFFER
    assert hub.where(Position(13, f"{13:08x}")) is Where.AHEAD


async def test_every_client_gets_every_event_in_order() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    a, _ = hub.subscribe(None)
    b, _ = hub.subscribe(None)
    sent = [_publish(hub, "e", str(i)) for i in range(3)]
    assert _drain(a) == sent
    assert _drain(b) == sent


async def test_resume_returns_exactly_the_missed_events() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    sent = [_publish(hub, "e", str(i)) for i in range(5)]
    assert sent[1].id is not None
    client, backlog = hub.subscribe(sent[1].id)
    assert backlog == sent[2:]
    assert _drain(client) == []
    up_to_date, nothing = hub.subscribe(sent[-1].id)
    assert nothing == []
    assert hub.client_count == 2
    del up_to_date


async def test_resume_at_the_edge_of_the_buffer_is_still_exact() -> None:
    hub = Hub(replay_size=3, client_queue_size=10)
    sent = [_publish(hub, "e", str(i)) for i in range(5)]  # buffer holds 3, 4, 5
    assert sent[1].id is not None
    _, backlog = hub.subscribe(sent[1].id)  # missed 3, 4, 5: all still buffered
    assert backlog == sent[2:]


def _reset_reason(backlog: list[Event]) -> str:
    assert len(backlog) == 1
    assert backlog[0].event == "reset"
    reason: str = json.loads(backlog[0].data)["reason"]
    return reason


async def test_unusable_last_event_ids_get_a_reset() -> None:
    hub = Hub(replay_size=2, client_queue_size=10)
    sent = [_publish(hub, "e", str(i)) for i in range(4)]  # buffer holds 2, 3
    assert sent[0] and sent[0].id and sent[3] and sent[3].id
    assert "older than the replay buffer" in _reset_reason(hub.subscribe(sent[0].id)[1])
    offset = sent[3].id.partition("-")[0]
    assert "unknown" in _reset_reason(hub.subscribe(f"{offset}-ffffffff")[1])
    assert "unknown" in _reset_reason(hub.subscribe("99-0000abcd")[1])
    assert "malformed" in _reset_reason(hub.subscribe("3-x")[1])
    assert "malformed" in _reset_reason(hub.subscribe("garbage")[1])
    # The reset carries the head id, so resuming from it afterwards misses nothing.
    _, backlog = hub.subscribe("garbage")
    assert backlog[0].id == hub.head_id


async def test_a_full_queue_drops_that_client_only() -> None:
    hub = Hub(replay_size=100, client_queue_size=2)
    slow, _ = hub.subscribe(None)
    fast, _ = hub.subscribe(None)
    for i in range(2):
        _publish(hub, "e", str(i))
    assert len(_drain(fast)) == 2
    _publish(hub, "e", "overflow")
    assert slow.dropped
    assert "queue full" in (slow.drop_reason or "")
    assert _drain(slow) == [None]  # queued events freed, end-of-stream marker left
    assert not fast.dropped
    assert [e.data for e in _drain(fast) if e] == ["overflow"]
    assert hub.client_count == 1
    assert hub.stats.dropped_clients == 1


def _summary(execution_id: int, camera: str, level: str) -> ExecutionSummary:
    return ExecutionSummary(
        id=execution_id,
        workflow_id="wf",
        camera_id=camera,
        status="success",
        started_at=datetime.now(UTC),
        processing_stage="stage2",
        alert_level=level,  # type: ignore[arg-type]
    )


async def test_filtered_clients_get_only_matching_executions_framed_once_per_filter() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    everything, _ = hub.subscribe(None)
    cam_a = [hub.subscribe(None, EventFilter(camera="a"))[0] for _ in range(3)]
    cam_a_high, _ = hub.subscribe(None, EventFilter(camera="a", alert_levels=frozenset({"high"})))
    high, _ = hub.subscribe(None, EventFilter(alert_levels=frozenset({"high"})))
    assert hub.filter_count == 4
    batch = ExecutionBatch(
        executions=[_summary(1, "a", "high"), _summary(2, "a", "low"), _summary(3, "b", "high")],
        timestamp=datetime.now(UTC),
    )
    full = _publish(hub, "execution:batch", encode(batch).decode())
    assert full is not None

    def ids(client: Client) -> list[list[int]]:
        return [[e["id"] for e in json.loads(ev.data)["executions"]] for ev in _drain(client) if ev]

    assert _drain(everything) == [full]
    got_a = [_drain(client) for client in cam_a]
    assert all(g == got_a[0] for g in got_a)
    assert got_a[0][0] is got_a[1][0]  # one projection per filter, shared by its clients
    assert [e["id"] for e in json.loads(got_a[0][0].data)["executions"]] == [1, 2]  # type: ignore[union-attr]
    assert got_a[0][0].id == full.id  # type: ignore[union-attr]
    assert ids(cam_a_high) == [[1]]
    assert ids(high) == [[1, 3]]

    complete = stage2_complete(
        4, alert_level="low", detection_count=1, has_image=False, processing_time_ms=1.0
    )
    _publish(hub, "etl:stage2:complete", encode(complete).decode())
    assert _drain(high) == []  # alert level low
    assert len(_drain(everything)) == 1


async def test_a_filtered_client_resumes_with_only_its_matches() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    batches = [
        ExecutionBatch(executions=[_summary(i, cam, "none")], timestamp=datetime.now(UTC))
        for i, cam in enumerate(["a", "b", "a", "b"], start=1)
    ]
    sent = [_publish(hub, "execution:batch", encode(b).decode()) for b in batches]
    assert sent[0] and sent[0].id
    _, backlog = hub.subscribe(sent[0].id, EventFilter(camera="a"))
    assert [e.id for e in backlog] == [sent[2].id]


async def test_unsubscribe_and_close() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    a, _ = hub.subscribe(None)
    b, _ = hub.subscribe(None)
    hub.unsubscribe(a)
    assert hub.client_count == 1
    hub.close()
    assert hub.client_count == 0
    assert b.dropped and _drain(b) == [None]


async def test_heartbeats_reach_every_client_without_id_or_replay() -> None:
    hub = Hub(replay_size=10, client_queue_size=1)
    a, _ = hub.subscribe(None)
    b, _ = hub.subscribe(None)
    hub.heartbeat()
    beats = _drain(a) + _drain(b)
    assert [beat.event for beat in beats if beat] == ["heartbeat", "heartbeat"]
    assert all(beat and beat.id is None and b"event: heartbeat" in beat.wire for beat in beats)
    assert hub.head_id is None  # not an event of the stream: no id, no replay
    hub.heartbeat()
    _drain(b)
    hub.heartbeat()  # a's queue (size 1) is full: dropped like for any event
    assert a.dropped and hub.client_count == 1


async def test_a_client_subscribing_after_close_ends_at_once() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    hub.close()
    client, _ = hub.subscribe(None)
    assert client.dropped and await client.next() is None
    assert hub.client_count == 0
