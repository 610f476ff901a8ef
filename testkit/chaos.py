"""Fault injection for the chaos run: kill -9 / restart services, cut / restore connections.

A plan is drawn from a seeded RNG (so a failing run can be replayed with its
seed). Each fault runs in its own task at its own moment, so faults may
overlap (a service restarting while the database is cut, say); two faults on
the same target never overlap. A supervisor restarts any service that exits
on its own — what an orchestrator's restart policy does — and records it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from testkit.processes import ServiceProcess

SUPERVISE_EVERY_S = 0.5


class Cuttable(Protocol):
    def cut(self) -> None: ...
    def restore(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # after the start of the run
    kind: Literal["kill", "cut"]
    target: str  # a service name or a proxy name
    down_s: float  # how long the service stays dead / the connection cut


def plan_faults(
    rng: random.Random,
    services: list[str],
    proxies: list[str],
    *,
    window_s: float,
    kills_per_service: int = 2,
    cuts_per_proxy: int = 2,
) -> list[Fault]:
    """Random moments inside the window for every kill and every cut, sorted by time."""
    faults = [
        Fault(rng.uniform(1.0, window_s), "kill", name, rng.uniform(0.1, 2.5))
        for name in services
        for _ in range(kills_per_service)
    ]
    faults += [
        Fault(rng.uniform(1.0, window_s), "cut", name, rng.uniform(1.0, 4.0))
        for name in proxies
        for _ in range(cuts_per_proxy)
    ]
    return sorted(faults, key=lambda f: f.at_s)


@dataclass
class ChaosLog:
    actions: list[dict[str, object]] = field(default_factory=list)
    unexpected_exits: list[dict[str, object]] = field(default_factory=list)


class Chaos:
    def __init__(
        self,
        processes: Mapping[str, ServiceProcess],
        proxies: Mapping[str, Cuttable],
    ) -> None:
        self.processes = processes
        self.proxies = proxies
        self.log = ChaosLog()
        self._locks = {name: asyncio.Lock() for name in [*processes, *proxies]}
        self._started = time.monotonic()

    def _note(self, action: str, target: str, **extra: object) -> None:
        entry: dict[str, object] = {
            "t_s": round(time.monotonic() - self._started, 2),
            "action": action,
            "target": target,
        }
        entry.update(extra)
        self.log.actions.append(entry)

    async def run(self, faults: list[Fault]) -> None:
        self._started = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            for fault in faults:
                tasks.create_task(self._inject(fault))

    async def _inject(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, fault.at_s - (time.monotonic() - self._started)))
        async with self._locks[fault.target]:
            if fault.kind == "kill":
                await self._kill_and_restart(fault.target, fault.down_s)
            else:
                await self._cut_and_restore(fault.target, fault.down_s)

    async def _kill_and_restart(self, name: str, down_s: float) -> None:
        # The target's lock is held meanwhile, so the supervisor leaves it alone.
        proc = self.processes[name]
        await asyncio.to_thread(proc.kill)
        self._note("kill -9", name)
        await asyncio.sleep(down_s)
        proc.start()
        self._note("restart", name)

    async def _cut_and_restore(self, name: str, down_s: float) -> None:
        proxy = self.proxies[name]
        await asyncio.to_thread(proxy.cut)
        self._note("cut", name)
        try:
            await asyncio.sleep(down_s)
        finally:
            await asyncio.to_thread(proxy.restore)
            self._note("restore", name)

    async def supervise(self) -> None:
        """Restart services that exit on their own (until cancelled)."""
        while True:
            await asyncio.sleep(SUPERVISE_EVERY_S)
            for name, proc in self.processes.items():
                if proc.running or self._locks[name].locked():
                    continue
                code = proc.proc.returncode if proc.proc is not None else None
                self.log.unexpected_exits.append(
                    {
                        "t_s": round(time.monotonic() - self._started, 2),
                        "service": name,
                        "exit_code": code,
                        "output_tail": proc.output()[-1500:],
                    }
                )
                proc.start()
                self._note("restart after unexpected exit", name, exit_code=code)

    def restore_everything(self) -> None:
        for proxy in self.proxies.values():
            proxy.restore()
        for proc in self.processes.values():
            if not proc.running:
                proc.start()
