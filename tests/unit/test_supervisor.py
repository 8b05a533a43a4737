from __future__ import annotations

import asyncio
import contextlib
import itertools

from gateway.core.supervisor import Supervisor, raise_if_cancelled


async def test_failing_task_is_restarted_and_others_keep_running() -> None:
    sup = Supervisor(min_backoff_s=0.01, max_backoff_s=0.05)
    attempts = 0
    ticks = 0
    recovered = asyncio.Event()

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise RuntimeError(f"boom {attempts}")
        recovered.set()
        await asyncio.Event().wait()

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    sup.spawn("flaky", flaky)
    sup.spawn("steady", steady)
    async with asyncio.timeout(5):
        await recovered.wait()
    before = ticks
    async with asyncio.timeout(5):  # the steady task never stopped
        while ticks <= before + 3:  # noqa: ASYNC110 (polling a counter with a deadline)
            await asyncio.sleep(0.001)
    assert sup.states["flaky"].restarts == 3
    assert sup.states["flaky"].last_error == "RuntimeError: boom 3"
    assert sup.states["steady"].restarts == 0 and sup.restarts == 3
    await sup.stop()
    assert not sup.states["steady"].running


async def test_backoff_grows_between_restarts() -> None:
    sup = Supervisor(min_backoff_s=0.02, max_backoff_s=0.08)
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def always_fails() -> None:
        times.append(loop.time())
        raise ValueError("no")

    sup.spawn("bad", always_fails)
    async with asyncio.timeout(5):
        while len(times) < 5:  # noqa: ASYNC110 (polling a plain list with a deadline)
            await asyncio.sleep(0.005)
    await sup.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[2]  # 0.02 → 0.08 (with ±20 % jitter)
    assert max(gaps) < 0.2


async def test_raise_if_cancelled_honours_a_swallowed_cancel() -> None:
    waiting = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                waiting.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # what wait_for does on Python 3.11 when the cancel races a result
            raise_if_cancelled()  # without it, the loop would wait again for ever

    task = asyncio.create_task(loop())
    await waiting.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done and task.cancelled()


async def test_raise_if_cancelled_is_quiet_after_a_timeout() -> None:
    """asyncio.timeout cancels and then uncancels: that is not a stop."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.001):
            await asyncio.Event().wait()
    raise_if_cancelled()
