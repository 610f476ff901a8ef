"""deploy/k8s/production: the base with its single-pod servers replaced by a 3-node
RabbitmqCluster (RabbitMQ Cluster Operator) and a 3-instance CloudNativePG Cluster.
Schema validity against the vendored CRDs is in test_kubernetes.py (every manifest);
this checks what the overlay must mean."""

from __future__ import annotations

from typing import Any

import pytest

from shared.bus import Bus
from testkit.deploy_files import (
    K8S_BASE,
    K8S_PRODUCTION,
    OPERATOR_SECRETS,
    app_containers,
    container_environment,
    deployed_objects,
    rendered_objects,
)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return deployed_objects(K8S_PRODUCTION)


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_single_pod_servers_are_replaced(production: list[dict[str, Any]]) -> None:
    assert not [o for o in production if o["kind"] == "StatefulSet"]
    names = {o["metadata"]["name"] for o in production if o["kind"] == "Service"}
    assert not names & {"postgres", "rabbitmq"}


def test_rabbitmq_cluster_three_nodes_quorum_by_default(production: list[dict[str, Any]]) -> None:
    cluster = one(production, "RabbitmqCluster")
    assert cluster["spec"]["replicas"] == 3
    config = cluster["spec"]["rabbitmq"]["additionalConfig"].splitlines()
    assert "default_queue_type = quorum" in config
    # default_queue_type in rabbitmq.conf exists from RabbitMQ 3.13 (falls back to classic
    # for exclusive/transient queues from 4.0): the image must be 4.x.
    assert cluster["spec"]["image"].split(":")[1].startswith("4.")


def test_gateway_log_is_a_stream() -> None:
    """The event log the gateways read is declared by the services as a stream, which a
    cluster replicates (the overlay has nothing to add but the nodes)."""
    bus = Bus("amqp://unused/", "smokesignal.events")
    assert bus.stream_arguments["x-queue-type"] == "stream"
    assert "x-initial-cluster-size" not in bus.stream_arguments, "default: every node"


def test_postgres_cluster_three_instances(production: list[dict[str, Any]]) -> None:
    cluster = one(production, "Cluster")
    assert cluster["spec"]["instances"] == 3
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert (initdb["database"], initdb["owner"]) == ("smokesignal", "smokesignal")


def test_services_use_the_operators_secrets(production: list[dict[str, Any]]) -> None:
    database = one(production, "Cluster")["metadata"]["name"]
    broker = one(production, "RabbitmqCluster")["metadata"]["name"]
    containers = app_containers(production)
    assert containers
    for role, container, _ in containers:
        env, duplicates = container_environment(container, production)
        assert not duplicates, duplicates
        assert env["DATABASE_URL"].source == f"Secret/{database}-app", role
        assert env["AMQP_URL"].source == f"Secret/{broker}-default-user", role
        # CloudNativePG's app URI points at the read-write (primary) service.
        assert f"@{database}-rw." in env["DATABASE_URL"].value
    assert set(OPERATOR_SECRETS) == {f"{database}-app", f"{broker}-default-user"}


def test_patched_env_sources_track_the_base() -> None:
    """The overlay restates each envFrom list: it must be the base's minus the backends
    Secret, so a source added to the base later is not silently dropped in production."""
    base = {c["name"]: c for _, c, _ in app_containers(rendered_objects(K8S_BASE))}
    for role, container, _ in app_containers(rendered_objects(K8S_PRODUCTION)):
        expected = [
            source
            for source in base[container["name"]].get("envFrom", [])
            if source.get("secretRef", {}).get("name") != "smokesignal-backends"
        ]
        assert container.get("envFrom", []) == expected, role
