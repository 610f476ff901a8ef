"""Shared test fixtures: real PostgreSQL and RabbitMQ, isolated per test.

Each test gets its own database (cloned from a migrated template) and its own
exchange / queue names; all of it is removed afterwards, and the end of the
run checks that nothing of this run is left on either server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from shared.bus import Bus
from shared.db import create_database, create_pool, database_url_named, drop_database, migrate
from testkit.infra import Infra, InfraUnavailable, discover
from testkit.isolation import (
    RUN_ID,
    BackgroundDrops,
    database_prefix,
    delete_exchange,
    exchange_prefix,
    find_leftovers,
    new_database_name,
    new_exchange_name,
    remove_leftovers,
)
from testkit.launcher import Launcher, launch, launching, run_env
from testkit.pipeline import Pipelines
from testkit.processes import ServiceProcess, stop_all
from testkit.tcp_proxy import ProxyFactory, TcpProxy

# The servers this run used, for the leak check at the end of the run.
_LEAK_CHECK: dict[str, Infra] = {}
# Exchange name -> the test it belongs to, so a leak names the test that left it.
_EXCHANGE_OWNERS: dict[str, str] = {}
# pytest-xdist: what each finished worker used (its run id, servers, exchange owners).
_WORKER_RUNS: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    try:
        found = discover()
    except InfraUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    _LEAK_CHECK["infra"] = found
    yield found
    found.stop()


@pytest.fixture(scope="session")
def database_drops(infra: Infra) -> Iterator[BackgroundDrops]:
    """Per-test databases are dropped in the background (each DROP waits for a checkpoint);
    the end of the session waits for every drop, before the leak check."""
    drops = BackgroundDrops(infra.database_url)
    yield drops
    drops.close()


@pytest.fixture(scope="session")
def template_database(infra: Infra) -> Iterator[str]:
    """A migrated database that per-test databases are cloned from."""
    name = new_database_name("tpl")

    async def create() -> None:
        await migrate(await create_database(infra.database_url, name))

    asyncio.run(create())
    yield name
    asyncio.run(drop_database(infra.database_url, name))


@pytest.fixture
async def database_url(
    infra: Infra, template_database: str, database_drops: BackgroundDrops
) -> AsyncIterator[str]:
    """URL of a fresh, migrated database for this test only."""
    name = new_database_name("t")
    yield await create_database(infra.database_url, name, template_database)
    database_drops.drop(name)


@pytest.fixture
async def empty_database_url(infra: Infra, database_drops: BackgroundDrops) -> AsyncIterator[str]:
    """URL of a fresh database with no schema (for migration tests)."""
    name = new_database_name("e")
    yield await create_database(infra.database_url, name)
    database_drops.drop(name)


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def exchange_name(infra: Infra, request: pytest.FixtureRequest) -> Iterator[str]:
    """A per-test exchange; queues and the dead-letter exchange derive from it.

    Whatever declared it (this test, or a service it started), the exchange, its
    dead-letter exchange and queue are deleted afterwards.
    """
    name = new_exchange_name("test")
    _EXCHANGE_OWNERS[name] = request.node.nodeid
    yield name
    asyncio.run(delete_exchange(infra.amqp_url, name))


@pytest.fixture
def amqp_url(infra: Infra) -> str:
    return infra.amqp_url


@pytest.fixture
async def bus(amqp_url: str, exchange_name: str) -> AsyncIterator[Bus]:
    """A connected bus on this test's exchange; the topology is deleted afterwards."""
    connected = Bus(amqp_url, exchange_name)
    await connected.connect()
    yield connected
    await connected.delete_topology()
    await connected.close()


@pytest.fixture
def service_env(database_url: str, amqp_url: str, exchange_name: str) -> dict[str, str]:
    """Environment for a service subprocess bound to this test's database and exchange."""
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "EXCHANGE_NAME": exchange_name,
        "LOG_LEVEL": "INFO",
        # One gateway process unless a test asks for more (the default is one per core).
        "GATEWAY_WORKERS": "1",
    }


