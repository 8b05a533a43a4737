"""/docs (Swagger UI) in headless Chromium (Debian's) with every request to another host refused,
as on an air-gapped gateway: the page must render from the gateway's own files."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Route, async_playwright, expect

from gateway.api import serve_api
from gateway.api.testing import make_rig

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    rig = make_rig(tmp_path, users=False)
    port = _free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve_api(rig.ctx, "127.0.0.1", port, stop))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as c:
        deadline = time.monotonic() + 15
        while True:
            try:
                if (await c.get(f"{base}/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "API did not come up"
            await asyncio.sleep(0.05)
    yield base
    stop.set()
    await asyncio.wait_for(task, 10)
    rig.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


async def test_swagger_ui_renders_without_other_hosts(
    url: str, browser: Browser, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    foreign: list[str] = []
    errors: list[str] = []
    host = urlsplit(url).netloc

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == host or route.request.url.startswith("data:"):
            await route.continue_()
        else:
            foreign.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_local)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{url}/docs")
    title = page.locator(".swagger-ui .info .title")
    await expect(title).to_contain_text("vigil gateway API", timeout=15_000)
    cycles = page.locator('.opblock-summary-path[data-path="/api/v1/cycles"]')
    await expect(cycles).to_be_visible()
    await expect(page.locator("button.authorize")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "docs.png"))
    assert not foreign, foreign
    assert not errors, errors
