"""End to end in containers: the image deploy/Dockerfile builds on the local Python
base (deploy/images/build.sh), the broker, the database, migrations and the three
services run as containers configured exactly as deploy/docker-compose.yml configures
them, driven through testcontainers against podman's Docker-compatible API socket (a
private one per test run; Ryuk, which cannot be pulled here, disabled and every
container removed by the fixture). An execution that finishes Stage 2 out of order must
reach an SSE client.

Needs podman (`make container-deps`); without it the test fails with that instruction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.demo.generator import make_raw_execution
from services.etl.stage1.ingest import ingest_execution
from testkit.deploy_files import (
    compose,
    compose_app_services,
    compose_environment,
)
from testkit.podman import api_socket, build_local_images, podman
from testkit.sse import SseThread
from testkit.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(1800)]

SLOW_ID, FAST_ID = 100, 101  # ingested in this order; the slow one finishes last
SLOW_STAGE2_MS = 10_000
DEADLINE_S = 300  # deadlock guard for every wait below, not a performance bound
TOKEN = secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def docker_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """testcontainers (docker-py) pointed at a private podman API socket, Ryuk off."""
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    config = testcontainers_config
    saved = (
        os.environ.get("DOCKER_HOST"),
        config.ryuk_disabled,
        config.connection_mode_override,
        config.tc_host_override,
    )
    with api_socket(tmp_path_factory.mktemp("podman")) as url:
        os.environ["DOCKER_HOST"] = url
        config.ryuk_disabled = True
        # Published ports are reached on this host's loopback, never via a bridge gateway.
        config.connection_mode_override = ConnectionMode.docker_host
        config.tc_host_override = "127.0.0.1"
        try:
            yield url
        finally:
            if saved[0] is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = saved[0]
            config.ryuk_disabled, config.connection_mode_override, config.tc_host_override = saved[
                1:
            ]


@pytest.fixture(scope="module")
def images(docker_host: str) -> dict[str, str]:
    """The local images: Debian-package PostgreSQL/RabbitMQ, the project image on the
    Debian-package Python base (built with podman, cached by content hash)."""
    return build_local_images()


# --- the stack ------------------------------------------------------------------------------


class Stack:
    """Containers on one network, stopped (and the images volume removed) at the end."""

    def __init__(self) -> None:
        from testcontainers.core.network import Network

        self.network = Network().create()
        self.images_volume = f"smokesignal-e2e-images-{uuid.uuid4().hex[:8]}"
        self.containers: list[Any] = []

    def add(self, container: Any) -> Any:
        self.containers.append(container)
        return container

    def close(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(Exception):
                container.stop()
        with contextlib.suppress(Exception):
            self.network.remove()
        with contextlib.suppress(Exception):
            import docker  # type: ignore[import-untyped]

            client = docker.from_env()
            client.volumes.get(self.images_volume).remove(force=True)
            client.close()


def app_container(stack: Stack, image: str, service: str) -> Any:
    """A container of the smokesignal image run as compose runs `service`."""
    from testcontainers.core.container import DockerContainer

    _, definition = compose_app_services()[service]
    container = DockerContainer(image).with_command(list(definition["command"]))
    container.with_envs(**compose_environment(definition, {"GATEWAY_TOKEN": TOKEN}))
    container.with_network(stack.network)
    for volume in definition.get("volumes", []):
        source, target, *mode = volume.split(":")
        assert source == "images", f"{service}: unexpected volume {volume}"
        container.with_volume_mapping(stack.images_volume, target, mode[0] if mode else "rw")
    return stack.add(container)


def is_ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def is_healthy(container: Any) -> bool:
    """What the image's HEALTHCHECK reports (podman without systemd runs it only on request)."""
    wrapped = container.get_wrapped_container()
    podman("healthcheck", "run", wrapped.id, check=False)
    wrapped.reload()
    return bool(wrapped.attrs["State"].get("Health", {}).get("Status") == "healthy")


def execution_ids(event: str, data: Any) -> list[int]:
    if event == "execution:batch":
        return [summary["id"] for summary in data["executions"]]
    if event == "etl:stage2:complete":
        return [data["execution_id"]]
    return []


