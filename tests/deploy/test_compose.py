"""deploy/docker-compose.yml: valid Compose Specification (offline), and a stack that
starts in the right order and wires the services together."""

from __future__ import annotations

import re
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest

from testkit.deploy_files import (
    COMPOSE_FILE,
    IMAGE_VOLUME_ROLES,
    MissingVariable,
    compose,
    compose_app_services,
    compose_environment,
    interpolate,
    run_tool,
)

LONG_RUNNING = ("etl", "poller", "gateway", "generator")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def by_role(role: str) -> tuple[str, dict[str, Any]]:
    matches = [(n, s) for n, (r, s) in compose_app_services().items() if r == role]
    assert len(matches) == 1, f"expected one compose service running {role}"
    return matches[0]


def seconds(duration: str) -> float:
    """A compose duration such as '30s', '1m30s'."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_file_matches_the_compose_specification() -> None:
    run_tool(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        timeout=120,
    )


def test_stack_has_every_part(services: dict[str, Any]) -> None:
    assert "management" in interpolate(services["rabbitmq"]["image"])
    assert interpolate(services["postgres"]["image"]).startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    assert by_role("etl")[1]["deploy"]["replicas"] == 2
    assert by_role("migrate")[1]["restart"] == "no"
    generator = by_role("generator")[1]
    assert generator["command"][1:] == ["--rate", "2", "--count", "0"]


def test_all_app_services_share_one_image(services: dict[str, Any]) -> None:
    images = {s["image"] for _, (_, s) in compose_app_services().items()}
    builds = {str(s["build"]) for _, (_, s) in compose_app_services().items()}
    assert len(images) == 1 and len(builds) == 1
    build = next(s["build"] for _, (_, s) in compose_app_services().items())
    assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve().is_file()


def test_every_long_running_service_is_health_checked(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name == by_role("migrate")[0]:
            assert check.get("disable") is True, "a one-shot job has nothing to probe"
        else:
            assert check.get("test"), f"{name} has no healthcheck"


def test_start_order_waits_for_health_and_migrations(services: dict[str, Any]) -> None:
    migrate_name = by_role("migrate")[0]
    assert services[migrate_name]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for role in LONG_RUNNING:
        name, service = by_role(role)
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "rabbitmq": {"condition": "service_healthy"},
            migrate_name: {"condition": "service_completed_successfully"},
        }, name
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_healthy":
                assert services[dependency].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {dependency} to be healthy, which it never reports"
                )


def test_images_volume_is_shared(services: dict[str, Any]) -> None:
    volumes = set()
    for role in IMAGE_VOLUME_ROLES:
        name, service = by_role(role)
        image_dir = compose_environment(service)["IMAGE_DIR"]
        mounts = [v.split(":") for v in service["volumes"] if v.split(":")[1] == image_dir]
        assert len(mounts) == 1, f"{name} does not mount a volume at IMAGE_DIR={image_dir}"
        source, _, *mode = mounts[0]
        volumes.add(source)
        assert mode == (["ro"] if role == "gateway" else []), f"{name} mount mode {mode}"
    assert len(volumes) == 1, f"etl and gateway must share one volume, got {volumes}"
    assert volumes.pop() in compose()["volumes"], "a named volume, declared at the top level"


def test_backend_urls_match_the_bundled_servers(services: dict[str, Any]) -> None:
    postgres = services["postgres"]["environment"]
    rabbitmq = services["rabbitmq"]["environment"]
    for name, (_, service) in compose_app_services().items():
        env = compose_environment(service)
        database = urlsplit(env["DATABASE_URL"])
        assert database.hostname == "postgres", name
        assert (database.username, database.password) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
        ), name
        assert database.path == f"/{postgres['POSTGRES_DB']}", name
        amqp = urlsplit(env["AMQP_URL"])
        assert amqp.hostname == "rabbitmq", name
        assert (amqp.username, amqp.password) == (
            rabbitmq["RABBITMQ_DEFAULT_USER"],
            rabbitmq["RABBITMQ_DEFAULT_PASS"],
        ), name


def test_gateway_listens_where_it_is_published(services: dict[str, Any]) -> None:
    env = compose_environment(by_role("gateway")[1])
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    (published,) = by_role("gateway")[1]["ports"]
    assert interpolate(published) == f"127.0.0.1:8000:{env['GATEWAY_PORT']}"


def test_published_ports_bind_loopback_unless_told_otherwise(services: dict[str, Any]) -> None:
    """Every published port listens on SMOKESIGNAL_BIND, 127.0.0.1 by default."""
    published = [(n, p) for n, s in services.items() for p in s.get("ports", [])]
    assert {n for n, _ in published} == {"gateway", "rabbitmq"}
    for name, port in published:
        assert isinstance(port, str) and port.startswith("${SMOKESIGNAL_BIND:-127.0.0.1}:"), name
        host, _, _ = interpolate(port).split(":")
        assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback"
        chosen = interpolate(port, {"SMOKESIGNAL_BIND": "0.0.0.0", "GATEWAY_HOST_PORT": "18000"})
        assert chosen.startswith("0.0.0.0:"), name
    assert interpolate(services["rabbitmq"]["ports"][0]).endswith(":15672:15672")


def test_gateway_token_must_be_set_explicitly(services: dict[str, Any]) -> None:
    """Unset, compose refuses to start (no silent auth-off); explicitly empty turns it off."""
    gateway = by_role("gateway")[1]
    with pytest.raises(MissingVariable, match="GATEWAY_TOKEN"):
        compose_environment(gateway, {})
    assert compose_environment(gateway, {"GATEWAY_TOKEN": ""})["GATEWAY_TOKEN"] == ""
    assert compose_environment(gateway, {"GATEWAY_TOKEN": "t0k"})["GATEWAY_TOKEN"] == "t0k"


def test_images_are_variables_defaulting_to_public_images(services: dict[str, Any]) -> None:
    """Local images (deploy/images/build.sh) come in through variables; defaults are public."""
    defaults = {
        "postgres": ("POSTGRES_IMAGE", "postgres:"),
        "rabbitmq": ("RABBITMQ_IMAGE", "rabbitmq:"),
    }
    for name, (variable, public) in defaults.items():
        image = services[name]["image"]
        assert interpolate(image).startswith(public), name
        assert interpolate(image, {variable: "localhost/x:1"}) == "localhost/x:1", name
    for name, (_, service) in compose_app_services().items():
        assert interpolate(service["image"]) == "smokesignal:local", name
        assert interpolate(service["image"], {"SMOKESIGNAL_IMAGE": "localhost/s:1"}) == (
            "localhost/s:1"
        )
        python = interpolate(service["build"]["args"]["PYTHON_IMAGE"])
        assert python == "python:3.11-slim-bookworm", name


def test_stop_grace_covers_the_etl_shutdown(services: dict[str, Any]) -> None:
    _, etl = by_role("etl")
    grace = seconds(etl["stop_grace_period"])
    assert grace > float(compose_environment(etl)["ETL_SHUTDOWN_GRACE_S"]) + 5
