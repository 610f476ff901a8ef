"""`python -m shared.migrate`: apply pending migrations to DATABASE_URL and exit."""

from __future__ import annotations

import asyncio
import logging

from shared.cli import parse_no_arguments
from shared.db import migrate
from shared.logs import configure_logging
from shared.settings import CommonSettings


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments("python -m shared.migrate", __doc__, argv)
    settings = CommonSettings()
    configure_logging(settings.log_level, "migrate")
    applied = asyncio.run(migrate(settings.database_url))
    logging.getLogger(__name__).info("migrations up to date", extra={"applied": applied})


if __name__ == "__main__":
    main()
