"""Where the benchmarks run: their own databases and exchanges, file limits, RSS.

Every benchmark gets a database of its own (``ss_bench_<run>_<hex>``, migrated,
dropped afterwards) and an exchange name of its own (``bench.<run>.<name>_<hex>``),
both from the test kit, so a benchmark never touches what the tests or `make run` use.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from testkit import isolation
from testkit.isolation import new_exchange_name, temporary_database
from testkit.processes import REPO_ROOT

ADMIN_DATABASE_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL",
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
__all__ = ["QUICK_RESULTS", "REPO_ROOT", "RESULTS"]

RESULTS = REPO_ROOT / "bench" / "results" / "latest.json"
QUICK_RESULTS = REPO_ROOT / "bench" / "results" / "quick.json"


@asynccontextmanager
async def bench_database(name: str) -> AsyncIterator[str]:
    """A fresh migrated database for one benchmark; dropped (WITH FORCE) afterwards."""
    del name  # the kit's names carry the run id; the benchmark's name is in its exchange
    async with temporary_database(ADMIN_DATABASE_URL, "bench") as url:
        yield url


def exchange_name(name: str) -> str:
    return new_exchange_name("bench", name)


async def delete_exchange(name: str) -> None:
    """Remove a benchmark's exchanges, dead-letter queue and event stream."""
    await isolation.delete_exchange(AMQP_URL, name)


def service_env(database_url: str, exchange: str, **extra: object) -> dict[str, str]:
    """Environment for a service subprocess bound to a benchmark's database and exchange."""
    env = {
        "DATABASE_URL": database_url,
        "AMQP_URL": AMQP_URL,
        "EXCHANGE_NAME": exchange,
        "LOG_LEVEL": "WARNING",
        # One gateway process (its pid is the one measured) unless a case asks for more.
        "GATEWAY_WORKERS": "1",
    }
    env.update({key.upper(): str(value) for key, value in extra.items()})
    return env


def raise_nofile_limit() -> int:
    """Raise this process's (and so its children's) open-file soft limit to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a gateway's worker processes under its supervisor)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += process_tree(int(child))
    return found


def process_rss_kib(pid: int) -> int:
    """Resident set size of one process (VmRSS from /proc), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # a zombie has no VmRSS line


def rss_kib(pid: int) -> int:
    """Resident set size of a process and its descendants, KiB."""
    return sum(process_rss_kib(member) for member in process_tree(pid))


def open_sockets(pid: int) -> int:
    """How many sockets one process holds open (its connections, listeners, clients)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += fd.readlink().name.startswith("socket:")
        except FileNotFoundError:
            continue  # closed meanwhile
    return count


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its descendants used so far (/proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


class CpuMeter:
    """`with CpuMeter({"name": pid}) as m:` → m.percent: CPU % of each process over the block."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.percent: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._wall = time.monotonic()
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        self.percent = {
            name: round(100 * (cpu_seconds(pid) - self._cpu[name]) / wall, 1)
            for name, pid in self.pids.items()
        }
