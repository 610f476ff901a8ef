"""podman for the container tests: the local images (deploy/images/build.sh, cached by
content hash in podman's storage) and a private Docker-compatible API socket for
testcontainers. `make container-deps` installs podman; without it these tests fail
with that instruction rather than skip."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from testkit.deploy_files import DEPLOY_DIR

BUILD_SCRIPT = DEPLOY_DIR / "images" / "build.sh"
COMPOSE_SCRIPT = DEPLOY_DIR / "podman" / "compose.py"
CONTAINERS_CONF = DEPLOY_DIR / "podman" / "containers.conf"
BUILD_TIMEOUT_S = 1200  # a first build on a fresh machine: debootstrap, apt, pip


def podman_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    # podman-compose from the venv's dev dependencies.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def require_podman() -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: run `make container-deps` (apt)", pytrace=False
        )


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_environment(),
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done.stdout


def build_local_images() -> dict[str, str]:
    """PYTHON_IMAGE, POSTGRES_IMAGE, RABBITMQ_IMAGE, SMOKESIGNAL_IMAGE (built when missing)."""
    require_podman()
    built = subprocess.run(
        [str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env=podman_environment(),
        check=False,
    )
    assert built.returncode == 0, f"deploy/images/build.sh failed:\n{built.stderr[-4000:]}"
    images = dict(line.split("=", 1) for line in built.stdout.split())
    assert set(images) == {"PYTHON_IMAGE", "POSTGRES_IMAGE", "RABBITMQ_IMAGE", "SMOKESIGNAL_IMAGE"}
    return images


@contextlib.contextmanager
def api_socket(directory: Path) -> Iterator[str]:
    """A podman API service on a private unix socket; yields its DOCKER_HOST URL."""
    require_podman()
    socket = directory / "podman.sock"
    url = f"unix://{socket}"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        env=podman_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # deadlock guard
        while not socket.exists():
            assert service.poll() is None, "podman system service exited"
            assert time.monotonic() < deadline, "podman API socket never appeared"
            time.sleep(0.2)
        yield url
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
