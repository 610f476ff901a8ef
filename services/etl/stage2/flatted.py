"""A strict, bounded decoder of the `flatted` format (how n8n stores run data).

`flatted.stringify(value)` writes a JSON array. Entry 0 is the root. Inside
every object or array entry, each string value is a *reference*: the decimal
index, written as a string, of another entry — either a string entry (the
string itself) or an object/array entry (revived, so a value referenced twice
is one object). Numbers, booleans and null stay inline; keys are plain.

Real flatted output never holds an inline object, array or non-reference
string inside an entry, so this decoder rejects them instead of guessing (the
loose readers of this format treat any digit string as a reference and any
other string as a value, which silently corrupts data). Recursion is bounded:
deeper nesting than MAX_DEPTH
raises FlattedError naming the entry, never RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

# Deep enough for n8n run data (root → resultData → runData → node → run →
# data → main → output → item → json → …) with room for nested workflow JSON.
MAX_DEPTH = 64
# Entries beyond this are refused before decoding (a bound on work per input).
MAX_ENTRIES = 1_000_000


class FlattedError(ValueError):
    """The text is not well-formed flatted data; the message says where."""


class _Decoder:
    def __init__(self, entries: list[Any], max_depth: int) -> None:
        self.entries = entries
        self.max_depth = max_depth
        # Revived object/array entries by index: shared references stay shared.
        self.done: dict[int, Any] = {}

    def ref(self, token: Any, where: str, depth: int) -> Any:
        if isinstance(token, str):
            return self.entry(self.index(token, where), depth)
        if isinstance(token, dict | list):
            raise FlattedError(
                f"flatted: {where}: inline {type(token).__name__} (not flatted output)"
            )
        return token  # number, boolean, null

    def index(self, token: str, where: str) -> int:
        # Only plain decimal indexes (no sign, spaces, or leading zeros but "0").
        if not token.isascii() or not token.isdigit() or (len(token) > 1 and token[0] == "0"):
            raise FlattedError(f"flatted: {where}: {token[:40]!r} is not a reference")
        position = int(token)
        if position >= len(self.entries):
            raise FlattedError(
                f"flatted: {where}: reference {position} is past the last entry "
                f"({len(self.entries) - 1}; truncated data?)"
            )
        return position

    def entry(self, position: int, depth: int) -> Any:
        value = self.entries[position]
        if isinstance(value, str):
            return value
        if not isinstance(value, dict | list):
            raise FlattedError(
                f"flatted: entry {position}: a bare {type(value).__name__} cannot be referenced"
            )
        found = self.done.get(position)
        if found is not None:
            return found  # shared, or a cycle (n8n's error objects have them): one object
        if depth >= self.max_depth:
            raise FlattedError(
                f"flatted: entry {position}: nested deeper than {self.max_depth} levels"
            )
        # Registered before it is filled, so a reference back to it is the same object.
        if isinstance(value, dict):
            revived_dict: dict[str, Any] = {}
            self.done[position] = revived_dict
            for key, item in value.items():
                revived_dict[key] = self.ref(item, f"entry {position} key {key!r}", depth + 1)
            return revived_dict
        revived_list: list[Any] = []
        self.done[position] = revived_list
        for i, item in enumerate(value):
            revived_list.append(self.ref(item, f"entry {position} item {i}", depth + 1))
        return revived_list


def parse(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_entries: int = MAX_ENTRIES) -> Any:
    """Decode flatted text to plain Python values; FlattedError if malformed."""
    try:
        entries = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FlattedError(f"flatted: not JSON ({exc}; truncated data?)") from None
    if not isinstance(entries, list) or not entries:
        raise FlattedError("flatted: not a non-empty JSON array")
    if len(entries) > max_entries:
        raise FlattedError(f"flatted: {len(entries)} entries, over the limit of {max_entries}")
    root = entries[0]
    if not isinstance(root, dict | list):
        return root  # flatted.stringify of a primitive: [value]
    return _Decoder(entries, max_depth).entry(0, 0)


def stringify(value: Any) -> str:
    """Encode like `flatted.stringify` (same entry order: breadth first, strings
    and objects stored once), for JSON-like acyclic data.

    Used by the tests and benchmarks to make n8n-shaped run data; the decoder
    is tested against the real npm package's output too, not only this.
    """
    entries: list[Any] = []
    known: dict[Any, str] = {}  # strings by value, containers by id()

    def index_of(item: Any) -> Any:
        if isinstance(item, str):
            key: Any = item
        elif isinstance(item, dict | list):
            key = id(item)
        else:
            return item
        ref = known.get(key)
        if ref is None:
            ref = known[key] = str(len(entries))
            entries.append(item)
        return ref

    if isinstance(value, str | dict | list):
        index_of(value)
    else:
        entries.append(value)  # a primitive root is entry 0 itself
    output: list[str] = []
    position = 0
    while position < len(entries):  # entries grows while we go: breadth first
        item = entries[position]
        if isinstance(item, dict):
            item = {key: index_of(v) for key, v in item.items()}
        elif isinstance(item, list):
            item = [index_of(v) for v in item]
        output.append(json.dumps(item, separators=(",", ":"), ensure_ascii=False))
        position += 1
    return "[" + ",".join(output) + "]"
