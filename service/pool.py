"""Run inference off the event loop in a bounded pool, refusing work when the queue is full."""

import asyncio
import contextvars
import ctypes
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

from service.errors import ServiceOverloadedError

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")
_DRAIN_POLL_S = 0.05


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    trim: Callable[[int], int] | None = getattr(libc, "malloc_trim", None)
    return trim


# glibc keeps the memory of a freed photo or image pyramid for reuse, and after a large free
# it raises the size above which it maps memory straight from the system; so photos of many
# sizes leave holes that it never gives back. Handing free memory back after each inference
# kept `benchmarks/load.py`'s server flat where it otherwise grew by a gigabyte in two minutes.
_MALLOC_TRIM = _load_malloc_trim()


def _then_release_memory(work: Callable[[], ResultT]) -> ResultT:
    try:
        return work()
    finally:
        if _MALLOC_TRIM is not None:
            _MALLOC_TRIM(0)


class InferencePool:
    """At most `workers` inferences run at once in threads and at most `queue_size` wait.

    A request beyond that is refused at once with `ServiceOverloadedError` (503 and
    Retry-After) instead of joining a backlog that only grows while clients time out.

    Inference runs on `workers` threads of its own, always the same ones, not on whichever
    thread of a shared pool is free: torch's OpenMP keeps a team of threads per calling thread,
    and the allocator an arena per thread, so a changing caller multiplies both. Measured with
    `benchmarks/load.py` (8 clients), a shared pool used more memory the longer it ran.
    """

    def __init__(self, *, workers: int, queue_size: int, retry_after_s: int) -> None:
        """Size the pool; `retry_after_s` is what refused clients are told to wait."""
        self.workers = workers
        self.queue_size = queue_size
        self.retry_after_s = retry_after_s
        self._limiter: anyio.CapacityLimiter | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="memberlens-inference"
        )
        self._admitted = 0
        self.rejected = 0

    @property
    def running(self) -> int:
        """Count the inferences running now."""
        return int(self._limiter.borrowed_tokens) if self._limiter is not None else 0

    @property
    def waiting(self) -> int:
        """Count the admitted inferences that wait for a worker."""
        return self._admitted - self.running

    def check_capacity(self) -> None:
        """Refuse early, before an upload is read, when a new inference could not be admitted.

        Raises:
            ServiceOverloadedError: every worker is busy and the queue is full.
        """
        if self._admitted >= self.workers + self.queue_size:
            self.rejected += 1
            logger.warning(
                "inference queue full, request refused",
                extra={"running": self.running, "waiting": self.waiting},
            )
            raise ServiceOverloadedError(self.retry_after_s)

    async def run(self, work: Callable[[], ResultT]) -> ResultT:
        """Run `work` in a worker thread and return its result.

        Raises:
            ServiceOverloadedError: every worker is busy and the queue is full.
        """
        self.check_capacity()
        self._admitted += 1
        try:
            async with self._get_limiter():
                # The request's context (its request id for the logs) goes along to the thread.
                future = self._executor.submit(
                    contextvars.copy_context().run, _then_release_memory, work
                )
                # A client that goes away does not cancel the inference: the slot stays taken
                # until it ends, so the count of admitted work stays true.
                with anyio.CancelScope(shield=True):
                    result = await asyncio.wrap_future(future)
            return result
        finally:
            self._admitted -= 1

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no inference is admitted, at most `timeout_s`; tell whether it emptied."""
        with anyio.move_on_after(timeout_s):
            while self._admitted > 0:
                await anyio.sleep(_DRAIN_POLL_S)
        if self._admitted > 0:
            logger.warning(
                "shutdown with inferences still running", extra={"admitted": self._admitted}
            )
            return False
        return True

    def close(self) -> None:
        """Let the inference threads end once the work given to them is done."""
        self._executor.shutdown(wait=False)

    def _get_limiter(self) -> anyio.CapacityLimiter:
        # Created on first use: a limiter belongs to the event loop that runs the app.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        return self._limiter
