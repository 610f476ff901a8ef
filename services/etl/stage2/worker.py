"""Stage 2 worker: claims jobs (woken by NOTIFY, polling as a fallback), runs them
concurrently, keeps their leases alive, and records each outcome with its event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import asyncpg

from services.etl import metrics
from services.etl.errors import MalformedExecution, PermanentError, describe_error
from services.etl.stage2 import jobs
from services.etl.stage2.extraction import Stage2Config, run_stage2
from services.etl.stage2.images import ImageLimits
from services.etl.stage2.jobs import ClaimedJob, RetryPolicy, Stage2Result
from services.etl.stage2.n8n_extraction import N8nStage2Config, node_names
from shared.backoff import Backoff
from shared.db import DATABASE_ERRORS
from shared.settings import EtlSettings
from shared.waits import wait_any

log = logging.getLogger(__name__)

# How long a busy worker waits for more free slots before claiming what it has.
CLAIM_GATHER_S = 0.01


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int
    lease_s: float
    poll_interval_s: float
    shutdown_grace_s: float
    retry: RetryPolicy
    stage2: Stage2Config

    @classmethod
    def from_settings(cls, settings: EtlSettings) -> WorkerConfig:
        return cls(
            concurrency=settings.etl_concurrency,
            lease_s=settings.etl_lease_s,
            poll_interval_s=settings.etl_poll_interval_s,
            shutdown_grace_s=settings.etl_shutdown_grace_s,
            retry=RetryPolicy(
                settings.etl_max_attempts, settings.etl_retry_base_s, settings.etl_retry_max_s
            ),
            stage2=Stage2Config(
                settings.image_dir,
                ImageLimits(
                    settings.etl_max_image_bytes,
                    settings.etl_max_image_pixels,
                    settings.etl_thumbnail_px,
                ),
                n8n=N8nStage2Config(
                    names=node_names(settings),
                    binary_dir=settings.n8n_binary_data_dir,
                    webp_max_px=settings.etl_webp_max_px or None,
                ),
                demo_mode=settings.etl_demo_mode,
            ),
        )


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Stage2Worker:
    def __init__(
        self, pool: asyncpg.Pool, config: WorkerConfig, *, worker_id: str | None = None
    ) -> None:
        self.pool = pool
        self.config = config
        self.worker_id = worker_id or default_worker_id()
        self.wake = asyncio.Event()  # set by the NOTIFY listener
        self._active: dict[int, asyncio.Task[None]] = {}
        # While jobs run, claim again once this many slots are free (or after
        # CLAIM_GATHER_S); an idle worker claims at once, so a lone job never waits.
        self.claim_batch = max(1, config.concurrency // 2)
        self._slot_freed = asyncio.Event()

    # -- main loop ---------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        renewer = asyncio.create_task(self._renew_leases(stop))
        next_sweep = 0.0
        error_backoff = Backoff(0.1, 5.0)
        gather_until: float | None = None
        try:
            while not stop.is_set():
                self.wake.clear()
                self._slot_freed.clear()
                try:
                    if loop.time() >= next_sweep:
                        await self._expire_leases()
                        next_sweep = loop.time() + min(self.config.lease_s / 2, 5.0)
                    free = self.config.concurrency - len(self._active)
                    if free == 0:
                        await wait_any(
                            stop, self._slot_freed, max_wait_s=self.config.poll_interval_s
                        )
                        continue
                    if self._active and free < self.claim_batch:
                        # Busy: let a few more slots free up (briefly: a slow job
                        # must not hold back others) and claim them in one round
                        # trip, not one per finished job; each is event-loop time.
                        now = loop.time()
                        if gather_until is None:
                            gather_until = now + CLAIM_GATHER_S
                        if now < gather_until:
                            await wait_any(stop, self._slot_freed, max_wait_s=gather_until - now)
                            continue
                    gather_until = None
                    claimed = await jobs.claim_jobs(
                        self.pool, self.worker_id, free, self.config.lease_s
                    )
                    for job in claimed:
                        self._start(job)
                    if len(claimed) == free:
                        continue  # maybe more due: claim again as soon as a slot frees
                    timeout = self.config.poll_interval_s
                    due_in = await jobs.seconds_until_next_due(self.pool)
                    if due_in is not None:
                        # A retry is scheduled: wake when it is due (others may be claiming).
                        timeout = min(timeout, max(due_in, 0.05))
                    error_backoff.reset()
                    await wait_any(stop, self.wake, max_wait_s=timeout)
                except DATABASE_ERRORS as exc:
                    log.warning(
                        "stage2 worker: database unavailable, retrying",
                        extra={"error": describe_error(exc), "retry_in_s": error_backoff.delay_s},
                    )
                    await error_backoff.wait(stop)
        finally:
            await self._drain()
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    def _start(self, job: ClaimedJob) -> None:
        task = asyncio.create_task(self._process(job), name=f"stage2-{job.execution_id}")
        self._active[job.execution_id] = task
        metrics.JOBS_IN_FLIGHT.inc()

        def done(_: asyncio.Task[None]) -> None:
            self._active.pop(job.execution_id, None)
            metrics.JOBS_IN_FLIGHT.dec()
            self._slot_freed.set()

        task.add_done_callback(done)

    # -- one job -----------------------------------------------------------

    async def _process(self, job: ClaimedJob) -> None:
        started = time.monotonic()
        context = {"execution_id": job.execution_id, "attempt": job.attempts}
        log.info("stage2 job claimed", extra={**context, "worker_id": self.worker_id})
        try:
            try:
                loaded: ClaimedJob | None = job
                if job.raw is None:  # not fetched with the claim: look again
                    loaded = await jobs.load_raw(self.pool, job)
                if loaded is None or loaded.raw is None:
                    raise MalformedExecution("no raw execution is stored for this execution")
                result = await run_stage2(
                    job.execution_id,
                    loaded.raw,
                    job.attempts,
                    self.config.stage2,
                    source_format=loaded.source_format,
                    source_status=loaded.source_status,
                )
            except PermanentError as exc:
                await self._fail(job, describe_error(exc), started, permanent=True)
            except Exception as exc:
                # Anything unexpected (disk, database, a bug) may be temporary: retry.
                await self._fail(job, describe_error(exc), started, permanent=False)
            else:
                await self._complete(job, result, started)
        except Exception as exc:
            # The outcome could not be written; the lease will expire and the job is retried.
            log.error(
                "stage2: could not record the outcome; the job will be retried after its lease",
                extra={**context, "error": describe_error(exc)},
                exc_info=not isinstance(exc, DATABASE_ERRORS),
            )

    async def _complete(self, job: ClaimedJob, result: Stage2Result, started: float) -> None:
        elapsed = time.monotonic() - started
        event = await jobs.complete_job(self.pool, job, self.worker_id, result, elapsed * 1000)
        context = {"execution_id": job.execution_id, "attempt": job.attempts}
        if event is None:
            log.warning("stage2: lease lost before completion; result discarded", extra=context)
            return
        metrics.JOBS_COMPLETED.inc()
        metrics.PROCESSING_SECONDS.labels("completed").observe(elapsed)
        log.info(
            "stage2 completed",
            extra={**context, "processing_time_ms": event.processing_time_ms},
        )

    async def _fail(self, job: ClaimedJob, error: str, started: float, *, permanent: bool) -> None:
        async with self.pool.acquire() as conn:
            outcome = await jobs.fail_job(
                conn, job, self.worker_id, error, permanent=permanent, policy=self.config.retry
            )
        context = {"execution_id": job.execution_id, "attempt": job.attempts}
        if outcome is None:
            log.warning("stage2: lease lost before failure was recorded", extra=context)
            return
        event, final = outcome
        kind = "invalid_input" if permanent else "transient"
        metrics.JOBS_FAILED.labels(kind, str(final).lower()).inc()
        metrics.PROCESSING_SECONDS.labels("failed").observe(time.monotonic() - started)
        log.warning(
            "stage2 failed" + (" for good" if final else "; will retry"),
            extra={**context, "error": event.error, "retry_count": event.retry_count},
        )

    # -- leases ------------------------------------------------------------

    async def _renew_leases(self, stop: asyncio.Event) -> None:
        """Keep leases of running jobs alive, so only a dead worker's jobs expire."""
        while True:
            await asyncio.sleep(self.config.lease_s / 3)
            ids = list(self._active)
            if not ids:
                continue
            try:
                owned = await jobs.renew_leases(self.pool, self.worker_id, ids, self.config.lease_s)
            except DATABASE_ERRORS as exc:
                log.warning("stage2: could not renew leases", extra={"error": describe_error(exc)})
                continue
            for lost in set(ids) - owned:
                if lost in self._active:
                    log.warning("stage2: lease lost while processing", extra={"execution_id": lost})

    async def _expire_leases(self) -> None:
        async with self.pool.acquire() as conn:
            outcomes = await jobs.expire_leases(conn, self.config.retry)
        for event, final in outcomes:
            metrics.JOBS_FAILED.labels("lease_expired", str(final).lower()).inc()
            log.warning(
                "stage2: lease expired, job requeued" if not final else "stage2: lease expired",
                extra={"execution_id": event.execution_id, "error": event.error},
            )

    # -- shutdown ----------------------------------------------------------

    async def _drain(self) -> None:
        """Let in-flight jobs finish within the grace period; release the rest."""
        tasks = dict(self._active)
        if not tasks:
            return
        log.info("stage2: finishing in-flight jobs", extra={"in_flight": len(tasks)})
        _, pending = await asyncio.wait(tasks.values(), timeout=self.config.shutdown_grace_s)
        if not pending:
            return
        unfinished = [eid for eid, task in tasks.items() if task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            released = await jobs.release_jobs(self.pool, self.worker_id, unfinished)
        except DATABASE_ERRORS as exc:
            log.warning(
                "stage2: could not release jobs; their leases will expire",
                extra={"error": describe_error(exc), "execution_ids": unfinished},
            )
            return
        log.info("stage2: released unfinished jobs", extra={"released": released})
