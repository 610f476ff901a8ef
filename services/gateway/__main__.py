"""`python -m services.gateway`: the gateway under uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import logging

import uvicorn

from services.gateway.app import create_app
from shared.logs import configure_logging
from shared.settings import GatewaySettings


def _drop_color_message(record: logging.LogRecord) -> bool:
    # uvicorn attaches an ANSI-coloured duplicate of each message; keep JSON logs clean.
    record.__dict__.pop("color_message", None)
    return True


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level, "gateway")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_drop_color_message)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,  # keep our JSON logging
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
