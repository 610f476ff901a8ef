"""`python -m services.run` (`make run`, `make run-n8n`) as a terminal would run it: its own
process group, Ctrl-C to the whole group, its children's pids read from its output."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit.net import free_port
from testkit.processes import REPO_ROOT

START_TIMEOUT_S = 120.0  # deadlock guard, not a timing assertion


@dataclass
class Launcher:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen; output:\n{self.output()[-6000:]}")

    def child_pids(self) -> dict[str, int]:
        """Every child it announced ("started NAME (pid N)"): the services, and n8n."""
        return {m[1]: int(m[2]) for m in re.finditer(r"started (\w+) \(pid (\d+)\)", self.output())}

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=90)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def group_alive(pgid: int) -> bool:
    """Any live process left in process group `pgid` (n8n runs in a group of its own)."""
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def run_env(database_url: str, amqp_url: str, exchange_name: str, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "EXCHANGE_NAME": exchange_name,
        "GATEWAY_PORT": str(free_port()),
        "IMAGE_DIR": str(tmp_path / "images"),
        "DEMO_RATE": "5",
        "GATEWAY_TOKEN": "",
        "LOG_LEVEL": "INFO",
    }


@contextmanager
def launching() -> Iterator[list[Launcher]]:
    """Collects launchers; afterwards stops what still runs and kills any leftover child."""
    started: list[Launcher] = []
    yield started
    for launcher in started:
        if launcher.proc.poll() is None:
            os.killpg(launcher.proc.pid, signal.SIGTERM)
            try:
                launcher.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.proc.pid, signal.SIGKILL)
                launcher.proc.wait(timeout=10)
        for name, pid in launcher.child_pids().items():
            if name == "n8n" and group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
            elif pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        launcher.log_path.unlink(missing_ok=True)


def launch(started: list[Launcher], env: dict[str, str], *args: str) -> Launcher:
    log_path = Path(tempfile.mkstemp(prefix="smokesignal-run-", suffix=".log")[1])
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.run", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal job
        )
    launcher = Launcher(proc, log_path)
    started.append(launcher)
    return launcher
