"""Delivery control in headless Chromium with a real worker (issue 14): a canary send chosen in
Review & send's advanced options holds after its first wave (the live page shows why and the
wave's results), Continue (confirmed) sends the rest and the page reaches `sent` by itself; a
webhook sink that refuses one in five makes the send pause itself, and Resume asks with the
figures; a send above the four-eyes limit waits with a banner until a second person approves.
Screenshots at 1280 and 390 px wide go to HERALD_SCREENSHOTS."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from dashboard.services import campaigns, channel_settings, recipients, workspace
from dashboard.services.actor import Actor
from tests.engine import start_worker, stop_worker
from tests.sinks import HttpSink
from tests.test_api_campaigns import make_template
from tests.test_browser import SHOTS, _sign_in
from tests.test_delivery_faults import assert_counters_match_rows

ACTOR = Actor.system("test")
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1280, "height": 800}


@pytest.fixture
def sink():
    server = HttpSink()
    channel_settings.update("webhook", {"rateLimit": 200, "settings": {"url": server.url, "timeoutSeconds": 5}},
                            ACTOR)
    yield server
    server.close()


@pytest.fixture
def worker(app):
    proc = start_worker(app, HERALD_BATCH_CHUNK="50", HERALD_SWEEP_SECONDS="2")
    yield proc
    stop_worker(proc)


def _campaign(n: int, name: str, channel: str = "in_app") -> int:
    make_template()
    c = campaigns.create({"name": name, "templateId": "promo", "channel": channel,
                          "variables": {"offer": "15% off"}}, ACTOR)
    recipients.add_manual(c.id, [f"user-{i}" for i in range(n)], None, ACTOR)
    return c.id


def _shoot(page, name: str, locator=None) -> None:
    """The same view at 1280 and at 390 px wide: one element, or the page down to the status card."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, suffix in ((WIDE, ""), (PHONE, "-phone")):
        page.set_viewport_size(size)
        page.wait_for_timeout(200)
        path = str(SHOTS / f"{name}{suffix}.png")
        if locator is not None:
            locator.scroll_into_view_if_needed()
            locator.screenshot(path=path)
            continue
        box = page.evaluate("() => { const r = document.getElementById('campaign-status').getBoundingClientRect();"
                            " return r.bottom + window.scrollY; }")
        page.screenshot(path=path, full_page=True, clip={"x": 0, "y": 0, "width": size["width"], "height": box + 16})
    page.set_viewport_size(WIDE)


def _confirm(page, button, says: str | re.Pattern) -> None:
    """Press a button whose form asks first; the dialog must say `says`, then confirm."""
    button.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(says)
    dialog.locator("[data-confirm-ok]").click()


def test_a_canary_send_holds_shows_its_wave_and_continue_reaches_sent(page, live_server, make_account, worker):
    cid = _campaign(200, "Spring sale canary")
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/campaigns/{cid}")
    review = page.locator("#review")
    review.locator("#advanced-delivery > summary").click()
    review.get_by_label("A percentage", exact=True).check()
    review.get_by_label("Percent of the audience in the first wave").fill("10")
    expect(review.get_by_label("With a canary wave (default)")).to_be_checked()
    review.get_by_label("Spread the send over, in minutes").fill("30")
    expect(page.get_by_test_id("spread-hint")).to_have_text(
        "At most 6.7/min: 200 recipients over about 30 min.")  # as typed (HTMX), before anything is sent
    _shoot(page, "control-send-panel", review)
    review.get_by_label("Spread the send over, in minutes").fill("")  # the wave should not take minutes here

    _confirm(page, review.get_by_role("button", name="Send now"), "to 200 recipients now?")
    expect(page.locator(".flash")).to_contain_text(re.compile(r"[Ff]irst wave"))  # sending it, or done
    badge = page.get_by_test_id("status-badge")
    expect(badge).to_have_text("paused", timeout=60_000)  # reached by polling: the wave is done, the send holds
    banner = page.get_by_test_id("paused-banner")
    expect(banner).to_contain_text("Canary wave done — waiting for you")
    expect(banner).to_contain_text("Holding since")
    expect(page.get_by_test_id("canary-recipients")).to_have_text("20")
    expect(page.get_by_test_id("canary-sent")).to_have_text("20")
    expect(page.get_by_test_id("canary-failed")).to_have_text("0")
    expect(page.get_by_test_id("canary-read")).to_have_text("0")
    expect(page.get_by_test_id("count-pending")).to_have_text("180")
    page.evaluate("window.__card = document.getElementById('campaign-status');"
                  "window.__continue = window.__card.querySelector('form[action$=\"/resume\"]')")
    page.wait_for_timeout(2500)  # still held: nothing more goes out while it waits
    expect(page.get_by_test_id("count-sent")).to_have_text("20")
    # The poll replaced the card but kept its buttons (a confirmation open on one still submits).
    assert page.evaluate("window.__card !== document.getElementById('campaign-status')")  # polled and swapped
    assert page.evaluate("window.__continue.isConnected && window.__continue.closest('#campaign-status') !== null")
    _shoot(page, "control-canary-hold")

    _confirm(page, page.locator("#campaign-status").get_by_role("button", name="Continue"),
             "Send to the remaining 180 recipients?")
    expect(page.locator(".flash")).to_have_text("Continuing: sending to the remaining 180 recipients.")
    expect(badge).to_have_text("sent", timeout=60_000)
    expect(page.get_by_test_id("count-sent")).to_have_text("200")
    expect(page.get_by_test_id("paused-banner")).to_have_count(0)
    c = assert_counters_match_rows(cid)
    assert (c.status, c.sent, c.pending, c.canary_state) == ("sent", 200, 0, "done")


