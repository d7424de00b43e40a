"""Audit rows leave through one writer task, in batches (one store call each): a flood of
refusals holds one store connection, never the whole pool (redis-py's is 100 per process). A row
the store cannot take is never lost silently: past ``max_queued`` rows waiting, or after
``give_up`` seconds of failed writes, rows are dropped, counted in ``bot_audit_rows_dropped``
and, once the store takes writes again, written as one summary row per outcome with its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections import Counter, deque

from loguru import logger

from bot.clock import Clock
from bot.errors import StoreUnavailable
from bot.metrics import Metrics
from bot.state import STORE_TIMEOUT, Attempt, Audit, bounded

MAX_QUEUED = 10_000  # rows waiting for the store, per process (about 3 MB)
BATCH = 500  # rows per store call
GIVE_UP = 60.0  # seconds a batch is retried before its rows are dropped (and counted)
DROPPED_AGENT = "(summary of audit rows the store could not take)"


class AuditWriter:
    """Queues attempts and writes them in batches from one task (started on the first row)."""

    def __init__(
        self,
        store: Audit,
        *,
        clock: Clock,
        metrics: Metrics,
        mono: Clock = time.monotonic,
        max_queued: int = MAX_QUEUED,
        batch: int = BATCH,
        give_up: float = GIVE_UP,
    ) -> None:
        self._store, self._clock, self._mono, self._metrics = store, clock, mono, metrics
        self._max, self._batch, self._give_up = max_queued, batch, give_up
        self._queue: deque[Attempt] = deque()
        self._dropped: Counter[tuple[str, int]] = Counter()  # (outcome, status) → rows
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = self._closing = False

    def put(self, attempt: Attempt) -> None:
        """Queue one row (dropped and counted when the queue is full)."""
        attempt = dataclasses.replace(attempt, uid=attempt.uid or secrets.token_hex(8))
        if len(self._queue) >= self._max:
            self._drop([attempt], f"{self._max} rows already wait for the store")
        else:
            self._queue.append(attempt)
        self._start()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    @property
    def queued(self) -> int:
        """Rows waiting for the store."""
        return len(self._queue)

    async def _run(self) -> None:
        while self._queue or self._dropped or not self._closing:
            if not self._queue and not self._dropped:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not await self._write_batch() and self._closing:
                return

    async def _write_batch(self) -> bool:
        """Write the oldest rows (and the summary of dropped ones); False when the store failed."""
        rows = [self._queue[i] for i in range(min(self._batch, len(self._queue)))]
        summaries = self._summaries()
        pause, began = 0.05, self._mono()
        while True:
            try:
                await bounded(self._store.record_attempts(rows + summaries), STORE_TIMEOUT)
                break
            except StoreUnavailable as exc:
                if not self._failing:
                    self._failing = True
                    logger.error("audit rows wait for the store ({} queued): {}", self.queued, exc)
                if self._mono() - began >= self._give_up:
                    for _ in rows:
                        self._queue.popleft()
                    self._drop(rows, f"the store failed for {self._give_up:.0f}s")
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
        for _ in rows:
            self._queue.popleft()
        for summary in summaries:
            self._dropped[(summary.outcome, summary.status)] -= summary.count
        self._dropped = +self._dropped  # keeps only positive counts
        if self._failing:
            self._failing = False
            logger.info("audit rows written again ({} queued)", self.queued)
        return True

    def _summaries(self) -> list[Attempt]:
        now = self._clock()
        return [  # one uid per summary and batch: a retried batch writes it once
            Attempt(now, outcome, user_agent=DROPPED_AGENT, status=status, count=n, uid=uid)
            for (outcome, status), n in self._dropped.items()
            for uid in [secrets.token_hex(8)]
        ]

    def _drop(self, rows: list[Attempt], why: str) -> None:
        if not self._dropped:
            logger.error("audit rows dropped ({}): counted in bot_audit_rows_dropped", why)
        for row in rows:
            self._dropped[(row.outcome, row.status)] += row.count
            self._metrics.audit_dropped.labels(row.outcome).inc(row.count)

    async def drain(self, seconds: float = 5.0) -> None:
        """At shutdown: write what waits, for at most ``seconds``; what is left is logged."""
        self._closing, self._give_up = True, min(self._give_up, seconds)
        if self._queue or self._dropped:
            self._start()
        if self._task is not None:
            self._wake.set()
            await asyncio.wait({self._task}, timeout=seconds)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        lost = len(self._queue) + sum(self._dropped.values())
        if lost:
            self._drop(list(self._queue), "shutting down")
            self._queue.clear()
            logger.error("audit rows lost at shutdown: {} (the store did not take them)", lost)
