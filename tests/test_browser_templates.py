"""Headless Chromium: build a template with two variables, watch the preview, approve it."""

from playwright.sync_api import expect
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import Template
from tests.test_browser import SHOTS, _sign_in


def test_marketer_builds_template_with_live_preview_and_approves(page, live_server, make_account):
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.get_by_role("link", name="Templates").first.click()
    page.wait_for_selector("text=No templates yet.")
    page.get_by_role("link", name="Create your first template").click()

    page.get_by_label("Name", exact=True).fill("Welcome back")
    # The new-template form starts with one variable row (firstName); add a second via HTMX.
    page.get_by_role("button", name="+ Add variable").click()
    keys = page.get_by_label("Variable key")
    keys.nth(1).wait_for()
    assert page.url.endswith("/templates/new")  # no page load happened
    keys.nth(1).fill("discount")
    page.get_by_label("Sample value for firstName").fill("Ana")

    page.get_by_label("Title").fill("Hi {{ firstName }}!")
    page.get_by_label("Body").fill("Take {{ discount }} off <b>today</b>")
    title = page.get_by_test_id("preview-title")
    expect(title).to_have_text("Hi Ana!")
    page.locator("[name=variables-1-sample]").fill("20%")
    expect(page.get_by_test_id("preview-body")).to_have_text("Take 20% off <b>today</b>")
    assert title.inner_text() == "Hi Ana!"
    page.screenshot(path=str(SHOTS / "template-editor.png"), full_page=True)

    # Remove and re-add a row without reloading: the table is re-rendered by HTMX.
    page.get_by_role("button", name="+ Add variable").click()
    keys.nth(2).wait_for()
    page.get_by_role("button", name="Remove variable 3").click()
    expect(keys).to_have_count(2)
    assert keys.nth(1).input_value() == "discount"

    page.get_by_role("button", name="Save draft").click()
    page.wait_for_selector("text=saved as a draft (version 1)")
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("dialog").get_by_role("button", name="Approve").click()  # the confirmation
    page.wait_for_selector("text=Template approved (version 1).")
    page.screenshot(path=str(SHOTS / "template-show.png"), full_page=True)
    db.session.expire_all()
    template = db.session.scalar(select(Template).where(Template.template_id == "welcome-back"))
    assert template.status == "approved"
    assert [v["key"] for v in template.current.variable_schema] == ["firstName", "discount"]


def test_validation_errors_show_next_to_fields(page, live_server, make_account):
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.goto(f"{live_server}/templates/new")
    page.get_by_label("Name", exact=True).fill("Broken")
    page.get_by_label("Variable key").first.fill("first-name")
    page.get_by_label("Title").fill("Hi {{ nickname }}")
    page.get_by_label("Body").fill("x")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_selector(".field-error")
    text = page.locator("#template-form").inner_text()
    assert "not a valid key" in text
    assert "uses {{ nickname }}, which is not in the variable schema" in text
    page.screenshot(path=str(SHOTS / "template-errors.png"), full_page=True)
