"""Headless Chromium (issue 13, templates and versions): the header says "v1 live · v2 draft", the
editor's preview names an undeclared placeholder as you type, sample values are saved, the Type
select shows its whole text, and New campaign offers approved versions with their variables on
first load."""

from playwright.sync_api import expect
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import Campaign
from dashboard.services import templates
from dashboard.services.actor import Actor
from tests.test_browser import _sign_in

ACTOR = Actor.system("test")
WIDTH_JS = """(sel) => {
  const probe = document.createElement('span'), style = getComputedStyle(sel);
  probe.style.font = style.font; probe.style.position = 'absolute'; probe.style.whiteSpace = 'nowrap';
  probe.textContent = 'Action URL'; document.body.appendChild(probe);
  const text = probe.getBoundingClientRect().width; probe.remove();
  return {box: sel.getBoundingClientRect().width,
          need: text + parseFloat(style.paddingLeft) + parseFloat(style.paddingRight) + 12};
}"""


def spring_sale():
    """v1 approved with three variables; v2 a draft edit (same variables, a new title)."""
    templates.create({"name": "Spring sale", "templateId": "spring-sale", "channels": {"in_app": {
        "title": "Hi {{ firstName }}, {{ discount }} off", "body": "Shop at {{ store }}"}},
        "variableSchema": [{"key": "firstName", "label": "First name", "defaultValue": "there"},
                           {"key": "discount", "label": "Discount", "required": True},
                           {"key": "store", "label": "Store", "defaultValue": "our shop"}]}, ACTOR)
    templates.transition("spring-sale", "approve", ACTOR)
    templates.update("spring-sale", {"channels": {"in_app": {"title": "Hello {{ firstName }}",
                                                             "body": "Shop at {{ store }}"}}}, ACTOR)


def test_versions_live_preview_samples_and_type_select(page, live_server, make_account):
    spring_sale()
    _sign_in(page, live_server, make_account("marketer").email)

    page.goto(f"{live_server}/templates/spring-sale")
    expect(page.locator("h1 .version-state")).to_have_text("v1 live · v2 draft")
    expect(page.get_by_text("Campaigns keep sending version 1 until you approve it")).to_be_visible()
    page.goto(f"{live_server}/templates")
    expect(page.get_by_role("row", name="Spring sale")).to_contain_text("v1 live · v2 draft")

    page.goto(f"{live_server}/templates/spring-sale/edit")
    for width in (1280, 390):  # the Type select shows its longest choice whole
        page.set_viewport_size({"width": width, "height": 800})
        for select_box in page.get_by_label("Variable type").all():
            size = select_box.evaluate(WIDTH_JS)
            assert size["box"] >= size["need"], (width, size)
    page.set_viewport_size({"width": 1280, "height": 800})

    body = page.get_by_label("Body")
    body.fill("Shop at {{ store }} with {{ promo }}")
    problems = page.locator(".preview-problems")
    expect(problems).to_contain_text("In-app body uses {{ promo }}, which is not in the variable schema")
    expect(page.get_by_test_id("preview-body")).to_have_text("Shop at our shop with {{ promo }}")
    body.fill("Shop at {{ store }}")
    expect(problems).to_have_count(0)

    page.get_by_label("Sample value for firstName").fill("Zoe")
    expect(page.get_by_test_id("preview-title")).to_have_text("Hello Zoe")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_selector("text=Draft saved (version 2).")
    expect(page.get_by_role("row", name="firstName")).to_contain_text("Zoe")
    page.goto(f"{live_server}/templates/spring-sale/edit")
    expect(page.get_by_label("Sample value for firstName")).to_have_value("Zoe")
    expect(page.get_by_test_id("preview-title")).to_have_text("Hello Zoe")


def test_new_campaign_picks_an_approved_version_with_its_variables(page, live_server, make_account):
    spring_sale()
    _sign_in(page, live_server, make_account("marketer").email)

    page.goto(f"{live_server}/campaigns/new")
    expect(page.get_by_label("Template", exact=True)).to_have_value("spring-sale")
    version = page.get_by_label("Version", exact=True)
    expect(version.locator("option")).to_have_count(1)  # v2 is a draft: not offered
    expect(version.locator("option")).to_contain_text("v1 — newest · approved just now")
    for label in ("First name", "Discount", "Store"):  # first load, no change event needed
        expect(page.locator("#defaults").get_by_text(label, exact=False).first).to_be_visible()
    expect(page.get_by_text("This template has no variables.")).to_have_count(0)
    page.screenshot(path="/tmp/shots13/templates/test-campaign-new.png", full_page=True)

    page.get_by_label("Campaign name").fill("Spring wave 1")
    page.locator("#var-discount").fill("20%")
    page.get_by_role("button", name="Create draft").click()
    page.wait_for_selector("text=Now add recipients")
    db.session.expire_all()
    campaign = db.session.scalar(select(Campaign).where(Campaign.name == "Spring wave 1"))
    assert campaign.template_version == 1

    # With v2 approved too, the newest is picked by default; picking v1 swaps in v1's variables.
    templates.update("spring-sale", {"variableSchema": [{"key": "firstName", "defaultValue": "there"},
                                                        {"key": "store", "label": "Store"},
                                                        {"key": "city", "label": "City"}],
                                     "channels": {"in_app": {"title": "Hello {{ firstName }} in {{ city }}",
                                                             "body": "Shop at {{ store }}"}}}, ACTOR)
    templates.transition("spring-sale", "approve", ACTOR)
    page.goto(f"{live_server}/campaigns/new")
    expect(version.locator("option:checked")).to_contain_text("v2 — newest")
    expect(page.locator("#var-city")).to_be_visible()
    page.locator("#var-store").fill("Oslo store")
    version.select_option("1")
    expect(page.locator("#var-discount")).to_be_visible()
    expect(page.locator("#var-city")).to_have_count(0)
    expect(page.locator("#var-store")).to_have_value("Oslo store")  # typed values are kept
