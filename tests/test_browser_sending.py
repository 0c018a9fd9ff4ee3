"""Headless Chromium with a real worker process: send and watch the live page finish, and a
schedule 20 seconds ahead going scheduled -> sending -> sent, all without reloading."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor
from tests.engine import start_worker, stop_worker
from tests.test_api_campaigns import make_template
from tests.test_browser import SHOTS, _sign_in

ACTOR = Actor.system("test")


@pytest.fixture
def worker(app):
    proc = start_worker(app, HERALD_BATCH_CHUNK="50", HERALD_SWEEP_SECONDS="2")
    yield proc
    stop_worker(proc)


def _campaign(n: int) -> int:
    make_template()
    c = campaigns.create({"name": "Live one", "templateId": "promo", "variables": {"offer": "15% off"}}, ACTOR)
    for start in range(0, n, 10_000):
        recipients.add_manual(c.id, [f"user-{i}" for i in range(start, min(n, start + 10_000))], None, ACTOR)
    return c.id


def test_send_now_and_watch_it_finish_without_reload(page, live_server, make_account, worker, tmp_path):
    marketer = make_account("marketer")
    make_template()
    _sign_in(page, live_server, marketer.email)
    page.goto(f"{live_server}/campaigns/new")
    page.get_by_label("Campaign name").fill("From a CSV")
    page.get_by_label("Template").select_option("promo")
    page.get_by_role("button", name="Create draft").click()
    path = tmp_path / "list.csv"
    path.write_text("userId,firstName,offer\n" + "".join(f"c-{i},N{i},{i}% off\n" for i in range(1500)))
    page.get_by_label("Upload a CSV").set_input_files(str(path))
    page.get_by_role("button", name="Check file").click()
    page.get_by_role("button", name="Import 1,500 recipients").click()
    expect(page.get_by_text("Imported 1,500 recipients")).to_be_visible()

    page.evaluate("window.__noReload = 'still here'")
    page.locator("#review").get_by_role("button", name="Send now").click()
    page.get_by_role("dialog").get_by_role("button", name="Send now").click()  # the confirmation
    expect(page.get_by_test_id("status-badge")).to_have_text("sending", timeout=10_000)
    page.evaluate("window.__noReload = 'still here'")  # the click itself navigated (POST/redirect)
    expect(page.get_by_test_id("status-badge")).to_have_text("sent", timeout=60_000)
    assert page.evaluate("window.__noReload") == "still here"  # reached by polling, not a reload
    expect(page.get_by_test_id("count-sent")).to_have_text("1,500")
    expect(page.get_by_test_id("eng-delivered")).to_have_text("1,500")  # engagement refreshed on finish
    # The recipients table refreshed itself too.
    expect(page.locator("#recipients-table .rstatus-sent").first).to_be_visible()
    assert page.locator("#recipients-table .rstatus-pending").count() == 0
    page.screenshot(path=str(SHOTS / "campaign-sent.png"), full_page=True)


def test_schedule_20_seconds_ahead_then_watch_it_run(page, live_server, make_account, worker):
    cid = _campaign(3000)
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.goto(f"{live_server}/campaigns/{cid}")
    when = datetime.now(UTC) + timedelta(seconds=20)
    page.get_by_label("Time zone", exact=True).select_option("UTC")
    page.get_by_label("Schedule for").fill(when.strftime("%Y-%m-%dT%H:%M:%S"))
    page.get_by_role("button", name="Schedule").click()
    badge = page.get_by_test_id("status-badge")
    expect(badge).to_have_text("scheduled")
    page.screenshot(path=str(SHOTS / "campaign-scheduled.png"), full_page=True)
    page.evaluate("window.__noReload = 'still here'")
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = badge.inner_text()
        if not seen or seen[-1] != text:
            seen.append(text)
        if text == "sent":
            break
        time.sleep(0.1)
    assert seen[0] == "scheduled" and seen[-1] == "sent", seen
    assert "sending" in seen, seen
    assert page.evaluate("window.__noReload") == "still here"
    expect(page.get_by_test_id("count-sent")).to_have_text("3,000")
