"""Every command line answers `--help` with its help and exit 0, and starts nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.processes import REPO_ROOT

COMMANDS = [
    ["-m", "services.etl"],
    ["-m", "services.etl", "worker"],
    ["-m", "services.etl", "ingest"],
    ["-m", "services.etl", "generate"],
    ["-m", "services.poller"],
    ["-m", "services.gateway"],
    ["-m", "services.run"],
    ["-m", "services.run", "--n8n"],
    ["-m", "shared.migrate"],
    ["-m", "bench"],
    ["deploy/healthcheck.py"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_prints_help_and_exits_0(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=REPO_ROOT,
        # Nothing to connect to: a command that ignored --help would fail or hang here.
        env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
