"""Headless Chromium: a schedule made in New York reads right for a viewer in Tokyo; the zone
picker's search; lists, the overview and recipient rows in the same format."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from dashboard.services import campaigns, lifecycle, recipients
from dashboard.services.actor import Actor
from tests.engine import drain
from tests.test_api_campaigns import make_template
from tests.test_browser import SHOTS, _sign_in

ACTOR = Actor.system("test")
ONE_FORMAT = r"^\w{3} \d{1,2} \w{3} \d\d:\d\d Tokyo · (just now|\d+ min ago)$"


def _viewer(browser, live_server, email, zone):
    """A browser in `zone`, signed in; app.js remembers the zone and the header says so."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id=zone)
    page = context.new_page()
    _sign_in(page, live_server, email)
    city = zone.rsplit("/", 1)[-1].replace("_", " ")
    expect(page.locator("a.who-zone")).to_have_text(re.compile("Times in: " + city))
    return context, page


def test_schedule_made_in_new_york_reads_right_in_tokyo(browser, live_server, make_account):
    make_template()
    draft = campaigns.create({"name": "Cyber Monday", "templateId": "promo", "variables": {"offer": "30%"}}, ACTOR)
    recipients.add_manual(draft.id, ["u1", "u2"], {}, ACTOR)
    marketer, support = make_account("marketer"), make_account("support")
    local = (datetime.now(ZoneInfo("America/New_York")) + timedelta(days=2)).replace(hour=19, minute=54, second=0,
                                                                                    microsecond=0)
    day = f"{local:%a} {local.day} {local:%b}"

    ny, page = _viewer(browser, live_server, marketer.email, "America/New_York")
    page.goto(f"{live_server}/campaigns/{draft.id}")
    expect(page.get_by_label("Time zone", exact=True)).to_have_value("America/New_York")  # the viewer's zone first
    page.get_by_label("Schedule for").fill(local.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.locator(".flash-success")).to_contain_text(f"Scheduled for {day} 19:54 New York · in ")
    ny.close()

    tokyo_time = local.astimezone(ZoneInfo("Asia/Tokyo"))
    tokyo, page = _viewer(browser, live_server, support.email, "Asia/Tokyo")
    page.goto(f"{live_server}/campaigns/{draft.id}")
    when = page.get_by_test_id("schedule-when")
    expect(when).to_have_text(re.compile(
        rf"starts {day} 19:54 New York · in (1 day|2 days|4\d h) · {tokyo_time:%a %H:%M} your time"))
    utc = local.astimezone(ZoneInfo("UTC"))
    expect(when.locator("time")).to_have_attribute("title", f"{utc:%Y-%m-%d %H:%M:%S} UTC")
    page.screenshot(path=str(SHOTS / "schedule-new-york-seen-in-tokyo.png"), full_page=True)
    tokyo.close()


def test_zone_picker_search(browser, live_server, make_account):
    make_template()
    draft = campaigns.create({"name": "Spring", "templateId": "promo", "variables": {"offer": "10%"}}, ACTOR)
    recipients.add_manual(draft.id, ["u1"], {}, ACTOR)
    context, page = _viewer(browser, live_server, make_account("marketer").email, "Europe/Oslo")
    page.goto(f"{live_server}/campaigns/{draft.id}")
    select, search = page.get_by_label("Time zone", exact=True), page.get_by_label("Search time zones")
    expect(select).to_have_value("Europe/Oslo")
    assert select.locator("option[value='US/Eastern'], option[value='Asia/Calcutta']").count() == 0
    expect(select.locator("option[value='Asia/Tokyo']")).to_have_text("(UTC+09:00) Asia/Tokyo")
    search.fill("tokyo")
    expect(select).to_have_value("Asia/Tokyo")
    assert select.locator("option:not([hidden])").all_inner_texts() == ["(UTC+09:00) Asia/Tokyo"]
    expect(page.locator("#timezone-count")).to_have_text("1 zone matches; showing (UTC+09:00) Asia/Tokyo")
    search.fill("+05:30")
    expect(page.locator("#timezone-count")).to_have_text(re.compile("^2 zones match"))
    assert select.locator("option:not([hidden])").all_inner_texts() == ["(UTC+05:30) Asia/Colombo",
                                                                       "(UTC+05:30) Asia/Kolkata"]
    search.fill("new york")
    expect(select).to_have_value("America/New_York")
    search.fill("atlantis")
    expect(page.locator("#timezone-count")).to_have_text("No zone matches “atlantis”.")
    expect(select).to_have_value("America/New_York")  # nothing hidden is left selected

    page.get_by_role("link", name=re.compile("Times in: Oslo")).click()
    pref = page.get_by_label("Show times in")
    expect(pref).to_have_value("Europe/Oslo")
    page.get_by_label("Search time zones").fill("kolkata")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-success")).to_have_text("Times are now shown in Asia/Kolkata.")
    expect(page.locator("a.who-zone")).to_contain_text("Times in: Kolkata")
    context.close()


def test_lists_overview_and_recipient_rows_share_the_format(browser, live_server, make_account):
    make_template()
    sent = campaigns.create({"name": "Black Friday", "templateId": "promo", "variables": {"offer": "20%"}}, ACTOR)
    recipients.add_manual(sent.id, ["u1", "u2"], {}, ACTOR)
    lifecycle.send(sent.id, None, ACTOR)
    drain()
    context, page = _viewer(browser, live_server, make_account("marketer").email, "Asia/Tokyo")
    for url, where in (("/", "table time.when"), ("/campaigns", "table time.when"),
                       (f"/campaigns/{sent.id}", "#recipients-table time.when"), ("/templates", "table time.when"),
                       ("/audit", "table time.when")):
        page.goto(live_server + url)
        cells = page.locator(where)
        expect(cells.first).to_have_text(re.compile(ONE_FORMAT))
        for text in cells.all_inner_texts():
            assert re.match(ONE_FORMAT, text), (url, text)
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", cells.first.get_attribute("title"))
    page.screenshot(path=str(SHOTS / "audit-times-tokyo.png"), full_page=True)
    context.close()
