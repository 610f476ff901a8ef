"""Structured JSON logging for every service.

Pass context as ``extra={"execution_id": ...}``; it becomes a JSON field.
"""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter


def _drop_color_message(record: logging.LogRecord) -> bool:
    # uvicorn attaches an ANSI-coloured duplicate of each message; keep JSON logs clean.
    record.__dict__.pop("color_message", None)
    return True


# Secrets that may ride in a query string (an old dashboard's ?token=, an OIDC callback's
# code): whatever logs a URL — uvicorn's access log above all — shows them redacted.
_SECRET_QUERY = re.compile(
    r"([?&](?:token|access_token|id_token|refresh_token|code|client_secret|password)=)[^&\s\"']*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRET_QUERY.sub(r"\1[REDACTED]", text)


def _redact_secrets(record: logging.LogRecord) -> bool:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
    return True


def describe_exception(exc: BaseException) -> str:
    """An exception as a log field: its type, and its message when it has one."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def configure_logging(level: str = "INFO", service: str = "smokesignal") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_drop_color_message)
    handler.addFilter(_redact_secrets)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aio-pika/aiormq are chatty at INFO during reconnects; keep their warnings.
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
