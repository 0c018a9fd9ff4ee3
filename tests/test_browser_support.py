"""Headless Chromium: a support account looks up a userId and sees what reached them."""

from playwright.sync_api import expect

from dashboard.services import campaigns, lifecycle, recipients
from dashboard.services.actor import Actor
from tests.engine import drain
from tests.test_api_campaigns import make_template
from tests.test_browser import SHOTS, _sign_in

ACTOR = Actor.system("test")


def test_support_searches_user_and_sees_campaign_statuses(page, live_server, make_account):
    make_template()
    sent = campaigns.create({"name": "Welcome series", "templateId": "promo", "variables": {"offer": "x"}}, ACTOR)
    recipients.add_manual(sent.id, ["customer-7", "customer-8"], None, ACTOR)
    lifecycle.send(sent.id, None, ACTOR)
    drain()
    draft = campaigns.create({"name": "Next week's promo", "templateId": "promo", "variables": {"offer": "y"}}, ACTOR)
    recipients.add_manual(draft.id, ["customer-7"], None, ACTOR)

    support = make_account("support")
    _sign_in(page, live_server, support.email)
    page.get_by_role("link", name="Support").first.click()
    page.get_by_label("User ID").fill("customer-7")
    page.get_by_role("button", name="Look up").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Next week's promo")
    expect(rows.nth(0)).to_contain_text("draft")
    expect(rows.nth(0).get_by_test_id("delivery-status")).to_have_text("pending")
    expect(rows.nth(1)).to_contain_text("Welcome series")
    expect(rows.nth(1)).to_contain_text("sent")
    expect(rows.nth(1).get_by_test_id("delivery-status")).to_have_text("sent")
    page.screenshot(path=str(SHOTS / "support-lookup.png"), full_page=True)
    rows.nth(1).get_by_role("link", name="Welcome series").click()
    expect(page.locator("h1")).to_have_text("Welcome series")
    assert page.locator("#review").count() == 0 and page.get_by_role("button", name="Cancel campaign").count() == 0
