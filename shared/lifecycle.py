"""Process plumbing shared by the services: signals, metrics endpoint."""

from __future__ import annotations

import asyncio
import signal

from prometheus_client import start_http_server


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGTERM/SIGINT so the service can shut down gracefully."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def serve_metrics(port: int) -> None:
    """Expose the Prometheus registry on `port` (0 disables it)."""
    if port:
        start_http_server(port)
