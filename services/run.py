"""`make run`: the whole system on this machine, stopped cleanly by Ctrl-C.

Creates the database if missing, applies migrations, starts the ETL worker,
the poller, the gateway and the demo generator as subprocesses (their output
prefixed with their name), prints the dashboard URL, and on Ctrl-C / SIGTERM
stops them all (SIGTERM, then SIGKILL after a grace period). If one of them
exits on its own, the rest are stopped too and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from shared import queries
from shared.cli import parser
from shared.db import database_url_named, migrate
from shared.settings import GatewaySettings

STOP_GRACE_S = 20.0
READY_TIMEOUT_S = 90.0


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    args: tuple[str, ...]  # after `python -m`
    env: dict[str, str] = field(default_factory=dict)


def say(message: str) -> None:
    print(f"{'run':>9} | {message}", flush=True)


def admin_url(database_url: str) -> tuple[str, str]:
    """(URL of the server's `postgres` database, the name of the target database)."""
    name = urlsplit(database_url).path.lstrip("/")
    if not name:
        raise SystemExit(f"DATABASE_URL names no database: {database_url}")
    return database_url_named(database_url, "postgres"), name


async def ensure_database(database_url: str) -> bool:
    """Create the target database when missing; True if it was created."""
    server, name = admin_url(database_url)
    conn = await asyncpg.connect(server)
    try:
        if await conn.fetchval(queries.DATABASE_EXISTS, name):
            return False
        try:
            await conn.execute(queries.create_database(name))
        except asyncpg.DuplicateDatabaseError:
            return False  # created concurrently
        return True
    finally:
        await conn.close()


def services(settings: GatewaySettings, *, rate: float) -> list[ServiceSpec]:
    """etl, poller, gateway, then the demo generator (not when n8n is the source)."""
    # ETL_METRICS_PORT / POLLER_METRICS_PORT, when set, reach their service with the environment.
    return [
        # The demo generator's executions may carry demo blocks: honour them here only.
        ServiceSpec("etl", ("services.etl", "worker"), {"ETL_DEMO_MODE": "true"}),
        ServiceSpec("poller", ("services.poller",)),
        ServiceSpec("gateway", ("services.gateway",)),
        ServiceSpec(
            "generator",
            ("services.etl", "generate", "--rate", str(rate), "--count", "0"),
        ),
    ]


class Launcher:
    def __init__(self) -> None:
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self._relays: list[asyncio.Task[None]] = []

    async def start(self, spec: ServiceSpec) -> asyncio.subprocess.Process:
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *spec.args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.processes[spec.name] = process
        assert process.stdout is not None
        self._relays.append(asyncio.create_task(self._relay(spec.name, process.stdout)))
        say(f"started {spec.name} (pid {process.pid}): python -m {' '.join(spec.args)}")
        return process

    @staticmethod
    async def _relay(name: str, stream: asyncio.StreamReader) -> None:
        # Read until EOF so a chatty child never blocks on a full pipe.
        while line := await stream.readline():
            sys.stdout.write(f"{name:>9} | {line.decode(errors='replace')}")
            sys.stdout.flush()

    async def wait_any_exit(self) -> str:
        """The name of the first service that exits."""
        waits = {
            asyncio.create_task(process.wait()): name for name, process in self.processes.items()
        }
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[next(iter(done))]

    async def stop_all(self) -> None:
        """SIGTERM everything still running (newest first), SIGKILL what outlives the grace."""
        for name, process in reversed(self.processes.items()):
            if process.returncode is None:
                say(f"stopping {name} (pid {process.pid})")
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                say(f"{name} did not stop within {STOP_GRACE_S:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            say(f"{name} {describe_exit(process.returncode)}")
        await asyncio.gather(*self._relays, return_exceptions=True)


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        # uvicorn re-raises the signal it stopped on, so SIGTERM is a clean stop too.
        return f"stopped by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def gateway_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def wait_ready(url: str, gateway: asyncio.subprocess.Process) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while loop.time() < deadline and gateway.returncode is None:
        if await asyncio.to_thread(gateway_ready, url):
            return True
        await asyncio.sleep(0.5)
    return False


def dashboard_url(settings: GatewaySettings) -> str:
    host = settings.gateway_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.gateway_port}/"


async def prepare(settings: GatewaySettings) -> None:
    try:
        if await ensure_database(settings.database_url):
            say(f"created database {admin_url(settings.database_url)[1]}")
        await migrate(settings.database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        db = urlsplit(settings.database_url)  # host and port only: never echo a password
        raise SystemExit(
            f"PostgreSQL at {db.hostname}:{db.port or 5432} is not usable: {exc}\n"
            "Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) "
            "main start`) or set DATABASE_URL."
        ) from exc
    amqp = urlsplit(settings.amqp_url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(amqp.hostname or "127.0.0.1", amqp.port or 5672), 5
        )
        writer.close()
    except (OSError, TimeoutError) as exc:
        raise SystemExit(
            f"RabbitMQ at {amqp.hostname}:{amqp.port or 5672} is not reachable: {exc}\n"
            "Start it (e.g. `rabbitmq-server -detached`) or set AMQP_URL."
        ) from exc
    say("database ready, migrations applied")


async def run(rate: float, *, with_n8n: bool = False) -> int:
    settings = GatewaySettings()
    await prepare(settings)
    stop = asyncio.Event()
    if with_n8n:
        return await run_with_n8n(settings, rate, stop)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await run_services(settings, rate, stop)


async def run_with_n8n(settings: GatewaySettings, rate: float, stop: asyncio.Event) -> int:
    """A local n8n (SAI-shaped workflow) on this PostgreSQL; the services inherit N8N_*."""
    from services.demo.n8n.session import camera_simulator, local_n8n_session

    loop = asyncio.get_running_loop()
    starting = asyncio.current_task()
    up = False

    def on_signal() -> None:
        # While n8n starts (30 s or more), a first Ctrl-C unwinds the start: its cleanup
        # stops n8n (a process group of its own, so the terminal's SIGINT misses it)
        # and drops its database. Later ones only ask for the stop already under way.
        if not up and not stop.is_set() and starting is not None:
            starting.cancel()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    say("starting a local n8n (the first time installs it: ~4 min)")
    try:
        with tempfile.TemporaryDirectory(prefix="smokesignal-n8n-") as workdir:
            async with local_n8n_session(settings.database_url, Path(workdir)) as session:
                up = True
                os.environ.update(session.env)
                database = urlsplit(session.env["N8N_DATABASE_URL"]).path.lstrip("/")
                say(f"started n8n (pid {session.pid}): {session.base_url}, database {database}")
                say(f"camera simulator posting {rate:g} frames/s to {session.webhook_url}")
                camera = asyncio.create_task(camera_simulator(session.webhook_url, rate, stop))
                try:
                    return await run_services(settings, rate, stop)
                finally:
                    stop.set()
                    await camera
                    say("stopping n8n")
    except asyncio.CancelledError:
        if up or not stop.is_set():
            raise
        say("interrupted while n8n was starting; n8n stopped")
        return 0


async def run_services(settings: GatewaySettings, rate: float, stop: asyncio.Event) -> int:
    # With n8n as the source there is no generator: ids would collide with n8n's.
    with_generator = not os.environ.get("N8N_DATABASE_URL")
    if not with_generator:
        n8n = urlsplit(os.environ["N8N_DATABASE_URL"])
        say(f"reading executions from n8n's database at {n8n.hostname}:{n8n.port or 5432}")

    launcher = Launcher()
    url = dashboard_url(settings)
    exit_code = 0
    try:
        specs = services(settings, rate=rate)
        for spec in specs[:3]:
            await launcher.start(spec)
        ready = asyncio.create_task(wait_ready(url, launcher.processes["gateway"]))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            ready.cancel()
            return 0
        if not ready.result():
            say("the gateway did not become ready; stopping")
            return 1
        if with_generator:
            await launcher.start(specs[3])
        # Never the token itself: the page asks for it once and keeps a session cookie.
        sign_in = "  (sign in with GATEWAY_TOKEN)" if settings.gateway_token else ""
        say(f"dashboard: {url}{sign_in}   (Ctrl-C stops everything)")

        exited = asyncio.create_task(launcher.wait_any_exit())
        await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            name = exited.result()
            say(f"{name} {describe_exit(launcher.processes[name].returncode)} unexpectedly")
            exit_code = 1
        exited.cancel()
        return exit_code
    finally:
        await launcher.stop_all()
        say("all services stopped")


def main(argv: list[str] | None = None) -> None:
    cli = parser("python -m services.run", __doc__)
    cli.add_argument(
        "--n8n",
        action="store_true",
        help="`make run-n8n`: a local n8n (SAI-shaped workflow) and a camera simulator "
        "posting DEMO_RATE frames/s feed the system instead of the demo generator",
    )
    args = cli.parse_args(argv)
    rate = float(os.environ.get("DEMO_RATE", "2"))
    sys.exit(asyncio.run(run(rate, with_n8n=args.n8n)))


if __name__ == "__main__":
    main()
