"""Supervised tasks: one failing collector, poller or sink is restarted, never stops the others."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("vigil.supervisor")


@dataclass
class TaskState:
    name: str
    restarts: int = 0
    last_error: str = ""
    running: bool = False


@dataclass
class Supervisor:
    min_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    healthy_after_s: float = 60.0
    """A task that ran this long before failing starts its backoff afresh."""
    states: dict[str, TaskState] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        state = self.states.setdefault(name, TaskState(name))
        task = asyncio.create_task(self._keep(state, factory), name=name)
        self._tasks[name] = task
        return task

    @property
    def restarts(self) -> int:
        return sum(s.restarts for s in self.states.values())

    async def _keep(self, state: TaskState, factory: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.min_backoff_s
        while True:
            started = loop.time()
            state.running = True
            try:
                await factory()
                log.info("task finished", extra={"task": state.name})
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                state.restarts += 1
                state.last_error = f"{type(e).__name__}: {e}"
                if loop.time() - started > self.healthy_after_s:
                    backoff = self.min_backoff_s
                delay = backoff * random.uniform(0.8, 1.2)
                log.exception(
                    "task failed; restarting",
                    extra={"task": state.name, "restarts": state.restarts, "retry_in_s": delay},
                )
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                state.running = False
            await asyncio.sleep(delay)

    async def stop(self, names: list[str] | None = None, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Cancel the named tasks (all by default) and wait for them to finish."""
        tasks = [t for n, t in self._tasks.items() if names is None or n in names]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


def raise_if_cancelled() -> None:
    """Honour a cancel() a library swallowed.

    On Python 3.11 `asyncio.wait_for` (pymodbus and aiomqtt await with it) returns the result when
    a cancel() races it, and the task runs on; the request still shows in `Task.cancelling()`.
    Loops that await such libraries call this once a turn, so stopping them always stops them.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
