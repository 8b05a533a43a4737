"""The console's lots view in headless Chromium (Debian's), against the real API served by
serve_api in this event loop, in zh-CN and in English: a lot taken through a storage leg and a
truck (an hour at 10 °C) through the API; QA opens its chain, sees each leg with its figures and
the stability budget with what remains, releases the lot with an electronic signature (the audit
row `lot.release` carries it, the console shows the decision), and sees "needs review" once a
late upload changed the evidence.

Screenshots go to the test's tmp directory, never into the repository.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from gateway.records.users import Role
from tests.api_rig import PASSWORDS, Rig, coldchain, make_rig
from tests.api_server import served_api
from tests.services import apoll

S = 1_000_000_000
MIN = 60 * S
HOUR = 3600 * S
LOT = "LOT-WEB-7"
PRODUCT = "重组乙型肝炎疫苗（汉逊酵母）"


@dataclass
class Lots:
    url: str
    rig: Rig
    truck_start_ns: int


def iso(ns: int) -> str:
    """Exact to the microsecond (a float of seconds is not)."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).isoformat()


@pytest.fixture
async def lots(tmp_path: Path) -> AsyncIterator[Lots]:
    rig = make_rig(tmp_path, rules={"bindings": []})  # only legs bind the lot's rules
    now = time.time_ns()
    t0 = now - 4 * HOUR
    t1 = t0 + 2 * HOUR
    async with served_api(rig.ctx) as url, httpx.AsyncClient(base_url=url) as c:
        op = rig.headers(Role.OPERATOR)
        lot = {"id": LOT, "product": PRODUCT, "profile": "vaccine_2_8", "expiry": "2027-09-30"}
        assert (await c.post("/api/v1/lots", headers=op, json=lot)).status_code == 201
        storage = {
            "lots": [LOT],
            "kind": "storage",
            "site": "wh1",
            "asset": "room-2",
            "started_at": iso(t0),
            "reason": "received at the warehouse",
        }
        r = await c.post("/api/v1/legs", headers=op, json=storage)
        assert r.status_code == 201, r.text
        rig.feed(
            [coldchain(5.0, t0 + i * 5 * MIN, asset="room-2", device="lg-r") for i in range(24)]
        )
        truck = {
            "lots": [LOT],
            "kind": "transport",
            "asset": "truck-4",
            "id": "SHP-WEB-7",
            "started_at": iso(t1),
            "reason": "departure time from the waybill",
        }
        r = await c.post("/api/v1/legs", headers=op, json=truck)
        assert r.status_code == 201, r.text
        # an hour at 10 °C, every minute (GSP: every 2 min at most while out of range)
        rig.feed(
            [
                coldchain(
                    10.0 if i < 60 else 5.0,
                    t1 + i * MIN,
                    site="road",
                    asset="truck-4",
                    device="lg-4",
                )
                for i in range(120)
            ]
        )
        r = await c.post(
            "/api/v1/legs/SHP-WEB-7/close",
            headers=op,
            json={"at": iso(t1 + 2 * HOUR), "reason": "arrived, proof of delivery"},
        )
        assert r.status_code == 200, r.text
        yield Lots(url, rig, t1)
    rig.close()


# locale → the built-in 72 h in 8-25 °C: allowed, consumed (an hour), remaining; texts shown
CASES = {
    "en-US": (("3d", "1h", "2d23h"), "storage", "transport", "released", "Needs review"),
    "zh-CN": (("3天", "1小时", "2天23小时"), "储存", "运输", "已放行", "需重新审核"),
}


@pytest.mark.parametrize("locale", list(CASES))
async def test_qa_sees_the_chain_and_the_remaining_budget_and_releases_the_lot(
    lots: Lots, browser: Browser, tmp_path: Path, locale: str
) -> None:
    budget, storage, transport, released, needs_review = CASES[locale]
    ctx = lots.rig.ctx
    context = await browser.new_context(locale=locale, viewport={"width": 1500, "height": 1000})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(lots.url)
    await page.fill("#username", "qa1")
    await page.fill("#password", PASSWORDS[Role.QA])
    await page.click("#login-button")
    await expect(page.locator("#live-view")).to_be_visible(timeout=10_000)

    await page.click('#tabs button[data-tab="lots"]')
    row = page.locator(f'#lots tr[data-lot="{LOT}"]')
    await expect(row).to_contain_text(PRODUCT)
    await expect(row).to_contain_text("2027-09-30")
    await row.locator("button.chain").click()
    legs = page.locator("#chain-legs tbody tr")
    await expect(legs).to_have_count(2)
    await expect(legs.nth(0)).to_contain_text(storage)
    await expect(legs.nth(1)).to_contain_text(transport)
    await expect(legs.nth(1).locator("td").nth(7)).to_have_text("10")  # its maximum °C
    await expect(legs.nth(1)).to_contain_text("> 8 °C: " + budget[1])  # time out of range
    header = page.locator("#chain-legs thead")
    await expect(header).to_contain_text("(UTC+08:00)")  # the zone of every time shown
    warm = page.locator('#chain-budget tr[data-band="warm"]')
    cells = warm.locator("td")
    await expect(cells.nth(2)).to_have_text(budget[0])
    await expect(cells.nth(3)).to_have_text(budget[1])
    await expect(warm.locator(".remaining")).to_have_text(budget[2])
    assert await page.locator("#lot-release").is_visible()
    await page.screenshot(path=str(tmp_path / f"lots-{locale}.png"), full_page=True)

    # release, signed: password again, meaning, comment
    await page.click("#lot-release")
    await page.fill("#sign-reason", "hour at 10 °C within the stability budget")
    await page.fill("#sign-password", PASSWORDS[Role.QA])
    await page.click("#sign-submit")
    [row_audit] = await apoll(
        lambda: ctx.audit.rows(action="lot.release", entity_id=LOT),
        timeout=10,
        what="the signed release in the audit trail",
    )
    assert row_audit.signature is not None and row_audit.signature["name"] == "Quinn Quality"
    assert row_audit.reason == "hour at 10 °C within the stability budget"
    decided = page.locator("#chain-decision .decided")
    await expect(decided).to_contain_text(released)
    await expect(decided).to_contain_text("Quinn Quality")
    await expect(row.locator(".decision")).to_contain_text(released, timeout=10_000)

    # a reading of the truck uploaded late: the decision needs review
    late = coldchain(
        9.0, lots.truck_start_ns + 90 * MIN + 30 * S, site="road", asset="truck-4", device="lg-4"
    )
    late.received_ns = time.time_ns() + S
    lots.rig.feed([late])
    await row.locator("button.chain").click()
    await expect(page.locator("#chain-decision .needs-review")).to_contain_text(needs_review)
    await expect(row.locator(".needs-review")).to_be_visible(timeout=10_000)
    if locale == "zh-CN":
        assert await page.evaluate("Array.from(window.vigilMissing)") == []
    assert errors == []
    await context.close()
