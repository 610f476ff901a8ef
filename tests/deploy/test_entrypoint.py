"""The image's entrypoint and healthcheck, run here as they run in the container: the
role dispatch, real migrations, and the health probe against real service processes."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import asyncpg
import pytest

from shared.bus import Bus
from testkit.deploy_files import ENTRYPOINT, HEALTHCHECK, REPO_ROOT, ROLE_SETTINGS
from testkit.net import free_port

VENV_BIN = str(Path(sys.executable).parent)


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = load_healthcheck()


def run_entrypoint(
    *args: str, path: str = VENV_BIN, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env={**os.environ, **(env or {}), "PATH": f"{path}:{os.environ['PATH']}"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- entrypoint ---------------------------------------------------------------------------


@pytest.fixture
def echo_python(tmp_path: Path) -> str:
    """A directory whose `python` prints its arguments: shows what a role would run."""
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    stub.chmod(0o755)
    return str(tmp_path)


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["etl"], ["-m", "services.etl", "worker"]),
        (["poller"], ["-m", "services.poller"]),
        (["gateway"], ["-m", "services.gateway"]),
        (["generator"], ["-m", "services.etl", "generate", "--rate", "2", "--count", "0"]),
        (["generator", "--count", "5"], ["-m", "services.etl", "generate", "--count", "5"]),
        (["migrate"], ["-m", "shared.migrate"]),
        (["healthcheck", "--timeout", "1"], [str(HEALTHCHECK), "--timeout", "1"]),
    ],
    ids=lambda value: " ".join(value),
)
def test_each_role_runs_its_command(args: list[str], command: list[str], echo_python: str) -> None:
    ran = run_entrypoint(*args, path=echo_python)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == command


def test_help_names_every_role() -> None:
    ran = run_entrypoint("help")
    assert ran.returncode == 0
    for role in [*ROLE_SETTINGS, "healthcheck"]:
        assert f"\n  {role} " in ran.stdout


def test_unknown_role_is_a_usage_error(echo_python: str) -> None:
    ran = run_entrypoint("webserver", path=echo_python)
    assert ran.returncode == 64
    assert "unknown role 'webserver'" in ran.stderr
    assert ran.stdout == "", "nothing ran"


async def test_migrate_role_applies_the_schema(empty_database_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(ENTRYPOINT),
        "migrate",
        env={
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "DATABASE_URL": empty_database_url,
        },
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        assert await conn.fetchval("SELECT to_regclass('public.outbox') IS NOT NULL")
    finally:
        await conn.close()


# --- healthcheck: role detection ----------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["python", "-m", "services.gateway"], "gateway"),
        (["/opt/venv/bin/python", "-m", "services.etl", "worker"], "etl"),
        (["python", "-m", "services.etl", "generate", "--rate", "2"], "generator"),
        (["python", "-m", "services.etl", "ingest", "x.json"], None),
        (["python", "-m", "services.poller"], "poller"),
        (["python", "-m", "shared.migrate"], "migrate"),
        (["python", "-m"], None),
        (["/bin/sh", "/opt/smokesignal/entrypoint.sh", "gateway"], None),
        (["sleep", "15"], None),
    ],
)
def test_role_of_a_command_line(argv: list[str], role: str | None) -> None:
    assert healthcheck.role_of(argv) == role


def fake_proc(root: Path, processes: dict[int, list[str]]) -> Path:
    for pid, argv in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir(exist_ok=True)  # non-numeric entries are ignored
    return root


def test_running_roles_reads_every_process(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path,
        {
            1: ["/sbin/docker-init", "--", "/opt/smokesignal/entrypoint.sh", "etl"],
            7: ["/opt/venv/bin/python", "-m", "services.etl", "worker"],
            9: ["python", "/opt/smokesignal/healthcheck.py"],
        },
    )
    assert healthcheck.running_roles(proc) == {"etl"}


# --- healthcheck: probes against a real HTTP endpoint -------------------------------------


class _Endpoint:
    def __init__(self) -> None:
        self.status = 200
        self.paths: list[str] = []


@pytest.fixture
def endpoint() -> Iterator[tuple[_Endpoint, int]]:
    state = _Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.paths.append(self.path)
            self.send_response(state.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_gateway_health_is_its_healthz(
    tmp_path: Path, endpoint: tuple[_Endpoint, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, port = endpoint
    proc = fake_proc(tmp_path, {1: ["python", "-m", "services.gateway"]})
    monkeypatch.setenv("GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("GATEWAY_PORT", str(port))
    assert healthcheck.main(["--proc-root", str(proc)]) == 0
    assert state.paths == ["/healthz"]
    state.status = 503
    assert healthcheck.main(["--proc-root", str(proc)]) == 1


def test_worker_health_is_its_metrics_endpoint(
    tmp_path: Path, endpoint: tuple[_Endpoint, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, port = endpoint
    proc = fake_proc(tmp_path, {1: ["python", "-m", "services.poller"]})
    monkeypatch.setenv("POLLER_METRICS_PORT", str(port))
    assert healthcheck.main(["--proc-root", str(proc)]) == 0
    assert state.paths == ["/metrics"]
    monkeypatch.setenv("POLLER_METRICS_PORT", str(free_port()))  # nothing listens there
    assert healthcheck.main(["--proc-root", str(proc)]) == 1
    monkeypatch.setenv("POLLER_METRICS_PORT", "0")  # no endpoint: alive is all it can show
    assert healthcheck.main(["--proc-root", str(proc)]) == 0


def test_no_service_process_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = fake_proc(tmp_path, {1: ["sleep", "100"]})
    assert healthcheck.main(["--proc-root", str(proc)]) == 1
    assert "no smokesignal service process" in capsys.readouterr().out


# --- healthcheck and graceful stop with the real services ---------------------------------


# What each service logs once it has shut down cleanly.
STOPPED = {"gateway": "Application shutdown complete", "poller": "poller stopped"}


@pytest.mark.parametrize("role", sorted(STOPPED))
def test_real_service_started_by_the_entrypoint(
    role: str, service_env: dict[str, str], bus: Bus, tmp_path: Path
) -> None:
    """The entrypoint execs the service (so SIGTERM reaches it and it stops cleanly),
    and the healthcheck reports it healthy once it serves. (`bus` removes the test's
    exchange afterwards.)"""
    port = free_port()
    env = {
        **os.environ,
        **service_env,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "POLLER_METRICS_PORT": str(port if role != "gateway" else 0),
        "IMAGE_DIR": str(tmp_path / "images"),
    }
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [str(ENTRYPOINT), role], env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        # Only this process is visible to the probe, not other services on the machine.
        proc = tmp_path / "proc"
        proc.mkdir()
        (proc / str(process.pid)).symlink_to(f"/proc/{process.pid}")
        checked = [sys.executable, str(HEALTHCHECK), "--proc-root", str(proc), "--timeout", "2"]
        deadline = time.monotonic() + 60  # deadlock guard only
        while True:
            probe = subprocess.run(checked, env=env, capture_output=True, text=True, check=False)
            if probe.returncode == 0:
                break
            assert process.poll() is None, (tmp_path / "service.log").read_text()
            assert time.monotonic() < deadline, probe.stdout
            time.sleep(0.2)
        assert f"{role}: " in probe.stdout

        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM once it has shut down, hence -SIGTERM for the gateway.
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
        output = (tmp_path / "service.log").read_text()
        assert STOPPED[role] in output, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()
