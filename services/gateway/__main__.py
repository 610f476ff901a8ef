"""`python -m services.gateway`: the gateway under uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from shared.logs import configure_logging
from shared.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level, "gateway")
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,  # keep our JSON logging
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
