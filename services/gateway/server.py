"""Running the gateway: one uvicorn server per worker process, N workers on one port.

Each worker binds the port itself with SO_REUSEPORT, so the kernel spreads new
connections over the workers; each runs the whole app and reads the event
stream itself. Event ids are stream positions, so they mean the same in every
worker: a client resumes on whichever worker its reconnect lands on. The parent
process only supervises (restarts a worker that dies, stops all on SIGTERM).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import uvicorn

log = logging.getLogger(__name__)

# Also the pace of restarts of a worker that keeps failing.
RESTART_DELAY_S = 1.0


class GatewayServer(uvicorn.Server):
    """uvicorn's server, ending every SSE stream as soon as shutdown begins.

    Otherwise shutdown waits `timeout_graceful_shutdown` for streams that never
    end by themselves, then cancels them.
    """

    def __init__(self, config: uvicorn.Config, on_shutdown: list[Callable[[], None]]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for callback in self._on_shutdown:
            callback()
        await super().shutdown(sockets)


def run_worker_process(index: int) -> None:
    """What `supervise` runs in each worker process. The app is imported here, in the
    worker: the supervisor never serves, and importing the app cost it about a
    CPU-second at every start."""
    from services.gateway.worker import run_worker

    run_worker(index)


def worker_count(configured: int) -> int:
    return configured or os.cpu_count() or 1


def reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def supervise(target: Callable[[int], None], workers: int) -> None:
    """Run `target(worker_index)` in `workers` processes until SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")
    # An event, not a flag: SIGTERM wakes the loop's wait at once (a plain sleep
    # held every stop up to RESTART_DELAY_S).
    stopping = threading.Event()

    def start(index: int) -> BaseProcess:
        process = context.Process(target=target, args=(index,), name=f"gateway-{index}")
        process.start()
        return process

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start(index) for index in range(1, workers + 1)]
    log.info("gateway workers started", extra={"workers": workers})
    while not stopping.wait(RESTART_DELAY_S):
        for slot, process in enumerate(processes):
            index = slot + 1
            if not process.is_alive() and not stopping.is_set():
                log.warning(
                    "gateway worker exited; restarting",
                    extra={"worker": index, "exitcode": process.exitcode},
                )
                processes[slot] = start(index)
    for process in processes:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(timeout=15)
        if process.is_alive():
            process.kill()
