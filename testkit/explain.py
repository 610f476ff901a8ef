"""EXPLAIN a statement that writes, without writing: the transaction is always rolled back."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy


async def explain(
    conn: Connection, sql: str, *args: object, options: str = "ANALYZE, BUFFERS, COSTS OFF"
) -> list[str]:
    """The plan of `sql` with `args`, one line per item (ANALYZE runs it, then rolls back)."""
    tx = conn.transaction()
    await tx.start()
    try:
        rows = await conn.fetch(f"EXPLAIN ({options}) {sql}", *args)
    finally:
        await tx.rollback()  # e.g. the poller's claim deletes and inserts
    return [row[0] for row in rows]


async def plan_nodes(conn: Connection, sql: str, *args: object) -> list[dict[str, Any]]:
    """Every node of the plan of `sql` with `args` (EXPLAIN ANALYZE, FORMAT JSON)."""
    (text,) = await explain(conn, sql, *args, options="ANALYZE, FORMAT JSON")
    (plan,) = json.loads(text)
    nodes: list[dict[str, Any]] = []
    stack = [plan["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack += node.get("Plans", [])
    return nodes
