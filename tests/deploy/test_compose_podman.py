"""deploy/docker-compose.yml run for real under podman, with the local images built from
Debian's packages: every service comes up healthy in dependency order, the dashboard
answers, an ingested execution reaches an SSE client, and crashed ETL workers are
restarted by their restart policy with nothing lost.

The stack gets its own compose project name and free host ports (never 5432/5672/8000,
which the machine's services and other tests use); it is removed with its volumes."""

from __future__ import annotations

import functools
import json
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from services.demo.generator import make_raw_execution
from testkit.deploy_files import COMPOSE_FILE, compose
from testkit.net import free_port
from testkit.podman import (
    COMPOSE_SCRIPT,
    build_local_images,
    podman,
    podman_environment,
)
from testkit.sse import SseThread
from testkit.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(1800)]

DEADLINE_S = 300  # deadlock guard for every wait below, not a performance bound
# Far above the demo generator's ids (it counts up from the largest id at start-up).
FIRST_ID = 9_000_000_000 + int(time.time()) % 1_000_000 * 100
WHILE_DOWN = 5  # executions ingested while every ETL worker is down


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    base_url: str
    token: str
    up_log: str
    headers: dict[str, str] = field(default_factory=dict)

    def containers(self, service: str) -> list[str]:
        names = podman(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        )
        return sorted(names.split())

    def inspect(self, container: str, template: str) -> str:
        return podman("inspect", "--format", template, container).strip()


def compose_script(
    command: str, project: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPOSE_SCRIPT), command, "-p", project, "-f", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S * 2,
        env=podman_environment(env),
        check=False,
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    images = build_local_images()
    project = f"sstest{uuid.uuid4().hex[:8]}"
    token = secrets.token_hex(16)
    gateway_port = free_port()
    env = {
        **images,
        "GATEWAY_TOKEN": token,
        "GATEWAY_HOST_PORT": str(gateway_port),
        "RABBITMQ_MANAGEMENT_HOST_PORT": str(free_port()),
    }
    try:
        started = compose_script("up", project, env)
        assert started.returncode == 0, f"compose up failed:\n{started.stderr[-6000:]}"
        yield Stack(
            project,
            env,
            f"http://127.0.0.1:{gateway_port}",
            token,
            started.stderr,
            {"Authorization": f"Bearer {token}"},
        )
    finally:
        compose_script("down", project, env)
        leftovers = podman("volume", "ls", "--quiet", "--filter", f"name={project}", check=False)
        for volume in leftovers.split():
            podman("volume", "rm", "--force", volume, check=False)


# --- SSE --------------------------------------------------------------------------------


def await_completed(client: SseThread, wanted: set[int]) -> None:
    """Wait until Stage 2 completion of every id in `wanted` has been streamed."""
    missing = set(wanted)
    deadline = time.monotonic() + DEADLINE_S
    while missing:
        assert time.monotonic() < deadline, f"never streamed as complete: {sorted(missing)}"
        event, data = client.next_event()
        if event == "etl:stage2:complete":
            missing.discard(data["execution_id"])
    assert client.error is None, client.error


def ingest(stack: Stack, container: str, execution_ids: list[int]) -> None:
    """Stage 1 through the image's own CLI, inside a running app container."""
    files = {f"/tmp/execution-{i}.json": json.dumps(make_raw_execution(i)) for i in execution_ids}
    script = "".join(f"cat > {path} <<'EOF'\n{body}\nEOF\n" for path, body in files.items())
    script += f"python -m services.etl ingest {' '.join(files)}\n"
    done = subprocess.run(
        ["podman", "exec", "-i", container, "sh", "-s"],
        input=script,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env=podman_environment(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the tests ----------------------------------------------------------------------------


def test_services_become_healthy_in_dependency_order(stack: Stack) -> None:
    """compose.py logs `<container>: <condition>` as each dependency is met and
    `<container>: started` as it starts one: no container starts before its dependencies."""
    events = re.findall(r"compose\.py: (\S+): (\w+)", stack.up_log)
    met: dict[str, set[str]] = {}
    started: list[str] = []
    for container, what in events:
        if what == "started":
            started.append(container)
        else:
            met.setdefault(container, set()).add(what)
        service = container.removeprefix(f"{stack.project}_").rsplit("_", 1)[0]
        if what != "started":
            continue
        for dependency, spec in (compose()["services"][service].get("depends_on") or {}).items():
            condition = spec["condition"].removeprefix("service_")
            for other in stack.containers(dependency):
                assert condition in met.get(other, set()), (
                    f"{container} started before {other} was {condition}"
                )
    assert {c.removeprefix(f"{stack.project}_").rsplit("_", 1)[0] for c in started} == set(
        compose()["services"]
    )
    for service in compose()["services"]:
        for container in stack.containers(service):
            if service == "migrate":
                assert stack.inspect(container, "{{.State.ExitCode}}") == "0"
            else:
                assert stack.inspect(container, "{{.State.Health.Status}}") == "healthy", container


def test_published_ports_listen_on_loopback_only(stack: Stack) -> None:
    for service in ("gateway", "rabbitmq"):
        (container,) = stack.containers(service)
        for line in podman("port", container).splitlines():
            assert line.split(" -> ")[1].startswith("127.0.0.1:"), f"{container}: {line}"


def test_dashboard_answers_and_the_api_needs_the_token(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert http.get("/api/executions").status_code == 401
        listed = http.get("/api/executions", headers=stack.headers)
        assert listed.status_code == 200, listed.text


def test_execution_reaches_sse_and_crashed_workers_restart_losing_nothing(stack: Stack) -> None:
    client = SseThread(stack.base_url, headers=stack.headers, guard_s=DEADLINE_S)
    client.start()
    event, _ = client.next_event()
    assert event == "connection", client.error

    workers = stack.containers("etl")
    assert len(workers) == 2, workers
    ingest(stack, workers[0], [FIRST_ID])
    await_completed(client, {FIRST_ID})

    # A crash, not a stop: SIGKILL to each worker's main process (`podman kill`/`stop`
    # count as the operator stopping it, which `unless-stopped` respects).
    restarts = {w: int(stack.inspect(w, "{{.RestartCount}}")) for w in workers}
    pids = {w: int(stack.inspect(w, "{{.State.Pid}}")) for w in workers}
    for pid in pids.values():
        subprocess.run(["kill", "-s", signal.Signals.SIGKILL.name, str(pid)], check=True)
    # Ingested while the workers are down or restarting, from the gateway's container.
    (gateway,) = stack.containers("gateway")
    later = list(range(FIRST_ID + 1, FIRST_ID + 1 + WHILE_DOWN))
    ingest(stack, gateway, later)

    def restarted(worker: str) -> bool:
        return (
            int(stack.inspect(worker, "{{.RestartCount}}")) > restarts[worker]
            and stack.inspect(worker, "{{.State.Status}}") == "running"
        )

    for worker in workers:
        wait_until_sync(
            functools.partial(restarted, worker),
            f"{worker} restarted by its restart policy",
            guard_s=DEADLINE_S,
            poll_s=1,
        )
        assert int(stack.inspect(worker, "{{.State.Pid}}")) != pids[worker]
    await_completed(client, set(later))

    with httpx.Client(base_url=stack.base_url, timeout=30, headers=stack.headers) as http:
        for execution_id in [FIRST_ID, *later]:
            detail = http.get(f"/api/executions/{execution_id}")
            assert detail.status_code == 200, detail.text
            assert detail.json()["processing_stage"] == "stage2"
            image = http.get(f"/api/executions/{execution_id}/thumbnail")
            assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
