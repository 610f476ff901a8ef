"""The fan-out hub on its own: ids, replay, resets, bounded queues."""

from __future__ import annotations

import json

from services.gateway.hub import Client, Event, Hub


def _drain(client: Client) -> list[Event | None]:
    return client.pending()


async def test_ids_are_epoch_and_sequence() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    first = hub.publish("etl:stage2:complete", "{}")
    second = hub.publish("etl:stage2:failed", "{}")
    assert first.id == f"{hub.epoch}-1"
    assert second.id == f"{hub.epoch}-2"
    assert hub.head_id == f"{hub.epoch}-2"
    assert Hub(replay_size=1, client_queue_size=1).epoch != hub.epoch


async def test_every_client_gets_every_event_in_order() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    a, _ = hub.subscribe(None)
    b, _ = hub.subscribe(None)
    sent = [hub.publish("e", str(i)) for i in range(3)]
    assert _drain(a) == sent
    assert _drain(b) == sent


async def test_resume_returns_exactly_the_missed_events() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    sent = [hub.publish("e", str(i)) for i in range(5)]
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
    sent = [hub.publish("e", str(i)) for i in range(5)]  # buffer holds 3, 4, 5
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
    sent = [hub.publish("e", str(i)) for i in range(4)]  # buffer holds 3, 4
    assert sent[0].id is not None
    assert "older than the replay buffer" in _reset_reason(hub.subscribe(sent[0].id)[1])
    assert "unknown" in _reset_reason(hub.subscribe("someotherepoch-3")[1])
    assert "unknown" in _reset_reason(hub.subscribe(f"{hub.epoch}-99")[1])
    assert "malformed" in _reset_reason(hub.subscribe(f"{hub.epoch}-x")[1])
    assert "unknown" in _reset_reason(hub.subscribe("garbage")[1])
    # The reset carries the head id, so resuming from it afterwards misses nothing.
    _, backlog = hub.subscribe("garbage")
    assert backlog[0].id == hub.head_id


async def test_a_full_queue_drops_that_client_only() -> None:
    hub = Hub(replay_size=100, client_queue_size=2)
    slow, _ = hub.subscribe(None)
    fast, _ = hub.subscribe(None)
    for i in range(2):
        hub.publish("e", str(i))
    assert len(_drain(fast)) == 2
    hub.publish("e", "overflow")
    assert slow.dropped
    assert "queue full" in (slow.drop_reason or "")
    assert _drain(slow) == [None]  # queued events freed, end-of-stream marker left
    assert not fast.dropped
    assert [e.data for e in _drain(fast) if e] == ["overflow"]
    assert hub.client_count == 1
    assert hub.stats.dropped_clients == 1


async def test_reset_all_is_a_buffered_event_with_an_id() -> None:
    hub = Hub(replay_size=10, client_queue_size=10)
    before = hub.publish("e", "1")
    client, _ = hub.subscribe(None)
    reset = hub.reset_all("broker reconnected")
    assert reset.event == "reset" and reset.id is not None
    assert _drain(client) == [reset]
    # A client that was away during the reset still sees it when it resumes.
    assert before.id is not None
    assert hub.subscribe(before.id)[1] == [reset]


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
    assert hub.head_id == f"{hub.epoch}-0"  # not an event of the stream: no id, no replay
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
