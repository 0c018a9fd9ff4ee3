"""Headless Chromium (issue 14, four-eyes): an admin switches four-eyes on in the Workspace tab;
the template's editor sees that another person must approve (no Approve button); a second
marketer approves it through the confirmation dialog and the history names them."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

from dashboard.services import templates, workspace
from dashboard.services.actor import Actor
from tests.test_browser import _sign_in

SHOTS = Path(os.environ.get("HERALD_SCREENSHOTS", "/tmp/herald-screenshots")) / "four-eyes"


def shoot(page, name: str) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 800})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (name, width)
    page.set_viewport_size({"width": 1280, "height": 800})


def sign_out(page) -> None:
    page.context.clear_cookies()


def test_four_eyes_switched_on_refused_for_the_editor_approved_by_another(page, live_server, make_account):
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin, ana, ben = make_account("admin"), make_account("marketer"), make_account("marketer")

    _sign_in(page, live_server, admin.email)
    page.goto(f"{live_server}/admin/accounts")
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Workspace").click()
    page.get_by_label("Require a second person (four-eyes)").check()
    threshold = page.get_by_label("Sends larger than this many recipients need a second person's approval")
    threshold.fill("-5")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#threshold-error")).to_have_text("Enter a whole number from 0 to 10,000,000.")
    threshold.fill("500")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#flashes")).to_contain_text("Four-eyes approval is on")
    assert workspace.four_eyes() == workspace.FourEyes(True, 500)
    shoot(page, "workspace")
    sign_out(page)

    templates.create({"name": "Spring sale", "templateId": "spring-sale",
                      "channels": {"in_app": {"title": "Spring is here", "body": "20% off everything"}}},
                     Actor(label=ana.email, account_id=ana.id))
    _sign_in(page, live_server, ana.email)
    page.goto(f"{live_server}/templates/spring-sale")
    expect(page.get_by_text("Waiting for another person to approve (four-eyes)")).to_be_visible()
    expect(page.locator("#four-eyes-note")).to_have_text(
        "Four-eyes approval is on: you last edited version 1, so another person must approve it before "
        "campaigns can send it.")
    expect(page.get_by_role("button", name="Approve v1")).to_have_count(0)
    shoot(page, "template-editor")
    sign_out(page)

    _sign_in(page, live_server, ben.email)
    page.goto(f"{live_server}/templates/spring-sale")
    page.get_by_role("button", name="Approve v1").click()
    page.get_by_role("dialog").get_by_role("button", name="Approve").click()
    expect(page.locator("#flashes")).to_contain_text("Template approved (version 1).")
    expect(page.locator("ol.versions")).to_contain_text(f"approved by {ben.email}")
    assert templates.get("spring-sale").current.approved_by == ben.email
