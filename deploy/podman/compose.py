#!/usr/bin/env python3
"""Bring the compose stack up under podman in dependency order, each service started
only once what it `depends_on` is healthy / completed / started.

podman-compose creates the containers, networks and volumes (`up --no-start`); this
script starts them. It exists because podman before 4.6 cannot wait for a container
to become healthy (podman-compose then ignores `condition: service_healthy`), and
without systemd podman never runs healthchecks on its own: here each check is run
(`podman healthcheck run`) while something waits on it.

    deploy/podman/compose.py up   [-p PROJECT] [-f FILE] [--timeout S]
    deploy/podman/compose.py down [-p PROJECT] [-f FILE]     (removes the volumes too)

Needs podman-compose (>= 1.1) on PATH or in this Python's environment, and PyYAML.
The environment is passed through: compose variables (GATEWAY_TOKEN, *_IMAGE, ports).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_FILE = HERE.parent / "docker-compose.yml"
POLL_S = 1.0


def log(message: str) -> None:
    print(f"compose.py: {message}", file=sys.stderr, flush=True)


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(HERE / "containers.conf"))
    return env


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=check, env=podman_env()
    )


def podman_compose_command() -> list[str]:
    found = shutil.which(
        "podman-compose", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    )
    if found is None:
        raise SystemExit("compose.py: podman-compose not found (make container-deps installs it)")
    return [found]


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """`depends_on` in its long form: dependency → condition."""
    declared = service.get("depends_on") or {}
    if isinstance(declared, list):
        return dict.fromkeys(declared, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in declared.items()}


def start_order(services: dict[str, Any]) -> list[str]:
    """Services ordered so every one comes after what it depends on (file order otherwise)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise SystemExit(f"compose.py: dependency cycle through {name}")
        visiting.add(name)
        for dependency in dependencies(services[name]):
            visit(dependency)
        visiting.discard(name)
        ordered.append(name)

    for name in services:
        visit(name)
    return ordered


def containers_of(project: str, service: str) -> list[str]:
    listed = podman(
        "ps",
        "-a",
        "--filter",
        f"label=io.podman.compose.project={project}",
        "--filter",
        f"label=com.docker.compose.service={service}",
        "--format",
        "{{.Names}}",
    )
    return sorted(listed.stdout.split())


def has_healthcheck(container: str) -> bool:
    shown = podman("inspect", "--format", "{{json .Config.Healthcheck}}", container)
    check = json.loads(shown.stdout or "null") or {}
    return bool(check.get("Test")) and check["Test"][0] != "NONE"


def is_healthy(container: str) -> bool:
    """Runs the container's healthcheck once (podman records the result)."""
    return podman("healthcheck", "run", container, check=False).returncode == 0


def state(container: str) -> tuple[str, int]:
    shown = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container)
    status, code = shown.stdout.split()
    return status, int(code)


def wait_for(containers: Sequence[str], condition: str, deadline: float) -> None:
    for container in containers:
        while True:
            status, code = state(container)
            if condition == "service_completed_successfully":
                if status in ("exited", "stopped"):
                    if code != 0:
                        logs = podman("logs", "--tail", "30", container, check=False)
                        output = logs.stdout + logs.stderr
                        raise SystemExit(f"compose.py: {container} exited with {code}\n{output}")
                    break
            elif condition == "service_healthy":
                if status == "running" and is_healthy(container):
                    break
            elif status == "running":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"compose.py: timed out waiting for {container} ({condition})")
            time.sleep(POLL_S)
        log(f"{container}: {condition.removeprefix('service_')}")


def up(project: str, compose_file: Path, timeout_s: float) -> None:
    services: dict[str, Any] = yaml.safe_load(compose_file.read_text())["services"]
    subprocess.run(
        [
            *podman_compose_command(),
            "-p",
            project,
            "-f",
            str(compose_file),
            "up",
            "--no-start",
            "--no-deps",
        ],
        check=True,
        env=podman_env(),
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    for name in start_order(services):
        for dependency, condition in dependencies(services[name]).items():
            wait_for(containers_of(project, dependency), condition, deadline)
        for container in containers_of(project, name):
            podman("start", container)
            log(f"{container}: started")
    # Up = every long-running container healthy (the one-shot ones have no check).
    for name in services:
        for container in containers_of(project, name):
            if has_healthcheck(container):
                wait_for([container], "service_healthy", deadline)


def down(project: str, compose_file: Path) -> None:
    env = podman_env()
    env.setdefault("GATEWAY_TOKEN", "")  # required by `up`, irrelevant to `down`
    subprocess.run(
        [*podman_compose_command(), "-p", project, "-f", str(compose_file), "down", "-v"],
        check=False,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("-p", "--project", default="smokesignal")
    parser.add_argument("-f", "--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--timeout", type=float, default=600, help="seconds for `up` (600)")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args.project, args.file, args.timeout)
    else:
        down(args.project, args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
