"""What machine a result came from (it is part of every figure)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def _first(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _run(*argv: str) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def describe() -> dict[str, Any]:
    mem_kib = _first("/proc/meminfo", "MemTotal")
    return {
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "memory": mem_kib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": _run("psql", "--version"),
        "rabbitmq": _run("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"),
        "nginx_nchan": _run("dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
