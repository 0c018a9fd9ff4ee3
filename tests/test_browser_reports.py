"""The campaign report in headless Chromium: the section loads by itself, the chart is drawn and
labelled, the hour/day toggle swaps it, the links table shows, the engagement CSV downloads; at
390 px nothing scrolls sideways. Screenshots (1280 and 390 px, with data and empty) go to
$HERALD_REPORT_SHOTS (default /tmp/shots/reports)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.test_browser import _sign_in
from tests.test_reports import IN_APP_ROWS, sent_campaign

SHOTS = Path(os.environ.get("HERALD_REPORT_SHOTS", "/tmp/shots/reports"))
WIDE, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture
def campaigns_with_data():
    sent_campaign([{"user": f"b{j}", "sent": 0, **({"read": 1} if j < 4 else {})} for j in range(10)],
                  name="Last week's newsletter")
    rows = IN_APP_ROWS + [{"user": f"x{i}", "sent": 0.1 * i, **({"read": 0.5 + i} if i % 2 else {}),
                           **({"clicked": 0.7 + i, "action": f"https://shop.example/item/{i % 4}"} if i % 3 == 0
                              else {})}
                          for i in range(1, 40)]
    rows += [{"user": f"f{i}", "status": "failed",
              "error": "SMTP 550 mailbox unavailable" if i % 3 else "no email address"} for i in range(7)]
    full = sent_campaign(rows, name="Black Friday early access")
    empty = sent_campaign([{"user": "nobody", "status": "failed", "error": "no email address"}],
                          name="Nothing delivered")
    return full, empty


def open_report(page, live_server, campaign_id: int):
    page.goto(f"{live_server}/campaigns/{campaign_id}")
    section = page.locator("section#report")
    expect(section.get_by_role("heading", name="Report")).to_be_visible()
    return section


def no_sideways_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_report_in_chromium(browser, live_server, make_account, campaigns_with_data):
    full, empty = campaigns_with_data
    account = make_account("support")
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=WIDE, accept_downloads=True)
    page = context.new_page()
    _sign_in(page, live_server, account.email)
    page.wait_for_url(f"{live_server}/")
    section = open_report(page, live_server, full.id)

    chart = section.get_by_role("img", name="Delivered, read and clicked per hour")
    expect(chart).to_be_visible()  # a send that took under 3 days: hourly buckets by default
    box = chart.bounding_box()
    assert box["width"] > 600 and box["height"] > 200, box
    expect(section.get_by_test_id("rpt-delivered")).to_have_text("44")
    expect(section.get_by_test_id("rpt-readRate-vs")).to_contain_text("vs last 1:")
    expect(section.locator(".rpt-legend")).to_contain_text("Delivered")
    links = section.get_by_test_id("report-links")
    expect(links).to_be_visible()
    expect(links.locator("tbody tr")).to_have_count(6)
    expect(section.get_by_test_id("report-failures")).to_contain_text("SMTP 550 mailbox unavailable")
    page.screenshot(path=str(SHOTS / "report-1280.png"), full_page=True)
    section.screenshot(path=str(SHOTS / "report-section-1280.png"))

    section.get_by_test_id("bucket-day").click()
    day_chart = page.get_by_role("img", name="Delivered, read and clicked per day")
    expect(day_chart).to_be_visible()
    expect(page.get_by_test_id("bucket-day")).to_have_attribute("aria-current", "true")
    page.locator("section#report details summary").click()
    expect(page.locator("section#report details tbody tr")).to_have_count(3)  # 20, 21 and 22 Nov
    page.screenshot(path=str(SHOTS / "report-days-1280.png"), full_page=True)
    page.get_by_test_id("bucket-hour").click()
    expect(page.get_by_role("img", name="Delivered, read and clicked per hour")).to_be_visible()

    with page.expect_download() as info:
        page.get_by_test_id("engagement-csv").click()
    download = info.value
    assert download.suggested_filename == f"campaign-{full.id}-engagement.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert len(rows) == 7 + 39 + 7 and rows[0]["userId"] == "u1" and rows[0]["clickedLinks"] == "https://app.example/a"

    section = open_report(page, live_server, empty.id)
    expect(section.get_by_test_id("report-empty")).to_be_visible()
    page.screenshot(path=str(SHOTS / "report-empty-1280.png"), full_page=True)
    context.close()

    phone_context = browser.new_context(viewport=PHONE)
    phone = phone_context.new_page()
    _sign_in(phone, live_server, account.email)
    phone.wait_for_url(f"{live_server}/")
    section = open_report(phone, live_server, full.id)
    chart = section.get_by_role("img")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] <= 390
    assert no_sideways_scroll(phone)
    section.screenshot(path=str(SHOTS / "report-390.png"))
    phone.screenshot(path=str(SHOTS / "report-page-390.png"), full_page=True)
    section = open_report(phone, live_server, empty.id)
    expect(section.get_by_test_id("report-empty")).to_be_visible()
    assert no_sideways_scroll(phone)
    section.screenshot(path=str(SHOTS / "report-empty-390.png"))
    phone_context.close()