def test_a_failing_sink_pauses_the_send_itself_and_resume_asks_with_the_figures(
        page, live_server, make_account, sink, worker):
    for i in range(0, 1000, 5):  # one in five is refused for good
        sink.plan[f"user-{i}"] = [400]
    cid = _campaign(1000, "Webhook with a bad list", channel="webhook")
    _sign_in(page, live_server, make_account("marketer").email)
    page.goto(f"{live_server}/campaigns/{cid}")
    review = page.locator("#review")
    review.locator("#advanced-delivery > summary").click()
    review.get_by_label("Always, also without a canary").check()
    _confirm(page, review.get_by_role("button", name="Send now"), "to 1,000 recipients now?")
    expect(page.get_by_test_id("status-badge")).to_have_text("paused", timeout=60_000)
    banner = page.get_by_test_id("paused-banner")
    expect(banner).to_contain_text("Paused automatically: too many deliveries failed")
    expect(page.get_by_test_id("paused-reason")).to_have_text(
        re.compile(r"^[\d,]+ of the last [\d,]+ deliveries failed \(\d+\.\d%\), above the 5% halt rule\.$"))
    page.wait_for_timeout(1500)
    page.reload()
    sent = int(page.get_by_test_id("count-sent").inner_text().replace(",", ""))
    assert 0 < sent < 800, sent  # it stopped early instead of burning through the list
    _shoot(page, "control-halted")

    page.locator("#campaign-status").get_by_role("button", name="Resume").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(re.compile(r"It paused itself because [\d,]+ of the last [\d,]+ deliveries failed"))
    expect(dialog).to_contain_text("Fix the cause first, or it may pause again.")
    dialog.get_by_role("button", name="Go back").click()
    expect(page.get_by_test_id("status-badge")).to_have_text("paused")
    _confirm(page, page.get_by_role("button", name="Cancel campaign"), "Recipients not yet reached will be skipped.")
    expect(page.get_by_test_id("status-badge")).to_have_text(re.compile(r"^cancelled"), timeout=15_000)
    c = assert_counters_match_rows(cid)
    assert c.status == "cancelled" and c.sent == sent and c.failed > 0


def test_a_large_send_waits_for_a_second_persons_approval(page, live_server, make_account, browser):
    cid = _campaign(30, "Newsletter for everyone")
    workspace.set_four_eyes(True, 10, ACTOR)
    asker, approver = make_account("marketer"), make_account("admin")
    _sign_in(page, live_server, asker.email)
    page.goto(f"{live_server}/campaigns/{cid}")
    _confirm(page, page.locator("#review").get_by_role("button", name="Send now"), "to 30 recipients now?")
    banner = page.get_by_test_id("approval-banner")
    expect(banner).to_contain_text("Waiting for a second person's approval")
    expect(banner).to_contain_text(f"Requested by {asker.email}")
    expect(banner).to_contain_text("You asked for this send; someone else must approve it.")
    expect(page.get_by_test_id("status-badge")).to_have_text("scheduled · awaiting approval")
    expect(page.get_by_role("button", name="Approve send")).to_have_count(0)

    other = browser.new_context(viewport=WIDE).new_page()
    try:
        _sign_in(other, live_server, approver.email)
        other.goto(f"{live_server}/campaigns/{cid}")
        expect(other.get_by_test_id("approval-banner")).to_contain_text("sends now, as soon as it is approved")
        _shoot(other, "control-approval")
        _confirm(other, other.get_by_role("button", name="Approve send"),
                 "Approve sending “Newsletter for everyone” to 30 recipients now?")
        expect(other.locator(".flash")).to_have_text("Approved: sending to 30 recipients.")
    finally:
        other.context.close()
    # The asker's page learns it by polling: the send started (no worker here, so it stays sending).
    expect(page.get_by_test_id("status-badge")).to_have_text("sending", timeout=10_000)
    expect(page.get_by_test_id("approval-banner")).to_have_count(0)
    c = assert_counters_match_rows(cid)
    assert (c.status, c.approved_by, c.approval_requested_by) == ("sending", approver.email, asker.email)
