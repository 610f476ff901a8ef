"""One gateway worker process: the app under uvicorn on its own SO_REUSEPORT socket."""

from __future__ import annotations

import gc
import signal

import uvicorn

from services.gateway.app import create_app
from services.gateway.front import uvicorn_options
from services.gateway.server import GatewayServer, reuseport_socket
from shared.logs import configure_logging
from shared.settings import GatewaySettings

# Default (700, 10, 10): a full collection every ~70k net container allocations. With
# thousands of SSE connections the heap holds millions of objects and every full
# collection walks all of them (pauses of up to 714 ms at 5k connections). Here full
# ones come >100x rarer; young ones are bigger but short (~12 ms, middle ~40 ms at 5k).
GC_THRESHOLDS = (10_000, 10, 100)


def tune_gc() -> None:
    """Full collections skip the start-up heap (frozen) and come far less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(index: int = 0) -> None:
    """The app under uvicorn; `index` 0: the only process, 1…N: workers under `supervise`."""
    settings = GatewaySettings()
    configure_logging(settings.log_level, "gateway")
    app = create_app(settings)
    resources = app.state.resources
    # Once start-up is done: GC pauses, not the fan-out itself, made the p99 at 5k clients.
    resources.after_startup.append(tune_gc)
    config = uvicorn.Config(
        app,
        log_config=None,  # keep our JSON logging
        timeout_graceful_shutdown=5,
        access_log=False,
        # The event stream below uvicorn (front.py), head bounds, connection cap, keep-alive.
        **uvicorn_options(settings),
    )
    server = GatewayServer(config, on_shutdown=[resources.hub.close])
    if index:
        # Under the supervisor, Ctrl-C reaches the whole process group: the parent
        # turns it into one SIGTERM per worker. uvicorn handles both while it runs and
        # re-raises them when it is done; ignored then, the worker exits with 0.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server.run(sockets=[reuseport_socket(settings.gateway_host, settings.gateway_port)])
