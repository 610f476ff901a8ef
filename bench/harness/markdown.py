"""Markdown pieces shared by the result renderers: a table, a case's command line."""

from __future__ import annotations

from typing import Any


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def command_line(entry: dict[str, Any]) -> str:
    load = entry["machine"]["load_average"]
    return (
        f"Command: `{entry['command']}` — finished {entry['finished_at']}, took "
        f"{entry['duration_s']} s; load average before {load}, after "
        f"{entry['load_average_after']}."
    )
