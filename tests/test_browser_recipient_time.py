"""Recipient time in headless Chromium (issue 15): a marketer schedules a send at 09:00 in each
recipient's time zone through Review & send (a refused date first, shown next to its field), and
the live page shows the waves (local time, zones, counts, "Next wave in"); an admin sets quiet
hours and a frequency cap on the Workspace page, a bad cap shown next to its row. Screenshots at
1280 and 390 px wide go to HERALD_SCREENSHOTS."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from dashboard.extensions import db
from dashboard.models import User
from dashboard.services import workspace
from tests.test_browser import SHOTS, _sign_in
from tests.test_browser_control import PHONE, WIDE, _campaign
from tests.test_delivery_faults import assert_counters_match_rows

ZONES = {"user-0": "Asia/Kolkata", "user-1": "Asia/Kathmandu", "user-2": "America/New_York", "user-3": None,
         "user-4": "Asia/Tokyo", "user-5": "Asia/Kolkata", "user-6": "Australia/Adelaide"}


def _shoot(page, name: str, locator) -> None:
    """One element at 1280 and at 390 px wide."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, suffix in ((WIDE, ""), (PHONE, "-phone")):
        page.set_viewport_size(size)
        page.wait_for_timeout(250)
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(SHOTS / f"{name}{suffix}.png"))
    page.set_viewport_size(WIDE)


def test_a_local_time_send_is_scheduled_from_review_and_send_and_the_live_page_shows_its_waves(
        page, live_server, make_account):
    cid = _campaign(len(ZONES), "Morning digest")
    db.session.add_all(User(user_id=u, timezone=z) for u, z in ZONES.items())
    db.session.commit()
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/campaigns/{cid}")
    panel = page.locator("#local-time")
    panel.locator("summary").click()
    expect(panel.get_by_label("Local time")).to_have_value("09:00")
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    panel.get_by_label("Date", exact=True).fill(day.isoformat())
    panel.get_by_label("Search fallback time zones").fill("Paris")
    expect(panel.locator("#fallback_zone")).to_have_value("Europe/Paris")
    explained = panel.locator("#local-explained")
    expect(explained).to_contain_text(f"Each recipient gets it at 09:00 in their own time zone on "
                                      f"{day.day} {day:%b %Y}")
    expect(explained).to_contain_text("over up to ~26 hours")
    expect(panel.get_by_label("Send it the next day at that time")).to_be_checked()
    _shoot(page, "time-review-local", page.locator("#review"))
    # A refused send: the date emptied; the error shows next to the field, the panel stays open with
    # what was typed, and nothing is sent.
    panel.get_by_label("Date", exact=True).fill("")
    panel.get_by_role("button", name="Schedule in each recipient's time zone").click()
    expect(page.locator("#local_date-error")).to_have_text(
        "The date must be a calendar date YYYY-MM-DD, e.g. 2026-12-02.")
    panel = page.locator("#local-time")
    expect(panel).to_have_attribute("open", "")
    expect(panel.locator("#fallback_zone")).to_have_value("Europe/Paris")
    assert assert_counters_match_rows(cid).status == "draft"
    panel.get_by_label("Date", exact=True).fill(day.isoformat())

    panel.get_by_role("button", name="Schedule in each recipient's time zone").click()
    expect(page.locator(".flash")).to_contain_text(
        f"Scheduled at 09:00 in each recipient's time zone on {day.day} {day:%b %Y}, fallback Europe/Paris: "
        "6 waves, the first")
    expect(page.get_by_test_id("status-badge")).to_have_text("scheduled")
    waves = page.get_by_test_id("waves")
    expect(waves.get_by_test_id("send-at")).to_have_text(
        f"Sends at 09:00 in each recipient's time zone on {day.day} {day:%b %Y}, fallback Europe/Paris; "
        "where that time had already passed: the next day.")
    rows = waves.get_by_test_id("wave-row")
    expect(rows).to_have_count(6)
    expect(waves.get_by_test_id("wave-zones")).to_have_text(
        ["Australia/Adelaide", "Asia/Tokyo", "Asia/Kathmandu", "Asia/Kolkata", "Europe/Paris", "America/New_York"])
    expect(waves.get_by_test_id("wave-recipients")).to_have_text(["1", "1", "1", "2", "1", "1"])
    expect(waves.get_by_test_id("wave-local")).to_have_text(["09:00"] * 6)
    expect(waves.get_by_test_id("wave-status")).to_have_text(["waiting"] * 6)
    expect(waves.get_by_test_id("next-wave")).to_contain_text(re.compile(r"Next wave in \d+ h( \d+ min)?"))
    # The card polls itself (scheduled); the panel survives the swap and still counts down.
    page.evaluate("window.__card = document.getElementById('campaign-status')")
    page.wait_for_timeout(2500)
    assert page.evaluate("window.__card !== document.getElementById('campaign-status')")
    expect(page.get_by_test_id("wave-row")).to_have_count(6)
    _shoot(page, "time-live-waves", page.locator("#campaign-status"))
    c = assert_counters_match_rows(cid)
    assert (c.status, c.wave_count, c.pending) == ("scheduled", 6, 7)


def test_the_workspace_page_sets_quiet_hours_and_a_cap_and_shows_a_bad_row(page, live_server, make_account):
    _sign_in(page, live_server, make_account("admin").email)
    page.goto(f"{live_server}/admin/workspace")
    quiet = page.locator("#quiet-hours")
    quiet.get_by_label("Hold messages during quiet hours").check()
    quiet.get_by_label("From").fill("22:00")
    quiet.get_by_label("Until").fill("07:30")
    quiet.get_by_role("button", name="Save quiet hours").click()
    expect(page.locator(".flash")).to_contain_text("Quiet hours are on: 22:00–07:30 in each recipient's time zone")
    caps = page.locator("#frequency-caps")
    caps.get_by_label("At most (messages per user), cap 1").fill("3")
    caps.get_by_label("Channel, cap 2").select_option("email")
    caps.get_by_label("At most (messages per user), cap 2").fill("5000")
    caps.get_by_label("In any, cap 2").select_option("7d")
    caps.get_by_role("button", name="Save frequency caps").click()
    expect(page.locator("#caps-rule_1-limit-error")).to_have_text(
        "Must be a whole number from 1 to 1,000 (messages per user).")
    expect(page.locator("#caps-rule_1-limit")).to_have_value("5000")
    expect(page.locator("#caps-rule_0-limit")).to_have_value("3")
    _shoot(page, "time-workspace-error", page.locator("#frequency-caps"))
    assert workspace.frequency_caps() == []
    page.locator("#caps-rule_1-limit").fill("2")
    page.get_by_role("button", name="Save frequency caps").click()
    expect(page.locator(".flash")).to_have_text(
        "Frequency caps saved: at most 3 in the last 24 h; 2 email in the last 7 days.")
    assert [r.reason() for r in workspace.frequency_caps()] == [
        "frequency cap: 3 in the last 24 h", "frequency cap: 2 email in the last 7 days"]
    _shoot(page, "time-workspace", page.locator("main"))
