"""Find real PostgreSQL and RabbitMQ for the tests.

Order: DATABASE_URL / AMQP_URL when set, else the local services on 127.0.0.1
when they answer, else testcontainers (needs a Docker engine, or podman's API socket
as DOCKER_HOST; POSTGRES_IMAGE / RABBITMQ_IMAGE pick the images, e.g. the local ones
deploy/images/build.sh makes). Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from typing import Any

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

HOW_TO_PROVIDE = (
    "No PostgreSQL/RabbitMQ for the tests. Provide them in one of three ways: "
    "set DATABASE_URL (a PostgreSQL server where the user may CREATE DATABASE) and "
    "AMQP_URL; or run them locally on 127.0.0.1:5432 (trust auth, user postgres) and "
    "127.0.0.1:5672 (guest/guest); or start a Docker engine so testcontainers can run them."
)


class InfraUnavailable(RuntimeError):
    pass


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Infra:
    database_url: str  # an admin database on the server; tests create their own
    amqp_url: str
    source: str
    _containers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for container in self._containers:
            with contextlib.suppress(Exception):
                container.stop()


def discover() -> Infra:
    database_url = os.environ.get("DATABASE_URL")
    amqp_url = os.environ.get("AMQP_URL")
    sources: list[str] = []
    containers: list[Any] = []
    if database_url:
        sources.append("DATABASE_URL")
    elif tcp_answers("127.0.0.1", 5432):
        database_url = LOCAL_DATABASE_URL
        sources.append("local postgres")
    if amqp_url:
        sources.append("AMQP_URL")
    elif tcp_answers("127.0.0.1", 5672):
        amqp_url = LOCAL_AMQP_URL
        sources.append("local rabbitmq")
    if database_url is None or amqp_url is None:
        try:
            if database_url is None:
                try:  # testcontainers >= 4.14 moved the modules under .community
                    from testcontainers.community.postgres import PostgresContainer
                except ImportError:
                    from testcontainers.postgres import PostgresContainer

                image = os.environ.get("POSTGRES_IMAGE", "postgres:16-alpine")
                pg = PostgresContainer(image, driver=None).start()
                containers.append(pg)
                database_url = pg.get_connection_url()
                sources.append("testcontainers postgres")
            if amqp_url is None:
                try:
                    from testcontainers.community.rabbitmq import RabbitMqContainer
                except ImportError:
                    from testcontainers.rabbitmq import RabbitMqContainer

                mq = RabbitMqContainer(
                    os.environ.get("RABBITMQ_IMAGE", "rabbitmq:3.13-alpine")
                ).start()
                containers.append(mq)
                host, port = mq.get_container_host_ip(), mq.get_exposed_port(mq.port)
                amqp_url = f"amqp://guest:guest@{host}:{port}/"
                sources.append("testcontainers rabbitmq")
        except Exception as exc:
            for container in containers:
                with contextlib.suppress(Exception):
                    container.stop()
            raise InfraUnavailable(f"{HOW_TO_PROVIDE} (testcontainers: {exc!r})") from exc
    return Infra(database_url, amqp_url, ", ".join(sources), containers)
