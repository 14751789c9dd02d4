"""Retention: keep the newest N rows per charger and/or the rows younger than D days.

Rows are deleted in small steps (at most ``batch`` rows, one short transaction each) with a
pause between steps, so ingestion batches interleave and never wait long. Frames and
events count alike. Several loggers may prune the same store: deletes are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from oye_logger.store import Store, StoreError
from oye_shared.settings import Settings

log = logging.getLogger(__name__)

DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep_count: int | None = None  # newest rows kept per charge point
    keep_days: float | None = None  # rows younger than this are kept

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        # OYE_LOG_RETENTION_COUNT=0 means "no count limit", like leaving it unset.
        return cls(settings.log_retention_count or None, settings.log_retention_days)

    @property
    def active(self) -> bool:
        return self.keep_count is not None or self.keep_days is not None


class Retention:
    """Applies a :class:`RetentionPolicy` to a store, once or periodically."""

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        *,
        interval: float = 60.0,
        batch: int = 5000,
        pause: float = 0.05,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy
        self.interval = interval
        self.batch = batch
        self.pause = pause
        self.clock = clock  # wall clock: frame times are wall-clock times
        self.deleted = 0

    async def run_once(self) -> int:
        """Delete everything the policy no longer keeps; return how many rows went."""
        deleted = 0
        if self.policy.keep_days is not None:
            cutoff_us = int(self.clock() * 1_000_000 - self.policy.keep_days * DAY_US)
            deleted += await self._steps(
                lambda: self.store.prune_older_than(cutoff_us, batch=self.batch)
            )
        if self.policy.keep_count is not None:
            keep = self.policy.keep_count
            for charge_point_id in await self.store.charge_points():
                deleted += await self._steps(
                    functools.partial(
                        self.store.prune_charge_point, charge_point_id, keep=keep, batch=self.batch
                    )
                )
        self.deleted += deleted
        if deleted:
            log.info("retention deleted %d log rows", deleted)
        return deleted

    async def _steps(self, step: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while (count := await step()) > 0:
            total += count
            await asyncio.sleep(self.pause)  # let ingestion batches in between steps
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Apply the policy every ``interval`` seconds until ``stop`` is set."""
        if not self.policy.active:
            return
        while not stop.is_set():
            try:
                await self.run_once()
            except StoreError as exc:
                log.warning("retention failed (%s); trying again in %.0f s", exc, self.interval)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await stop.wait()
