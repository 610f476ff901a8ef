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


def _where(position: int, place: str | int) -> str:
    return (
        f"entry {position} key {place!r}"
        if isinstance(place, str)
        else f"entry {position} item {place}"
    )


class _Decoder:
    """One parse: revives the entries reachable from entry 0, depth first.

    The hot path is one dict lookup per reference: `positions` holds exactly the
    canonical decimal strings "0".."N-1", so any other string (a sign, spaces,
    leading zeros, past the end, not a number) misses it, and only then is the
    error worked out and its place (entry, key or item) formatted.
    """

    def __init__(self, entries: list[Any], max_depth: int) -> None:
        self.entries = entries
        self.max_depth = max_depth
        self.positions = {str(i): i for i in range(len(entries))}
        # Revived object/array entries by index: shared references stay shared.
        self.done: dict[int, Any] = {}

    def entry(self, position: int, depth: int) -> Any:
        value = self.entries[position]
        kind = type(value)
        if kind is str:
            return value
        found = self.done.get(position)
        if found is not None:
            return found  # shared, or a cycle (n8n's error objects have them): one object
        if kind is not dict and kind is not list:
            raise FlattedError(
                f"flatted: entry {position}: a bare {kind.__name__} cannot be referenced"
            )
        if depth >= self.max_depth:
            raise FlattedError(
                f"flatted: entry {position}: nested deeper than {self.max_depth} levels"
            )
        # Registered before it is filled, so a reference back to it is the same object.
        if kind is dict:
            revived_dict: dict[str, Any] = {}
            self.done[position] = revived_dict
            for key, item in value.items():
                revived_dict[key] = self.item(item, depth, position, key)
            return revived_dict
        revived_list: list[Any] = []
        self.done[position] = revived_list
        for index, item in enumerate(value):
            revived_list.append(self.item(item, depth, position, index))
        return revived_list

    def item(self, token: Any, depth: int, position: int, place: str | int) -> Any:
        """A value inside entry `position` (at its key or item `place`: for errors only)."""
        kind = type(token)
        if kind is str:
            target = self.positions.get(token)
            if target is None:
                raise self._bad_reference(token, _where(position, place))
            value = self.entries[target]
            return value if type(value) is str else self.entry(target, depth + 1)
        if kind is dict or kind is list:
            raise FlattedError(
                f"flatted: {_where(position, place)}: inline {kind.__name__} (not flatted output)"
            )
        return token  # number, boolean, null

    def _bad_reference(self, token: str, where: str) -> FlattedError:
        # Only plain decimal indexes (no sign, spaces, or leading zeros but "0").
        if not token.isascii() or not token.isdigit() or (len(token) > 1 and token[0] == "0"):
            return FlattedError(f"flatted: {where}: {token[:40]!r} is not a reference")
        return FlattedError(
            f"flatted: {where}: reference {token[:40]} is past the last entry "
            f"({len(self.entries) - 1}; truncated data?)"
        )


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
