"""Test the bounded inference pool: one worker, a short queue, 503 with Retry-After past it."""

import time

import anyio
import pytest

from service.errors import ServiceOverloadedError
from service.pool import InferencePool

from .conftest import FakeIdentifier, image_file


def test_one_worker_runs_one_inference_at_a_time_off_the_event_loop() -> None:
    identifier = FakeIdentifier(delay_s=0.05)
    pool = InferencePool(workers=1, queue_size=8, retry_after_s=1)
    photo = image_file()["image"][1]

    async def run_three() -> None:
        async with anyio.create_task_group() as task_group:
            for _ in range(3):
                task_group.start_soon(pool.run, lambda: identifier.identify(photo))

    anyio.run(run_three)

    assert identifier.most_running == 1
    assert identifier.ran_inside_event_loop == [False, False, False]


def test_two_workers_run_two_inferences_at_once() -> None:
    identifier = FakeIdentifier(delay_s=0.1)
    pool = InferencePool(workers=2, queue_size=8, retry_after_s=1)
    photo = image_file()["image"][1]

    async def run_four() -> None:
        async with anyio.create_task_group() as task_group:
            for _ in range(4):
                task_group.start_soon(pool.run, lambda: identifier.identify(photo))

    anyio.run(run_four)

    assert identifier.most_running == 2


def test_pool_refuses_at_once_when_full() -> None:
    pool = InferencePool(workers=1, queue_size=0, retry_after_s=3)

    async def run_two() -> float:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(pool.run, lambda: time.sleep(0.2))
            await anyio.sleep(0.05)
            started = time.perf_counter()
            with pytest.raises(ServiceOverloadedError) as refused:
                await pool.run(lambda: None)
            assert refused.value.retry_after_s == 3
            return time.perf_counter() - started

    assert anyio.run(run_two) < 0.05
    assert pool.rejected == 1


def test_drain_waits_for_work_in_flight() -> None:
    pool = InferencePool(workers=1, queue_size=2, retry_after_s=1)
    finished: list[str] = []

    def work() -> None:
        time.sleep(0.2)
        finished.append("done")

    async def start_then_drain() -> bool:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(pool.run, work)
            await anyio.sleep(0.02)
            is_empty = await pool.drain(timeout_s=5)
            assert finished == ["done"]
            return is_empty

    assert anyio.run(start_then_drain)


def test_drain_gives_up_after_its_timeout() -> None:
    pool = InferencePool(workers=1, queue_size=0, retry_after_s=1)

    async def start_then_drain() -> bool:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(pool.run, lambda: time.sleep(0.3))
            await anyio.sleep(0.02)
            return await pool.drain(timeout_s=0.05)

    assert anyio.run(start_then_drain) is False
