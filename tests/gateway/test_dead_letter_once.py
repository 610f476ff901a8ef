"""A poison message in the event stream is dead-lettered once, however many workers read it.

Every gateway worker process reads the stream live, and streams cannot
dead-letter, so each worker used to copy an invalid message to the dead-letter
queue itself: with GATEWAY_WORKERS=2 the queue got two copies of each. The
claim row (migration 0060) lets exactly one reader copy it. (~12 s: two worker
processes start, each probing the stream head, on a loaded machine.)
"""

from __future__ import annotations

import json

import asyncpg

from shared.bus import Bus
from testkit.dead_letters import take_dead_letters
from testkit.gateway import GatewayProcess
from testkit.waiting import wait_until

COPIED = "skipped, copied to the dead-letter queue"
LEFT_TO_ANOTHER = "skipped, another reader copied it"


async def test_two_workers_dead_letter_each_poison_message_once(
    service_env: dict[str, str], bus: Bus, db_pool: asyncpg.Pool, amqp_url: str
) -> None:
    gateway = GatewayProcess(service_env, gateway_workers=2)
    try:
        await gateway.start()
        log = gateway.process.output
        await wait_until(lambda: log().count("gateway ready") == 2, "both workers reading")
        poison = [b"{not json", json.dumps({"execution_id": 1}).encode(), b"[]"]
        for body in poison:
            await bus.publish_raw("stage2.complete", body)
        # Each worker decides for each message, after its copy (if any) was confirmed.
        await wait_until(
            lambda: log().count(COPIED) + log().count(LEFT_TO_ANOTHER) == 2 * len(poison),
            "both workers to handle every poison message",
        )
        dead = await take_dead_letters(amqp_url, bus.dead_letter_queue_name, len(poison))
        assert sorted(m.body for m in dead) == sorted(poison)
        assert log().count(COPIED) == len(poison)
        assert len({m.headers["x-reader"] for m in dead}) >= 1
        rows = await db_pool.fetch(
            "SELECT stream, stream_offset, routing_key FROM stream_dead_letters ORDER BY 2"
        )
        assert [(r["stream"], r["routing_key"]) for r in rows] == [
            (bus.stream_name, "stage2.complete")
        ] * len(poison)
        assert [r["stream_offset"] for r in rows] == sorted(
            m.headers["x-stream-offset"] for m in dead
        )
        gateway.process.check_running()
    finally:
        gateway.stop()
