"""Container health probe: is the smokesignal role running in this container healthy?

One image runs every role, so the probe first finds which service process the
container runs (by scanning /proc, which works whether the service or an init
is PID 1), then checks it the way that role allows:

- gateway: GET /healthz on GATEWAY_HOST:GATEWAY_PORT
- etl, poller: GET /metrics on ETL_METRICS_PORT / POLLER_METRICS_PORT when non-zero, else alive
- generator, migrate: alive

Exit status 0 = healthy, 1 = unhealthy (the Docker HEALTHCHECK convention).
Kubernetes does not use this: its probes call the same endpoints directly.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROLES = ("gateway", "etl", "poller", "generator", "migrate")
# Wildcard listen addresses are probed over loopback.
_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def role_of(argv: Sequence[str]) -> str | None:
    """The smokesignal role a command line runs (`python -m services.etl worker` → etl)."""
    args = list(argv)
    if "-m" not in args:
        return None
    rest = args[args.index("-m") + 1 :]
    if not rest:
        return None
    module, sub = rest[0], rest[1:2]
    if module == "services.gateway":
        return "gateway"
    if module == "services.poller":
        return "poller"
    if module == "shared.migrate":
        return "migrate"
    if module == "services.etl":
        return {"worker": "etl", "generate": "generator"}.get(sub[0] if sub else "")
    return None


def running_roles(proc_root: Path) -> set[str]:
    """Roles of every process visible under `proc_root` (normally /proc)."""
    found: set[str] = set()
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        role = role_of([part.decode(errors="replace") for part in raw.split(b"\0") if part])
        if role:
            found.add(role)
    return found


def probe_url(role: str) -> str | None:
    """The URL that proves `role` healthy, or None when being alive is all it can show."""
    # Read the same settings the service reads, so defaults and parsing match.
    from shared.settings import EtlSettings, GatewaySettings, PollerSettings

    if role == "gateway":
        gateway = GatewaySettings()
        host = "127.0.0.1" if gateway.gateway_host in _ANY_ADDRESS else gateway.gateway_host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{gateway.gateway_port}/healthz"
    if role in ("etl", "poller"):
        port = (
            EtlSettings().etl_metrics_port
            if role == "etl"
            else PollerSettings().poller_metrics_port
        )
        return f"http://127.0.0.1:{port}/metrics" if port else None
    return None


def http_ok(url: str, timeout_s: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300, f"{url} → {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} → {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} → {exc}"


def check(proc_root: Path, timeout_s: float) -> tuple[bool, str]:
    roles = running_roles(proc_root)
    if not roles:
        return False, "no smokesignal service process is running"
    results = []
    for role in sorted(roles):
        url = probe_url(role)
        if url is None:
            results.append((True, f"{role}: running"))
        else:
            ok, detail = http_ok(url, timeout_s)
            results.append((ok, f"{role}: {detail}"))
    return all(ok for ok, _ in results), "; ".join(detail for _, detail in results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--proc-root", type=Path, default=Path("/proc"))
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds per HTTP probe")
    args = parser.parse_args(argv)
    healthy, detail = check(args.proc_root, args.timeout)
    print(("healthy: " if healthy else "unhealthy: ") + detail)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
