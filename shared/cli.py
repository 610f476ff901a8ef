"""Command lines of the services: `--help` prints help and exits 0, never starts anything.

Services are configured by environment variables (pydantic-settings), so most
commands take no arguments; the help says where the settings are documented.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

SETTINGS_HELP = (
    "Configured by environment variables (DATABASE_URL, AMQP_URL, EXCHANGE_NAME, …): "
    "see the Configuration section of README.md."
)


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help names the settings' documentation."""
    first_line = (description or "").strip().splitlines()[0] if description else None
    return argparse.ArgumentParser(prog=prog, description=first_line, epilog=SETTINGS_HELP)


def parse_no_arguments(
    prog: str, description: str | None, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """For a command without arguments: answers `--help`, rejects anything else."""
    return parser(prog, description).parse_args(argv)
