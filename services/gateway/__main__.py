"""`python -m services.gateway`: GATEWAY_WORKERS uvicorn workers on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import argparse

from services.gateway.server import run_worker_process, supervise, worker_count
from shared.logs import configure_logging
from shared.settings import GatewaySettings


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.gateway",
        description="The smokesignal gateway (settings from the environment, docs/GATEWAY.md).",
    )
    parser.parse_args()
    settings = GatewaySettings()
    configure_logging(settings.log_level, "gateway")
    workers = worker_count(settings.gateway_workers)
    if workers == 1:
        run_worker_process(0)  # 0: the only process
    else:
        supervise(run_worker_process, workers)  # workers numbered from 1


if __name__ == "__main__":
    main()
