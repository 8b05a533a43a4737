"""/docs (Swagger UI) in headless Chromium (Debian's) with every request to another host refused,
as on an air-gapped gateway: the page must render from the gateway's own files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Route, expect

from tests.api_rig import make_rig
from tests.api_server import served_api


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    rig = make_rig(tmp_path, users=False)
    async with served_api(rig.ctx) as base:
        yield base
    rig.close()


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
