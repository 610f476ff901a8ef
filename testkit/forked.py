"""`python -m MODULE` forked from a server that has imported it already.

A gateway subprocess spends 1-2 CPU seconds importing FastAPI, pydantic and the app
before it does anything, and the browser tests start one (or two) per test. Forked
from multiprocessing's fork server, which imports the modules once per pytest
process, a `ForkedProcess` is still its own process running the module as
`__main__` with exactly its environment, working directory and log file, stopped by
SIGTERM, without that import.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import runpy
import signal
import sys
from multiprocessing import forkserver
from multiprocessing.process import BaseProcess

from testkit.processes import REPO_ROOT, ManagedProcess

_CONTEXT = multiprocessing.get_context("forkserver")


def preload(modules: list[str]) -> None:
    """Modules the fork server imports once (before its first fork)."""
    _CONTEXT.set_forkserver_preload(modules)


def stop_server() -> None:
    """Stop the fork server and wait for it: as with a Popen child, the CPU time of the
    processes it forked is then counted in this process's children (`time -v`)."""
    forkserver._forkserver._stop()  # type: ignore[attr-defined]


def _run_module(module: str, env: dict[str, str], log_path: str) -> None:
    """In the forked child: `python -m module` with `env`, all output to `log_path`."""
    os.chdir(REPO_ROOT)
    os.environ.clear()
    os.environ.update(env)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # What PYTHONUNBUFFERED does for a fresh interpreter: every line reaches the log now.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(write_through=True)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class ForkedProcess(ManagedProcess):
    """`python -m MODULE` as a child of the fork server (see the module docstring)."""

    def __init__(self, module: str, env: dict[str, str], name: str) -> None:
        super().__init__([sys.executable, "-m", module], env, name)
        self.module = module
        self.child: BaseProcess | None = None

    def start(self) -> ForkedProcess:
        self._signalled = False  # a restarted process may be stopped again
        self.child = _CONTEXT.Process(
            target=_run_module, args=(self.module, self.env, str(self.log_path)), name=self.name
        )
        self.child.start()
        return self

    @property
    def pid(self) -> int:
        assert self.child is not None and self.child.pid is not None
        return self.child.pid

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.is_alive()

    def kill(self) -> None:
        if self.child is not None and self.child.is_alive():
            self.child.kill()
            self.child.join(timeout=10)

    def signal_stop(self) -> None:
        """SIGTERM once, without waiting (what `stop_all` sends to every process first)."""
        if self.child is not None and self.child.is_alive() and not self._signalled:
            os.kill(self.pid, signal.SIGTERM)
            self._signalled = True

    def terminate(self, timeout: float = 30) -> int | None:
        if self.child is None:
            return None
        if self.child.is_alive():
            self.signal_stop()
            self.child.join(timeout=timeout)
            if self.child.is_alive():
                self.kill()
        return self.child.exitcode
