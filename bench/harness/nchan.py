"""The fan-out peer: nginx + nchan (C pub/sub) on a loopback port, run by the bench.

The bench writes its own nginx.conf into a temp dir and runs nginx in the
foreground there (`-p <tmpdir> -c <conf>`, `daemon off`, pid file in the temp
dir) with one worker process, the same footing as one gateway process — or with
N workers on one port (`reuseport`: the kernel spreads connections over them, as
over the gateway's SO_REUSEPORT workers). Subscribers use EventSource on
/sub/<channel>; events are POSTed to /pub/<channel>. Pings are SSE events named
`heartbeat`, like the gateway's, so one client program counts both.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from testkit.net import free_port
from testkit.processes import ManagedProcess

NGINX = Path("/usr/sbin/nginx")
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")

CONF_TEMPLATE = """\
load_module {module};
worker_processes {workers};
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {connections}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    nchan_shared_memory_size 128m;
    server {{
        listen 127.0.0.1:{port} backlog=8192{reuseport};
        location ~ ^/sub/(\\w+)$ {{
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_eventsource_ping_interval {ping_s};
            nchan_eventsource_ping_event heartbeat;
        }}
        location ~ ^/pub/(\\w+)$ {{
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 64;
            nchan_message_timeout 60s;
        }}
    }}
}}
"""


def installed() -> bool:
    return NGINX.exists() and NCHAN_MODULE.exists()


def ensure_installed() -> None:
    """Install Debian's nginx + nchan when missing (as `make test` does for Chromium)."""
    if installed():
        return
    print("[bench] installing Debian nginx + libnginx-mod-nchan for the fan-out peer")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "nginx", "libnginx-mod-nchan"],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )


class NchanServer:
    """nginx with nchan in a temp prefix; `with NchanServer() as nchan: ...`."""

    def __init__(
        self, connections: int = 16000, nofile: int = 20000, workers: int = 1, ping_s: int = 15
    ) -> None:
        """`connections`, `nofile`: per worker (the hard RLIMIT_NOFILE here is 20,000)."""
        ensure_installed()
        self.root = Path(tempfile.mkdtemp(prefix="smokesignal-bench-nchan-"))
        self.port = free_port()
        self.conf = self.root / "nginx.conf"
        self.conf.write_text(
            CONF_TEMPLATE.format(
                module=NCHAN_MODULE,
                root=self.root,
                port=self.port,
                connections=connections,
                nofile=nofile,
                workers=workers,
                reuseport=" reuseport" if workers > 1 else "",
                ping_s=ping_s,
            )
        )
        self.process = ManagedProcess(
            [str(NGINX), "-p", str(self.root), "-c", str(self.conf)], {}, "nchan"
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscribe_path(self, channel: str) -> str:
        return f"/sub/{channel}"

    def publish_url(self, channel: str) -> str:
        return f"{self.base_url}/pub/{channel}"

    def start(self, timeout: float = 10) -> NchanServer:
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process.check_running()
            try:
                httpx.get(self.publish_url("ping"), timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"nchan did not answer; {self.error_log()}")

    def worker_pids(self) -> list[int]:
        """The worker processes (they hold the connections), children of the nginx master."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()]

    def worker_pid(self) -> int:
        """The one worker process of a one-worker server."""
        pids = self.worker_pids()
        if len(pids) != 1:
            raise RuntimeError(f"expected one nginx worker, found {pids}")
        return pids[0]

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> NchanServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
