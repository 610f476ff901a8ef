"""Server-Sent Events framing (the WHATWG event-stream format), without a framework."""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
SEP = "\r\n"


def frame(data: str, *, event: str | None = None, id: str | None = None) -> bytes:
    """One event as sent on the wire: id, event, one `data:` line per line of data."""
    parts: list[str] = []
    if id is not None:
        parts.append(f"id: {_LINE_BREAK.sub('', id)}{SEP}")
    if event is not None:
        parts.append(f"event: {_LINE_BREAK.sub('', event)}{SEP}")
    parts.extend(f"data: {line}{SEP}" for line in _LINE_BREAK.split(data))
    parts.append(SEP)
    return "".join(parts).encode()
