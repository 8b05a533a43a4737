"""serve_api: uvicorn in the gateway's own event loop, stopped by the stop event; a port that
cannot be bound is an exception for the supervisor, not the end of the process."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx

from gateway.api import serve_api
from tests.api_rig import make_rig
from tests.api_server import wait_healthy


async def test_serves_until_stopped(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, users=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(serve_api(rig.ctx, "127.0.0.1", port, stop))
    await wait_healthy(f"http://127.0.0.1:{port}", task)
    async with httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{port}/health")
        assert r.json()["status"] == "ok"
        assert (await c.get(f"http://127.0.0.1:{port}/api/v1/alerts")).status_code == 401
    stop.set()
    async with asyncio.timeout(10):
        await task
    with socket.socket() as s:  # the port was released
        s.bind(("127.0.0.1", port))
    rig.close()


async def test_port_in_use_raises_and_the_loop_lives_on(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, users=False)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        try:
            async with asyncio.timeout(10):
                await serve_api(rig.ctx, "127.0.0.1", port, asyncio.Event())
        except RuntimeError as e:
            assert f"127.0.0.1:{port}" in str(e)
        else:
            raise AssertionError("serve_api returned on a port in use")
    await asyncio.sleep(0)  # still running
    rig.close()


async def test_cancelling_the_task_releases_the_port(tmp_path: Path) -> None:
    """The supervisor stops tasks by cancelling them."""
    rig = make_rig(tmp_path, users=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    task = asyncio.create_task(serve_api(rig.ctx, "127.0.0.1", port, asyncio.Event()))
    await wait_healthy(f"http://127.0.0.1:{port}", task)
    task.cancel()
    try:
        async with asyncio.timeout(10):
            await task
    except asyncio.CancelledError:
        pass
    assert task.done()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    rig.close()
