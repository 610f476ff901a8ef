"""Benchmark subprocesses (services, nginx): started with an env, always cleaned up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.infra import REPO_ROOT


class ProcessExited(RuntimeError):
    pass


class ManagedProcess:
    """One subprocess whose combined output goes to a log file in a temp dir."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.argv = argv
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.name = name
        fd, path = tempfile.mkstemp(prefix=f"smokesignal-bench-{name}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(cls, args: list[str], env: dict[str, str], name: str) -> ManagedProcess:
        return cls([sys.executable, "-m", *args], env, name)

    def start(self) -> ManagedProcess:
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=self.env, stdout=log_file, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        if not self.running:
            raise ProcessExited(f"{self.name} exited; output:\n{self.output()[-3000:]}")

    def wait_for_output(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.output():
                return
            self.check_running()
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: {needle!r} not seen; output:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it does not exit; the log file is removed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"[bench] {self.name} log kept at {self.log_path}", file=sys.stderr)
        else:
            self.log_path.unlink(missing_ok=True)


class ProcessGroup:
    """Processes a benchmark started; `stop_all` (in reverse order) is always called."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def start(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process.start())
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
