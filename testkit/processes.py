"""Subprocesses for tests and benchmarks: services (`python -m …`), nginx; always cleaned up.

Each process's combined output goes to a temp log file (removed on cleanup
unless KEEP_PROCESS_LOGS or BENCH_KEEP_LOGS is set), so a failure can show it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from testkit.waiting import wait_until_sync

REPO_ROOT = Path(__file__).resolve().parents[1]


class ProcessExited(AssertionError):
    """The process ended while something waited on it."""


class ManagedProcess:
    """One subprocess (any argv) whose combined output goes to a temp log file."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.argv = argv
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.name = name
        fd, path = tempfile.mkstemp(prefix="smokesignal-svc-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.proc: subprocess.Popen[bytes] | None = None
        self._signalled = False

    @classmethod
    def python_module(cls, args: list[str], env: dict[str, str], name: str) -> ManagedProcess:
        return cls([sys.executable, "-m", *args], env, name)

    def start(self) -> ManagedProcess:
        self._signalled = False
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
            raise ProcessExited(f"{self.name} exited; output:\n{self.output()[-4000:]}")

    def wait_for_output(self, needle: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if needle in self.output():
                return True
            self.check_running()
            return False

        try:
            wait_until_sync(seen, repr(needle), guard_s=timeout)
        except ProcessExited:
            raise
        except AssertionError:
            raise AssertionError(
                f"{self.name}: {needle!r} not seen; output:\n{self.output()[-4000:]}"
            ) from None

    def kill(self) -> None:
        """kill -9: no chance to clean up (crash simulation)."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def signal_stop(self) -> None:
        """SIGTERM without waiting; `terminate` then waits (see `stop_all`)."""
        if self.proc is not None and self.proc.poll() is None and not self._signalled:
            self.proc.send_signal(signal.SIGTERM)
            # Once: a second SIGTERM makes uvicorn skip its graceful shutdown.
            self._signalled = True

    def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait for a graceful exit (kill -9 if it hangs)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal_stop()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def cleanup(self, timeout: float = 10) -> None:
        """Stop it (SIGTERM, then SIGKILL) and remove its log unless asked to keep it."""
        self.terminate(timeout=timeout)
        if os.environ.get("KEEP_PROCESS_LOGS") or os.environ.get("BENCH_KEEP_LOGS"):
            print(f"[testkit] {self.name} log kept at {self.log_path}", file=sys.stderr)
        else:
            self.log_path.unlink(missing_ok=True)

    stop = cleanup


class ServiceProcess(ManagedProcess):
    """`python -m ARGS…` as a real subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], name: str | None = None) -> None:
        super().__init__([sys.executable, "-m", *args], env, name or " ".join(args))
        self.args = args

    def start(self) -> ServiceProcess:
        super().start()
        return self


def stop_all(processes: Sequence[ManagedProcess], timeout: float = 10) -> None:
    """Stop (and clean up) several processes at once: SIGTERM to all, then wait for each.

    Each service's graceful shutdown takes its own time (an ETL worker's grace for
    running jobs, uvicorn closing streams); one after the other, a test's teardown
    paid the sum of them.
    """
    for process in processes:
        process.signal_stop()
    for process in processes:
        process.cleanup(timeout=timeout)


class ProcessGroup:
    """Processes started together; `stop_all` (all at once) is always called."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def start(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process.start())
        return process

    def stop_all(self) -> None:
        stop_all(self.processes, timeout=15)
        self.processes.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
