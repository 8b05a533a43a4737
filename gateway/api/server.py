"""Serving the API with uvicorn inside the gateway's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator

import uvicorn

from gateway.api.app import create_app
from gateway.api.context import ApiContext

log = logging.getLogger("vigil.api")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the gateway owns SIGTERM/SIGINT and stops us."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_api(ctx: ApiContext, host: str, port: int, stop_event: asyncio.Event) -> None:
    """Serve until `stop_event` is set. Raises RuntimeError when the port cannot be bound
    (uvicorn would exit the process), so a supervisor can log it and retry."""
    app = create_app(ctx)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    server = _Server(config)

    async def run() -> None:
        try:
            await server.serve()
        except SystemExit:  # uvicorn's answer to a port in use; in a Task it would stop the loop
            raise RuntimeError(f"API could not start on {host}:{port}") from None

    task = asyncio.create_task(run(), name="api:uvicorn")
    stopper = asyncio.create_task(stop_event.wait(), name="api:stop")
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped it
            raise RuntimeError(f"API server on {host}:{port} stopped unexpectedly")
        server.should_exit = True
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        except TimeoutError:
            server.force_exit = True
            await task
    finally:
        stopper.cancel()
        if not task.done():
            server.should_exit = True
            server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(2):
                    await task