@pytest.fixture
def tcp_proxy() -> Iterator[ProxyFactory]:
    """Factory: tcp_proxy(url) -> (proxy, url through the proxy)."""
    proxies: list[TcpProxy] = []

    def make(url: str) -> tuple[TcpProxy, str]:
        parts = urlsplit(url)
        default_port = 5432 if parts.scheme.startswith("postgres") else 5672
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or default_port).start()
        proxies.append(proxy)
        return proxy, proxy.proxied_url(url)

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def service_process() -> Iterator[Callable[..., ServiceProcess]]:
    """Factory: service_process(["services.etl", ...], env) -> started ServiceProcess."""
    started: list[ServiceProcess] = []

    def make(args: list[str], env: dict[str, str], name: str | None = None) -> ServiceProcess:
        proc = ServiceProcess(args, env, name).start()
        started.append(proc)
        return proc

    yield make
    stop_all(started)


@pytest.fixture
def run_database(infra: Infra) -> Iterator[str]:
    """A database name that does not exist yet (the launcher must create it); dropped after."""
    name = new_database_name("t")
    yield database_url_named(infra.database_url, name)
    asyncio.run(drop_database(infra.database_url, name))


@pytest.fixture
def run_environment(
    run_database: str, amqp_url: str, exchange_name: str, tmp_path: Path, bus: Bus
) -> dict[str, str]:
    """The environment of a `services.run` on this test's new database and exchange."""
    return run_env(run_database, amqp_url, exchange_name, tmp_path)


@pytest.fixture
def run_launcher() -> Iterator[Callable[..., Launcher]]:
    """`run_launcher(env, *args)` starts `python -m services.run *args`; stopped after."""
    with launching() as started:
        yield lambda env, *args: launch(started, env, *args)


@pytest.fixture
def pipelines(
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    tcp_proxy: ProxyFactory,
    database_url: str,
    amqp_url: str,
    bus: Bus,  # owns the exchange's topology, removed after the test
    tmp_path: Path,
) -> Pipelines:
    """Whole pipelines (gateway, ETL worker, poller as processes) on this test's servers."""
    return Pipelines(
        service_env, service_process, tcp_proxy, database_url, amqp_url, tmp_path / "images"
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, at the controller: keep what a finished worker used for the leak check."""
    used = getattr(node, "workeroutput", {}).get("leak_check")
    if used is not None:
        _WORKER_RUNS.append(used)


def _run_used(infra: Infra) -> dict[str, Any]:
    """What the leak check needs of one process's run (plain data: xdist sends it over)."""
    return {
        "run_id": RUN_ID,
        "database_url": infra.database_url,
        "amqp_url": infra.amqp_url,
        "checkable": not infra.source.startswith("testcontainers"),  # gone already
        "owners": _EXCHANGE_OWNERS,
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any exchange, queue or database of THIS run is left behind.

    Only names with this run's prefix count: other people's runs share the servers.
    Under pytest-xdist a worker only hands its run id, servers and exchange owners
    to the controller, which checks once every worker is done (a worker checking
    on its own would see the others' live databases as leaks).
    """
    infra = _LEAK_CHECK.get("infra")
    used = _run_used(infra) if infra is not None else None
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        if used is not None:
            workeroutput["leak_check"] = used
        return
    runs = [run for run in ([used] if used else []) + _WORKER_RUNS if run["checkable"]]
    if not runs:
        return  # nothing ran against a server, or the containers are gone already
    run_ids = [run["run_id"] for run in runs]
    exchanges = [exchange_prefix("test", run_id) for run_id in run_ids]
    databases = [database_prefix(k, run_id) for k in ("t", "e", "tpl") for run_id in run_ids]
    owners = {e: t for run in runs for e, t in run["owners"].items()}
    database_url, amqp_url = runs[0]["database_url"], runs[0]["amqp_url"]
    found = asyncio.run(find_leftovers(database_url, amqp_url, exchanges, databases))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for note in found.unchecked:
        if reporter is not None:
            reporter.write_line(f"leak check: not checked: {note}")
    if found:
        asyncio.run(remove_leftovers(database_url, amqp_url, found))
        if reporter is not None:
            reporter.write_line("leak check FAILED: this run left behind (now removed):", red=True)
            for name in [*found.exchanges, *found.queues, *found.databases]:
                owner = next((t for e, t in owners.items() if name.startswith(e)), "")
                reporter.write_line(f"  {name}  {owner}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
