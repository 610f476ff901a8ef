"""`make run-n8n`: a local n8n with the SAI-shaped workflow, its stand-ins and a camera
simulator, wired to smokesignal through the environment the ETL reads."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.demo.n8n.camera import SAI_TIMESTAMP, Frame, post_frame
from services.demo.n8n.local import running_n8n
from services.demo.n8n.standins import SCENARIOS, running_standins
from services.demo.scenes import render_picture
from shared.db import database_url_named


@dataclass(frozen=True)
class N8nSession:
    env: dict[str, str]  # what the ETL needs to read this n8n
    webhook_url: str
    base_url: str
    pid: int  # n8n's process, the leader of its own process group


@asynccontextmanager
async def local_n8n_session(database_url: str, workdir: Path) -> AsyncIterator[N8nSession]:
    async with (
        running_standins() as standins,
        running_n8n(
            database_url_named(database_url, "postgres"),
            yolo_url=standins.yolo_url,
            telegram_url=standins.telegram_url,
            workdir=workdir,
        ) as n8n,
    ):
        env = {
            "N8N_DATABASE_URL": n8n.database_url,
            "N8N_WORKFLOW_ID": n8n.workflow_id,
            "N8N_BINARY_DATA_DIR": str(n8n.binary_dir),
        }
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.etl", "n8n-trigger", "install"],
            env={**env, "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
        )
        yield N8nSession(env, n8n.webhook_url, n8n.base_url, n8n.process.pid)


async def camera_simulator(webhook_url: str, rate: float, stop: asyncio.Event) -> None:
    """Post frames at `rate` per second until `stop` (a few slow, a few failing), stamped
    with the capture time as SAI's cameras write it (UTC)."""
    rng = random.Random()
    loop = asyncio.get_running_loop()
    posts: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(timeout=30) as client:
        number, start = 0, loop.time()
        while not stop.is_set():
            number += 1
            scenario = rng.choice(SCENARIOS)
            picture = render_picture(number % 3, scenario, f"frame {number}")
            frame = Frame(
                number,
                picture.jpeg,
                scenario=scenario,
                delay_ms=rng.choice((0, 0, 0, 800)),
                fail=rng.random() < 0.03,
                captured_at=datetime.now(UTC).strftime(SAI_TIMESTAMP),
                boxes=";".join(f"{b.x},{b.y},{b.width},{b.height}" for b in picture.boxes),
            )
            # On a clock, not one after another: a slow answer from n8n must not lower the rate.
            post = asyncio.create_task(_post_quietly(client, webhook_url, frame))
            posts.add(post)
            post.add_done_callback(posts.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, start + number / rate - loop.time()))
        # Stopping: frames still in flight are dropped (a camera going offline), not awaited.
        for post in posts:
            post.cancel()
        await asyncio.gather(*posts, return_exceptions=True)


async def _post_quietly(client: httpx.AsyncClient, webhook_url: str, frame: Frame) -> None:
    with contextlib.suppress(httpx.HTTPError):
        await post_frame(client, webhook_url, frame)
