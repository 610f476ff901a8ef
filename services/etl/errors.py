"""Error kinds of the ETL: whether retrying can help decides what the worker does."""

from __future__ import annotations

from shared.logs import describe_exception


class Stage2Error(Exception):
    """Base of the errors the ETL raises on purpose (message is shown to users)."""


class PermanentError(Stage2Error):
    """Retrying cannot help (bad input): the job fails at once."""


class MalformedExecution(PermanentError, ValueError):
    """A raw execution that does not match the documented format; names the field."""


class ExecutionIdTaken(MalformedExecution):
    """A raw execution whose id an n8n execution already has (they share `executions.id`)."""


class InvalidImage(PermanentError, ValueError):
    """The execution's image is not a usable image (bad base64, not an image, too big)."""


class TransientError(Stage2Error):
    """A failure that may go away: retried with exponential backoff."""


class DemoTransientFailure(TransientError):
    """Raised on purpose for the first N attempts when the raw `demo` block asks for it."""


def describe_error(exc: BaseException) -> str:
    """The message users see: ours verbatim, anything else with its type."""
    if isinstance(exc, Stage2Error) and str(exc):
        return str(exc)
    return describe_exception(exc)
