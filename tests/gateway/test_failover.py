"""SIGKILL a gateway under a crowd of clients: every one resumes on another replica exactly.

The same client program and procedure as `python -m bench failover` (1,000 clients
there), at a size the suite can afford.
"""

from __future__ import annotations

from bench.cases.failover import failover
from shared.bus import Bus


async def test_clients_of_a_killed_gateway_resume_on_another_with_no_reset_gap_or_duplicate(
    service_env: dict[str, str], bus: Bus
) -> None:
    result = await failover(
        {**service_env, "LOG_LEVEL": "WARNING"}, bus, clients=100, before_s=1.0, after_s=2.0
    )
    assert result["events_seen_by_observer"] == result["events_published"] > 20
    assert result["clients_resumed"] == 100  # every client reconnected to B ...
    assert result["resets"] == 0  # ... without a reset, so without a REST reload,
    assert result["missing"] == 0  # with every event,
    assert result["duplicates"] == 0  # each once,
    assert result["out_of_order"] == 0  # in stream order
    assert result["clients_with_last_event"] == 100