async def ingest_out_of_order(database_url: str) -> None:
    """The older execution is slow in Stage 2, the newer one fast: the newer finishes first."""
    conn = await asyncpg.connect(database_url)
    try:
        for execution_id, delay_ms in ((SLOW_ID, SLOW_STAGE2_MS), (FAST_ID, 0)):
            raw = make_raw_execution(execution_id, stage2_delay_ms=delay_ms)
            await ingest_execution(conn, json.dumps(raw), source="e2e")
    finally:
        await conn.close()


# --- the test -------------------------------------------------------------------------------


def test_out_of_order_execution_reaches_an_sse_client_through_containers(
    images: dict[str, str],
) -> None:
    try:
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.community.rabbitmq import RabbitMqContainer
    except ImportError:  # testcontainers before the community namespace
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer

    infra = compose()["services"]
    pg_env, mq_env = infra["postgres"]["environment"], infra["rabbitmq"]["environment"]
    by_role = {role: name for name, (role, _) in compose_app_services().items()}

    stack = Stack()
    try:
        # Broker and database, reachable under their compose service names.
        postgres = stack.add(
            PostgresContainer(
                images["POSTGRES_IMAGE"],
                username=pg_env["POSTGRES_USER"],
                password=pg_env["POSTGRES_PASSWORD"],
                dbname=pg_env["POSTGRES_DB"],
                driver=None,
            )
            .with_network(stack.network)
            .with_network_aliases("postgres")
        )
        postgres.start()
        rabbitmq = stack.add(
            RabbitMqContainer(
                images["RABBITMQ_IMAGE"],
                username=mq_env["RABBITMQ_DEFAULT_USER"],
                password=mq_env["RABBITMQ_DEFAULT_PASS"],
            )
            .with_network(stack.network)
            .with_network_aliases("rabbitmq")
        )
        rabbitmq.start()

        # Migrations, one shot, must succeed before the services start (as in compose).
        image = images["SMOKESIGNAL_IMAGE"]
        migrate = app_container(stack, image, by_role["migrate"]).start()
        assert migrate.wait() == 0, migrate.get_logs()

        # Two ETL workers (compose runs two replicas), the poller, the gateway.
        # The slow execution's delay is a raw demo block: honoured in demo mode only.
        workers = [
            app_container(stack, image, by_role["etl"]).with_env("ETL_DEMO_MODE", "true").start()
            for _ in range(2)
        ]
        poller = app_container(stack, image, by_role["poller"]).start()
        gateway_port = int(
            compose_environment(compose_app_services()[by_role["gateway"]][1])["GATEWAY_PORT"]
        )
        gateway = (
            app_container(stack, image, by_role["gateway"]).with_exposed_ports(gateway_port).start()
        )
        base_url = (
            f"http://{gateway.get_container_host_ip()}:{gateway.get_exposed_port(gateway_port)}"
        )
        wait_until_sync(
            functools.partial(is_ready, base_url),
            "the gateway's /readyz",
            guard_s=DEADLINE_S,
            poll_s=0.5,
        )

        client = SseThread(base_url, headers=AUTH, guard_s=DEADLINE_S)
        client.start()
        event, _ = client.next_event()
        assert event == "connection"

        asyncio.run(ingest_out_of_order(postgres.get_connection_url(driver=None)))

        first_seen: list[int] = []
        while SLOW_ID not in first_seen:
            event, data = client.next_event()
            for execution_id in execution_ids(event, data):
                if execution_id not in first_seen:
                    first_seen.append(execution_id)
        assert first_seen == [FAST_ID, SLOW_ID], "the slow, older execution arrives after"

        # The image etl wrote is served by the gateway: the volume is shared.
        with httpx.Client(base_url=base_url, timeout=30, headers=AUTH) as http:
            for kind in ("image", "thumbnail"):
                response = http.get(f"/api/executions/{SLOW_ID}/{kind}")
                assert response.status_code == 200, response.text
                assert response.headers["content-type"].startswith("image/")
            summary = http.get(f"/api/executions/{SLOW_ID}").json()
            assert summary["processing_stage"] == "stage2"

        # Every long-running container reports healthy through the image's HEALTHCHECK.
        for container in [*workers, poller, gateway]:
            wait_until_sync(
                functools.partial(is_healthy, container),
                "a healthy container",
                guard_s=DEADLINE_S,
                poll_s=0.5,
            )
    finally:
        stack.close()
