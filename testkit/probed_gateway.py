"""`python -m testkit.probed_gateway`: the gateway exactly as `python -m
services.gateway` runs it, plus GET /debug/state for the resource-bound test.

/debug/state collects garbage, then reports the event loop's task count and the
number of objects the garbage collector tracks: what a leak would make grow.
Tests only; the real gateway has no such route.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.gateway import __main__ as gateway_main
from services.gateway import worker as gateway_worker
from services.gateway.app import STATIC_DIR, create_app
from shared.settings import GatewaySettings


def create_probed_app(settings: GatewaySettings, *, static_dir: Path = STATIC_DIR) -> FastAPI:
    app = create_app(settings, static_dir=static_dir)

    @app.get("/debug/state", include_in_schema=False)
    async def debug_state() -> dict[str, Any]:
        gc.collect()
        return {"tasks": len(asyncio.all_tasks()), "gc_objects": len(gc.get_objects())}

    return app


if __name__ == "__main__":
    # The one thing changed: each gateway worker builds its app with the probe route added.
    setattr(gateway_worker, "create_app", create_probed_app)  # noqa: B010
    gateway_main.main()
