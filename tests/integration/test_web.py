"""The web console in headless Chromium (Debian's), against the real API served by serve_api in
this event loop, with alerts raised by the real rules engine:

* QA: log in, see the trend with the excursion band, shelve an alert, close another with an
  electronic signature, review and approve a shipment with a signature, download its PDF;
* a regulator (viewer): sees alerts, devices, shipments and the audit trail, no control that
  changes anything, and the API refuses a mutation sent with the same token;
* the page in zh-CN shows no untranslated text; units and labels on the devices table.

Screenshots go to the test's tmp directory, never into the repository.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from alert_rules import AlertState
from gateway.records.users import Role
from tests.api_rig import PASSWORDS, Rig, coldchain, make_rig
from tests.api_server import served_api
from tests.services import apoll

S = 1_000_000_000
MIN = 60 * S
PRODUCT = "新冠病毒灭活疫苗（Vero细胞）"
ORIGIN = "上海市浦东新区"
DESTINATION = "北京市朝阳区"


@dataclass
class Console:
    url: str
    rig: Rig
    rtn_alert: int
    """Returned to normal, unacknowledged: QA closes it with a signature."""
    active_alert: int
    """Still active: QA shelves it."""
    shipment: str


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    rig = make_rig(tmp_path)
    now = time.time_ns()
    start = now - 40 * MIN
    # fridge-1: an excursion 20-15 min ago, back to normal since
    temps = [12.5 if 20 <= 40 - i < 26 else 5.0 for i in range(40)]
    events: list[Any] = []
    for i, t in enumerate(temps):
        events += rig.feed([coldchain(t, start + i * MIN, device="logger-1", rh_pct=45.0)])
    rtn = next(e.alert.id for e in events if e.alert.rule == "vaccine_2_8.high")
    # fridge-2: too warm right now
    rig.feed([coldchain(4.0, now - 2 * MIN, device="logger-2", asset="fridge-2")])
    events = rig.feed([coldchain(11.0, now - MIN, device="logger-2", asset="fridge-2")])
    active = next(e.alert.id for e in events if e.alert.rule == "vaccine_2_8.high")
    # a truck's shipment with an excursion, stopped: ready for QA's review
    s = rig.ctx.shipments.start(
        "truck-3",
        "vaccine_2_8",
        "operator1",
        shipment_id="SHP-WEB-1",
        product=PRODUCT,
        origin=ORIGIN,
        destination=DESTINATION,
        now_ns=start,
    )
    for i in range(36):
        t = 9.5 if 10 <= i < 14 else 5.0
        rig.feed([coldchain(t, start + i * MIN + S, site="road", asset="truck-3", device="lg-7")])
    rig.ctx.shipments.stop(s.id, "operator1", now_ns=start + 36 * MIN + 2 * S)
    async with served_api(rig.ctx) as url:
        yield Console(url, rig, rtn, active, s.id)
    rig.close()


PAGE_ERRORS: dict[int, list[str]] = {}
"""Script errors per page (checked at the end of each test)."""


async def _login(browser: Browser, url: str, role: Role, locale: str = "en-US") -> Page:
    context = await browser.new_context(
        locale=locale, viewport={"width": 1400, "height": 1000}, accept_downloads=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    PAGE_ERRORS[id(page)] = errors
    await page.goto(url)
    await page.fill("#username", f"{role.value}1")
    await page.fill("#password", PASSWORDS[role])
    await page.click("#login-button")
    await expect(page.locator("#live-view")).to_be_visible(timeout=10_000)
    return page


async def test_qa_reviews_shelves_closes_approves_and_downloads(
    console: Console, browser: Browser, tmp_path: Path
) -> None:
    ctx = console.rig.ctx
    page = await _login(browser, console.url, Role.QA)
    await expect(page.locator("#whoami")).to_have_text("Quinn Quality (qa)")

    # the trend of fridge-1 with the excursion's alert shaded from its start to its end
    await page.click('#tabs button[data-tab="devices"]')
    row = page.locator('#devices tr[data-device="logger-1"]')
    await expect(row.locator('.value[data-field="temp_c"]')).to_have_text("Temperature 5 °C")
    await expect(row.locator('.value[data-field="rh_pct"]')).to_have_text(
        "Relative humidity 45 %RH"
    )
    await row.locator("button.trend").click()
    chart = page.locator('#trend-charts .chart[data-device="logger-1"][data-field="temp_c"]')
    await expect(chart.locator("canvas")).to_have_count(1, timeout=10_000)
    band = chart.locator(f'li.band[data-alert-id="{console.rtn_alert}"]')
    await expect(band).to_contain_text("vaccine_2_8.high")
    await expect(chart.locator(".u-legend")).to_contain_text("limit > 8 °C")
    await page.screenshot(path=str(tmp_path / "trend.png"), full_page=True)

    # shelve the active alert, with a reason and a time
    await page.click('#tabs button[data-tab="alerts"]')
    active = page.locator(f'#alerts tr[data-alert-id="{console.active_alert}"]')
    await expect(active.locator(".state")).to_have_text("unacknowledged")
    await active.locator("button.shelve").click()
    await page.fill("#shelve-reason", "compressor serviced, reading settles")
    await page.fill("#shelve-minutes", "30")
    await page.click("#shelve-submit")
    store = ctx.alert_store
    assert store is not None
    await apoll(
        lambda: ctx.audit.rows(action="alert.shelve", entity_id=str(console.active_alert)),
        timeout=10,
        what="the shelving in the audit trail",
    )
    assert store.get_alert(console.active_alert).state is AlertState.SHELVED  # type: ignore[union-attr]
    await expect(active.locator(".state")).to_have_text("shelved", timeout=10_000)
    await expect(active.locator("button.unshelve")).to_have_count(1)

    # close the returned-to-normal alert with an electronic signature
    rtn = page.locator(f'#alerts tr[data-alert-id="{console.rtn_alert}"]')
    await expect(rtn).to_contain_text("returned to normal")
    await rtn.locator("button.close").click()
    await page.fill("#sign-reason", "door left open during loading; product within MKT")
    await page.select_option("#sign-meaning", "excursion assessed, product released")
    await page.fill("#sign-password", "wrong password 1")
    await page.click("#sign-submit")
    await expect(page.locator("#sign-error")).to_contain_text("signature refused")
    await page.fill("#sign-password", PASSWORDS[Role.QA])
    await page.click("#sign-submit")
    await apoll(
        lambda: ctx.audit.rows(action="alert.close", entity_id=str(console.rtn_alert)),
        timeout=10,
        what="the signed closing in the audit trail",
    )
    assert store.get_alert(console.rtn_alert).closed_by == "qa1"  # type: ignore[union-attr]
    closed = ctx.audit.rows(action="alert.close", entity_id=str(console.rtn_alert))
    assert closed[0].signature is not None
    assert closed[0].signature["meaning"] == "excursion assessed, product released"
    assert closed[0].signature["name"] == "Quinn Quality"
    history = page.locator(f'#history tr[data-alert-id="{console.rtn_alert}"]')
    await page.click('#history-form button[type="submit"]')
    await history.locator("button.trail").click()
    await expect(page.locator('#alert-trail tr[data-kind="closed"] .signature')).to_contain_text(
        "excursion assessed, product released"
    )

    # review the shipment: verdict, excursion; approve it with a signature
    await page.click('#tabs button[data-tab="shipments"]')
    ship = page.locator(f'#shipments tr[data-shipment="{console.shipment}"]')
    await expect(ship).to_contain_text(PRODUCT)
    await expect(ship.locator(".status")).to_have_text("stopped")
    await ship.locator("button.review").click()
    await expect(page.locator("#review-verdict")).to_contain_text("Temperature excursion")
    await expect(page.locator("#review-excursions tbody tr")).to_have_count(1)
    await expect(page.locator("#review-excursions tbody tr")).to_contain_text("9.5")
    await expect(page.locator("#review-charts li.band")).to_have_count(1)
    await page.click("#approve-button")
    await page.select_option("#sign-meaning", "excursion assessed, product released")
    await page.fill("#sign-password", PASSWORDS[Role.QA])
    await page.click("#sign-submit")
    await expect(ship.locator(".status")).to_have_text("approved", timeout=10_000)
    approved = ctx.shipments.require(console.shipment)
    assert approved.status == "approved" and approved.approved_by == "qa1"
    assert approved.approval_meaning == "excursion assessed, product released"
    await expect(page.locator("#review-signature")).to_contain_text("Quinn Quality")
    await expect(page.locator("#approve-button")).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

    # the PDF: the verdict, the approval, the Chinese product and places as entered
    async with page.expect_download() as info:
        await ship.locator("button.report-pdf").click()
    pdf = Path(await (await info.value).path())
    done = await asyncio.to_thread(
        subprocess.run, ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True
    )
    text = done.stdout.decode("utf-8")
    assert "Verdict: Temperature excursion" in text
    assert PRODUCT in text and ORIGIN in text and DESTINATION in text
    assert "Quinn Quality (qa1)" in text and "approval of this report" in text
    assert "page 1 of" in text
    assert ctx.audit.verify().ok
    assert PAGE_ERRORS[id(page)] == []


async def test_regulator_sees_everything_and_changes_nothing(
    console: Console, browser: Browser
) -> None:
    page = await _login(browser, console.url, Role.VIEWER)
    rows = page.locator("#alerts tbody tr")
    await expect(
        page.locator(f'#alerts tr[data-alert-id="{console.active_alert}"]')
    ).to_be_visible()
    mutating = (
        "button.ack, button.shelve, button.unshelve, button.close, button.stop,"
        " #lot-release:visible, #lot-quarantine:visible, #lot-reject:visible"
    )
    await expect(rows.locator("button.trail").first).to_be_visible()
    assert await page.locator(mutating).count() == 0
    for tab in ("trends", "devices", "cycles", "shipments", "lots", "audit"):
        await page.click(f'#tabs button[data-tab="{tab}"]')
        await expect(page.locator(f"#tab-{tab}")).to_be_visible()
        assert await page.locator(mutating).count() == 0, tab
    await expect(page.locator("#audit-verify")).to_contain_text("Audit chain verified")
    await expect(page.locator("#audit tbody tr").first).to_be_visible()
    await page.click('#tabs button[data-tab="shipments"]')
    await expect(page.locator("#start-form")).to_be_hidden()
    await page.locator(f'#shipments tr[data-shipment="{console.shipment}"] button.review').click()
    await expect(page.locator("#review-verdict")).to_contain_text("Temperature excursion")
    await expect(page.locator("#approve-button")).to_be_hidden()
    await expect(page.locator("#reject-button")).to_be_hidden()

    # the API refuses what the page does not offer, with the regulator's own token
    statuses = await page.evaluate(
        """async ([alert, shipment]) => {
            const h = {"Authorization": "Bearer " + sessionStorage.getItem("vigil.token"),
                       "Content-Type": "application/json"};
            const post = (p, b) => fetch(p, {method: "POST", headers: h, body: JSON.stringify(b)})
                .then((r) => r.status);
            return [
              await post(`/api/v1/alerts/${alert}/ack`, {}),
              await post(`/api/v1/alerts/${alert}/shelve`, {reason: "x"}),
              await post(`/api/v1/shipments/${shipment}/approve`,
                         {password: "viewer-password-1", meaning: "reviewed and approved"}),
              await post("/api/v1/shipments", {asset: "truck-9", profile: "vaccine_2_8"}),
            ];
        }""",
        [console.active_alert, console.shipment],
    )
    assert statuses == [403, 403, 403, 403]
    store = console.rig.ctx.alert_store
    assert store is not None
    alert = store.get_alert(console.active_alert)
    assert alert is not None and alert.state is AlertState.UNACKNOWLEDGED
    assert PAGE_ERRORS[id(page)] == []


async def test_console_in_chinese_has_no_untranslated_text(
    console: Console, browser: Browser, tmp_path: Path
) -> None:
    page = await _login(browser, console.url, Role.QA, locale="zh-CN")
    await expect(page.locator("#whoami")).to_have_text("Quinn Quality (质量保证)")
    await expect(page.locator('#tabs button[data-tab="audit"]')).to_have_text("审计追踪")
    row = page.locator(f'#alerts tr[data-alert-id="{console.active_alert}"]')
    await expect(row.locator(".state")).to_have_text("未确认")
    await expect(row.locator("button.ack")).to_have_text("确认")
    await expect(row.locator(".message")).to_contain_text("UTC+08:00")  # Beijing time
    await expect(row.locator(".message")).to_contain_text("自")
    for tab in ("trends", "devices", "cycles", "shipments", "audit", "alerts"):
        await page.click(f'#tabs button[data-tab="{tab}"]')
        await expect(page.locator(f"#tab-{tab}")).to_be_visible()
    await page.click('#tabs button[data-tab="shipments"]')
    await page.locator(f'#shipments tr[data-shipment="{console.shipment}"] button.review').click()
    await expect(page.locator("#review-verdict")).to_contain_text("温度超标")
    await page.click("#approve-button")
    await expect(page.locator("#sign-meaning")).to_contain_text("已审核并批准")
    await page.screenshot(path=str(tmp_path / "zh-review.png"), full_page=True)
    await page.click("#sign-dialog button.cancel")
    await page.click('#tabs button[data-tab="devices"]')
    await expect(
        page.locator('#devices tr[data-device="logger-1"] .value[data-field="temp_c"]')
    ).to_have_text("温度 5 °C")
    missing = await page.evaluate("Array.from(window.vigilMissing)")
    assert missing == []
    untranslated = await page.evaluate(
        """Array.from(document.querySelectorAll('[data-i18n]'))
            .filter((e) => /[A-Za-z]/.test(e.dataset.i18n)
                           && e.textContent.startsWith(e.dataset.i18n))
            .map((e) => e.dataset.i18n)"""
    )
    assert untranslated == []
    # the choice is the user's: stored, and the API answers in it from now on
    await page.select_option("#lang-select", "en")
    await expect(page.locator('#tabs button[data-tab="audit"]')).to_have_text("Audit trail")
    user = console.rig.ctx.users.get("qa1")
    assert user is not None and user.language == "en"
    assert PAGE_ERRORS[id(page)] == []


async def test_favicon_vendored_chart_library_and_catalogs(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.url) as c:
        icon = await c.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
        for path in ("/web/vendor/uplot/uPlot.iife.min.js", "/web/vendor/uplot/LICENSE"):
            assert (await c.get(path)).status_code == 200, path
        zh = (await c.get("/i18n/zh-CN.json")).json()
        assert zh["language"] == "zh-CN" and zh["messages"]["Audit trail"] == "审计追踪"
        assert (await c.get("/i18n/zh.json")).json()["language"] == "zh-CN"
        assert (await c.get("/i18n/fr.json")).status_code == 404


async def test_wrong_password_is_refused_on_the_page(console: Console, browser: Browser) -> None:
    page = await (await browser.new_context(locale="en-US")).new_page()
    await page.goto(console.url)
    await page.fill("#username", "operator1")
    await page.fill("#password", "not the password")
    await page.click("#login-button")
    await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    await expect(page.locator("#live-view")).to_be_hidden()
    assert console.rig.ctx.audit.rows(action="login.failed", actor="operator1")
