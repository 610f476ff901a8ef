"""py-spy sampling of a running service process, summarised for the report.

`py-spy record --format raw` writes collapsed stacks ("f1;f2;f3 count"); the
summary keeps the functions with the most samples on top of the stack (self)
and anywhere in it (inclusive), which is enough to name a bottleneck.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"


def py_spy_path() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


class Profile:
    """`async with Profile(pid, name) as p:` samples pid while the block runs."""

    def __init__(self, pid: int, name: str, rate_hz: int = 200) -> None:
        self.pid, self.name, self.rate_hz = pid, name, rate_hz
        self.raw_path = RESULTS_DIR / "profiles" / f"{name}.txt"
        self.proc: asyncio.subprocess.Process | None = None
        self.summary: dict[str, Any] = {}

    async def __aenter__(self) -> Profile:
        binary = py_spy_path()
        if binary is None:
            self.summary = {"error": "py-spy not installed"}
            return self
        self.raw_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(self.pid),
            "--rate",
            str(self.rate_hz),
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(self.raw_path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(0.5)  # let it attach before the measured work starts
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        # SIGINT makes py-spy stop sampling and write what it has.
        self.proc.send_signal(2)
        _, stderr = await self.proc.communicate()
        if self.raw_path.exists():
            self.summary = summarise(self.raw_path.read_text())
            self.summary["raw_stacks"] = str(self.raw_path.relative_to(RESULTS_DIR.parent.parent))
        else:
            self.summary = {"error": stderr.decode(errors="replace")[-500:]}


def summarise(collapsed: str, top: int = 12) -> dict[str, Any]:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return {
        "samples": total,
        "top_self": [
            {"frame": frame, "pct": round(100 * n / total, 1)}
            for frame, n in self_counts.most_common(top)
        ]
        if total
        else [],
        "top_inclusive": [
            {"frame": frame, "pct": round(100 * n / total, 1)}
            for frame, n in inclusive.most_common(top * 3)
        ]
        if total
        else [],
    }


def _short(frame: str) -> str:
    """'send (starlette/responses.py:123)' → 'send (starlette/responses.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name
