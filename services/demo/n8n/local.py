"""Start a real n8n (the pinned version, from the cache `scripts/install-n8n.sh` fills)
on its own PostgreSQL database, with the SAI-shaped workflow imported and active.

Used by `make run-n8n`, the n8n tests and the n8n benchmarks. n8n runs in
regular mode with the filesystem binary store (SAI's setup), so frames live in
`binary_dir` and the run data holds `filesystem-v2:` references to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from services.demo import queries as demo_queries
from services.demo.n8n.workflow import SAI_NAMES, WEBHOOK_PATH, WorkflowNames, sai_workflow
from shared.db import create_database, drop_database

N8N_VERSION = "1.123.81"
REPO_ROOT = Path(__file__).resolve().parents[3]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-n8n.sh"
START_TIMEOUT_S = 180.0  # deadlock guard: a cold n8n start on a busy 2-core box


def install_n8n() -> Path:
    """The n8n binary; installs the pinned n8n into the cache first if it is missing."""
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], check=True, capture_output=True, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def flatted_module() -> Path:
    """The `flatted` npm package n8n itself uses (installed beside it)."""
    return install_n8n().parents[1] / "flatted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LocalN8n:
    base_url: str
    database_url: str
    binary_dir: Path
    workflow_id: str
    names: WorkflowNames
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhook/{WEBHOOK_PATH}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _n8n_env(database_url: str, home: Path, binary_dir: Path, port: int) -> dict[str, str]:
    db = urlsplit(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("N8N_", "DB_"))}
    env.update(
        {
            "DB_TYPE": "postgresdb",
            "DB_POSTGRESDB_HOST": db.hostname or "127.0.0.1",
            "DB_POSTGRESDB_PORT": str(db.port or 5432),
            "DB_POSTGRESDB_DATABASE": db.path.lstrip("/"),
            "DB_POSTGRESDB_USER": db.username or "postgres",
            "DB_POSTGRESDB_PASSWORD": db.password or "",
            # n8n's defaults (2 connections, 20 s) answer webhooks 503 on a busy box.
            "DB_POSTGRESDB_POOL_SIZE": "8",
            "DB_POSTGRESDB_CONNECTION_TIMEOUT": "60000",
            "N8N_USER_FOLDER": str(home),
            "N8N_DEFAULT_BINARY_DATA_MODE": "filesystem",
            "N8N_BINARY_DATA_STORAGE_PATH": str(binary_dir),
            "N8N_PORT": str(port),
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
            "N8N_RUNNERS_ENABLED": "false",
            "N8N_LOG_LEVEL": "warn",
            "EXECUTIONS_DATA_PRUNE": "false",
        }
    )
    return env


async def _run_cli(binary: Path, env: dict[str, str], *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(binary), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"n8n {' '.join(args)} failed: {output.decode(errors='replace')[-2000:]}"
        )


@asynccontextmanager
async def running_n8n(
    admin_database_url: str,
    *,
    yolo_url: str,
    telegram_url: str,
    workdir: Path | None = None,
    names: WorkflowNames = SAI_NAMES,
    keep_database: bool = False,
) -> AsyncIterator[LocalN8n]:
    """A fresh database, the workflow imported and activated, `n8n start` until healthy."""
    binary = await asyncio.to_thread(install_n8n)
    database = f"n8n_{uuid.uuid4().hex[:12]}"
    database_url = await create_database(admin_database_url, database)
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="n8n-")))
        home, binary_dir = root / "home", root / "binary"
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = _n8n_env(database_url, home, binary_dir, port)
        workflow_id = f"sai{uuid.uuid4().hex[:13]}"
        workflow_file = root / "workflow.json"
        workflow = sai_workflow(
            workflow_id=workflow_id, yolo_url=yolo_url, telegram_url=telegram_url, names=names
        )
        workflow_file.write_text(json.dumps([workflow]))
        process: subprocess.Popen[bytes] | None = None
        try:
            await _run_cli(binary, env, "import:workflow", f"--input={workflow_file}")
            await _activate(database_url, workflow_id)
            log_path = root / "n8n.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
                    [str(binary), "start"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            n8n = LocalN8n(
                f"http://127.0.0.1:{port}",
                database_url,
                binary_dir,
                workflow_id,
                names,
                process,
                log_path,
            )
            await _wait_healthy(n8n)
            yield n8n
        finally:
            if process is not None:
                await asyncio.to_thread(_stop, process)
            if not keep_database:
                await drop_database(admin_database_url, database)


async def _activate(database_url: str, workflow_id: str) -> None:
    """What `n8n update:workflow --id=… --active=true` does in n8n 1.123.81
    (WorkflowRepository.updateActiveState), without a second n8n CLI start (~10 s,
    far more on a loaded machine); n8n registers the webhook when it starts."""
    conn = await asyncpg.connect(database_url)
    try:
        status = await conn.execute(demo_queries.ACTIVATE_N8N_WORKFLOW, workflow_id)
    finally:
        await conn.close()
    if status != "UPDATE 1":
        raise RuntimeError(f"n8n import left no workflow {workflow_id} to activate")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        # Its own session: SIGTERM n8n's whole process group, by its id.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _wait_healthy(n8n: LocalN8n) -> None:
    """Until the webhook is registered (readiness comes before workflows are activated)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if n8n.process.poll() is not None:
                raise RuntimeError(f"n8n exited during start-up:\n{n8n.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                # A GET to the POST-only webhook says "did you mean POST" once it is live.
                health = await client.get(f"{n8n.base_url}/healthz/readiness")
                if health.status_code == 200:
                    probe = await client.get(n8n.webhook_url)
                    if "Did you mean to make a POST request" in probe.text:
                        return
            if loop.time() > deadline:
                raise TimeoutError(f"n8n did not come up in {START_TIMEOUT_S} s:\n{n8n.log_tail()}")
            await asyncio.sleep(0.5)
