"""`python -m services.etl worker | ingest FILE… | generate …` (see docs/ETL.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from services.demo.generator import CAMERAS, GeneratorOptions, run_generator
from services.etl.service import run_etl_service
from services.etl.stage1 import n8n_trigger as n8n_trigger_sql
from services.etl.stage1.ingest import ingest_files
from shared.db import create_pool, migrate_when_reachable
from shared.lifecycle import serve_metrics, stop_on_signals
from shared.logs import configure_logging
from shared.settings import EtlSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.etl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run Stage 2 workers and the outbox relay")
    ingest = commands.add_parser("ingest", help="Stage 1: record raw execution JSON files")
    ingest.add_argument("files", nargs="+", type=Path, help="one raw execution per file")
    gen = commands.add_parser("generate", help="ingest demo executions at a steady rate")
    gen.add_argument("--rate", type=float, default=5.0, help="executions per second (5)")
    gen.add_argument("--count", type=int, default=0, help="how many; 0 = until stopped (0)")
    gen.add_argument("--start-id", type=int, help="first id (default: max id in the DB + 1)")
    gen.add_argument("--cameras", type=int, default=len(CAMERAS), help=f"cameras 1..{len(CAMERAS)}")
    gen.add_argument(
        "--max-delay-ms", type=int, default=0, help="random Stage 2 delay 0..N ms (out of order)"
    )
    gen.add_argument(
        "--failure-rate", type=float, default=0.0, help="share of permanently bad inputs 0..1"
    )
    gen.add_argument(
        "--transient-rate", type=float, default=0.0, help="share failing transiently 0..1"
    )
    gen.add_argument(
        "--max-transient-failures", type=int, default=2, help="transient failures each (1..N)"
    )
    gen.add_argument("--image-bytes", type=int, help="approximate JPEG size (default ~25 KB)")
    gen.add_argument("--seed", type=int, help="vary the generated data")
    gen.add_argument(
        "--output-dir", type=Path, help="write execution-<id>.json files instead of ingesting"
    )
    trigger = commands.add_parser(
        "n8n-trigger", help="install/uninstall the NOTIFY trigger in n8n's database"
    )
    trigger.add_argument("action", choices=("install", "uninstall", "status"))
    args = parser.parse_args(argv)
    if args.command == "generate":
        if args.rate <= 0:
            parser.error("--rate must be > 0")
        if args.count < 0:
            parser.error("--count must be >= 0")
        if not 1 <= args.cameras <= len(CAMERAS):
            parser.error(f"--cameras must be 1..{len(CAMERAS)}")
        for name in ("failure_rate", "transient_rate"):
            if not 0 <= getattr(args, name) <= 1:
                parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
        if args.start_id is not None and args.start_id < 1:
            parser.error("--start-id must be >= 1")
        if args.max_delay_ms < 0 or args.max_transient_failures < 1:
            parser.error("--max-delay-ms must be >= 0 and --max-transient-failures >= 1")
    return args


async def worker(settings: EtlSettings) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    serve_metrics(settings.etl_metrics_port)
    await run_etl_service(settings, stop)
    return 0


async def ingest(settings: EtlSettings, files: list[Path]) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    if not await migrate_when_reachable(settings.database_url, stop=stop):
        return 1
    pool = await create_pool(settings.database_url, 1, 2)
    try:
        outcomes = await ingest_files(pool, files)
    finally:
        await pool.close()
    for outcome in outcomes:
        if outcome.error is None:
            print(f"ingested execution {outcome.execution_id} from {outcome.path}")
        else:
            print(f"error: {outcome.path}: {outcome.error}", file=sys.stderr)
    bad = sum(1 for o in outcomes if o.error is not None)
    if bad:
        print(f"{bad} of {len(outcomes)} files rejected", file=sys.stderr)
    return 1 if bad else 0


async def generate(settings: EtlSettings, args: argparse.Namespace) -> int:
    options = GeneratorOptions(
        rate=args.rate,
        count=args.count,
        start_id=args.start_id,
        cameras=args.cameras,
        max_delay_ms=args.max_delay_ms,
        failure_rate=args.failure_rate,
        transient_rate=args.transient_rate,
        max_transient_failures=args.max_transient_failures,
        image_bytes=args.image_bytes,
        seed=args.seed,
        output_dir=args.output_dir,
    )
    stop = asyncio.Event()
    stop_on_signals(stop)
    if options.output_dir is not None:
        options.output_dir.mkdir(parents=True, exist_ok=True)
        produced = await run_generator(None, options, stop)
    else:
        if not await migrate_when_reachable(settings.database_url, stop=stop):
            return 1
        pool = await create_pool(settings.database_url, 1, 2)
        try:
            produced = await run_generator(pool, options, stop)
        finally:
            await pool.close()
    if produced:
        print(f"generated {len(produced)} executions (ids {produced[0]}..{produced[-1]})")
    else:
        print("generated no executions")
    return 0


async def n8n_trigger(settings: EtlSettings, action: str) -> int:
    """Install (idempotent), uninstall or report the trigger in N8N_DATABASE_URL's database."""
    if settings.n8n_database_url is None:
        print("error: N8N_DATABASE_URL is not set", file=sys.stderr)
        return 2
    conn = await asyncpg.connect(settings.n8n_database_url)
    try:
        if action == "install":
            await n8n_trigger_sql.install(conn, settings.n8n_notify_channel)
            print(f"trigger installed; NOTIFY channel {settings.n8n_notify_channel}")
        elif action == "uninstall":
            await n8n_trigger_sql.uninstall(conn)
            print("trigger uninstalled")
        else:
            state = "installed" if await n8n_trigger_sql.installed(conn) else "not installed"
            print(f"trigger {state}")
    finally:
        await conn.close()
    return 0


def run(main: Coroutine[Any, Any, int]) -> int:
    # uvloop: cheaper socket I/O for the relay's publishes and the workers' queries.
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = EtlSettings()
    configure_logging(settings.log_level, "etl")
    if args.command == "worker":
        return run(worker(settings))
    if args.command == "ingest":
        return run(ingest(settings, args.files))
    if args.command == "n8n-trigger":
        return run(n8n_trigger(settings, args.action))
    return run(generate(settings, args))


if __name__ == "__main__":
    sys.exit(main())
