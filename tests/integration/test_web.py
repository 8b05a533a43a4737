"""The live page in headless Chromium (Debian's), against the real API served by serve_api in
this event loop: log in, see a device and an active alert raised by the real rules engine,
acknowledge it, and find it acknowledged in the store with an audit row."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from alert_rules import AlertState
from gateway.records.users import Role
from tests.api_rig import PASSWORDS, Rig, coldchain, make_rig
from tests.api_server import served_api
from tests.services import apoll

S = 1_000_000_000


@dataclass
class Live:
    url: str
    rig: Rig
    alert_id: int


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    rig = make_rig(tmp_path)
    now = time.time_ns()
    rig.feed(
        [
            coldchain(5.0, now - 60 * S, device="logger-1"),
            coldchain(4.5, now - 60 * S, device="logger-2", asset="fridge-2"),
        ]
    )
    events = rig.feed([coldchain(12.5, now, device="logger-1")])
    alert_id = next(e.alert.id for e in events if e.alert.rule == "vaccine_2_8.high")
    rig.ctx.shipments.start("truck-3", "vaccine_2_8", "operator1", shipment_id="SHP-WEB-1")
    async with served_api(rig.ctx) as url:
        yield Live(url, rig, alert_id)
    rig.close()


async def _login(page, url: str, role: Role) -> None:  # type: ignore[no-untyped-def]
    await page.goto(url)
    await page.fill("#username", f"{role.value}1")
    await page.fill("#password", PASSWORDS[role])
    await page.click("#login-button")
    await expect(page.locator("#live-view")).to_be_visible(timeout=10_000)


async def test_operator_logs_in_and_acknowledges_an_alert(
    live: Live, browser: Browser, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await _login(page, live.url, Role.OPERATOR)
    await expect(page.locator("#whoami")).to_have_text("Otto Operator (operator)")

    device = page.locator('#devices tr[data-device="logger-1"]')
    await expect(device).to_be_visible(timeout=10_000)
    await expect(device).to_contain_text("alarm")
    await expect(device).to_contain_text("temp_c=12.5")
    await expect(page.locator('#devices tr[data-device="logger-2"]')).to_contain_text("ok")
    await expect(page.locator('#shipments tr[data-shipment="SHP-WEB-1"]')).to_contain_text("active")

    row = page.locator(f'#alerts tr[data-alert-id="{live.alert_id}"]')
    await expect(row).to_contain_text("unacknowledged")
    await expect(row).to_contain_text("vaccine_2_8.high")
    await page.screenshot(path=str(tmp_path / "live-before-ack.png"), full_page=True)
    await row.locator("button.ack").click()

    store = live.rig.ctx.alert_store
    assert store is not None
    await apoll(
        lambda: store.get_alert(live.alert_id).state is AlertState.ACKNOWLEDGED,  # type: ignore[union-attr]
        timeout=10,
        what="the alert to be acknowledged",
    )
    await expect(row.locator(".state")).to_have_text("acknowledged", timeout=10_000)
    await expect(row.locator("button.ack")).to_have_count(0)
    await page.screenshot(path=str(tmp_path / "live-after-ack.png"), full_page=True)

    acked = store.get_alert(live.alert_id)
    assert acked is not None and acked.acked_by == "operator1"
    audit = live.rig.ctx.audit.rows(action="alert.ack", entity_id=str(live.alert_id))
    assert len(audit) == 1 and audit[0].actor == "operator1"
    assert audit[0].old_value["state"] == "unacknowledged"
    assert audit[0].new_value["state"] == "acknowledged"
    assert live.rig.ctx.audit.rows(action="login", actor="operator1")
    assert live.rig.ctx.audit.verify().ok
    assert (tmp_path / "live-after-ack.png").stat().st_size > 10_000
    assert not errors, errors


async def test_viewer_sees_alerts_without_an_acknowledge_button(
    live: Live, browser: Browser
) -> None:
    page = await browser.new_page()
    await _login(page, live.url, Role.VIEWER)
    row = page.locator(f'#alerts tr[data-alert-id="{live.alert_id}"]')
    await expect(row).to_contain_text("unacknowledged", timeout=10_000)
    await expect(row.locator("button.ack")).to_have_count(0)


async def test_wrong_password_is_refused_on_the_page(live: Live, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(live.url)
    await page.fill("#username", "operator1")
    await page.fill("#password", "not the password")
    await page.click("#login-button")
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    await expect(page.locator("#live-view")).to_be_hidden()
    assert live.rig.ctx.audit.rows(action="login.failed", actor="operator1")
