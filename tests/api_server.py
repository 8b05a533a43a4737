"""The API served for real (uvicorn on a free loopback port) inside an async test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from gateway.api import ApiContext, serve_api
from tests.services import free_port


async def wait_healthy(base: str, task: asyncio.Task[None], timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Until GET /health answers 200; fails early if the server task died."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as c:
        while True:
            try:
                if (await c.get(f"{base}/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "API did not come up"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def served_api(ctx: ApiContext) -> AsyncIterator[str]:
    """Yield the base URL of the running API; stop it cleanly afterwards."""
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_api(ctx, "127.0.0.1", port, stop))
    base = f"http://127.0.0.1:{port}"
    await wait_healthy(base, task)
    try:
        yield base
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task
