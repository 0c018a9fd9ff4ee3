"""Headless Chromium drives the real app through its real pages."""

import os
from pathlib import Path

from tests.conftest import PASSWORD

SHOTS = Path(os.environ.get("HERALD_SCREENSHOTS", "/tmp/herald-screenshots"))


def _sign_in(page, live_server, email, password=PASSWORD):
    page.goto(f"{live_server}/")
    assert "/login" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_marketer_signs_in_and_sees_the_dashboard(page, live_server, make_account):
    account = make_account("marketer")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server}/login")
    page.screenshot(path=str(SHOTS / "login.png"))
    _sign_in(page, live_server, account.email)
    page.wait_for_selector("h1:has-text('Welcome to Herald')")
    assert page.url.rstrip("/") == live_server
    assert page.locator(".who-email").inner_text() == account.email
    assert page.locator("nav.mainnav a", has_text="Accounts").count() == 0
    page.screenshot(path=str(SHOTS / "overview-marketer.png"), full_page=True)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("text=You have been signed out.")


def test_wrong_password_shows_error_in_browser(page, live_server, make_account):
    account = make_account("support")
    _sign_in(page, live_server, account.email, "wrong password")
    error = page.locator(".form-errors")
    error.wait_for()
    assert "Email or password is incorrect." in error.inner_text()


def test_admin_creates_account_and_revokes_key_with_confirmation(page, live_server, make_account):
    admin = make_account("admin")
    make_account("marketer", email="owner@example.com")
    _sign_in(page, live_server, admin.email)
    page.get_by_role("link", name="Accounts").first.click()
    page.get_by_label("Email", exact=True).fill("fresh@example.com")
    page.get_by_label("Role", exact=True).select_option("support")
    page.get_by_label("Initial password").fill("a-good-password")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_selector("text=Account fresh@example.com created as support.")
    page.screenshot(path=str(SHOTS / "admin-accounts.png"), full_page=True)

    page.get_by_role("link", name="API keys").first.click()
    page.get_by_label("Label").fill("CRM sync")
    page.get_by_label("Owner").select_option(label="owner@example.com (marketer)")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").input_value()
    assert key.startswith("hrld_")
    page.screenshot(path=str(SHOTS / "admin-api-keys.png"), full_page=True)

    confirm = page.get_by_role("dialog")
    page.get_by_role("button", name="Revoke").click()  # first time: dismissed
    confirm.get_by_text("Revoke key").wait_for()
    confirm.get_by_role("button", name="Go back").click()
    assert page.locator(".badge", has_text="revoked").count() == 0
    page.get_by_role("button", name="Revoke").click()  # second time: confirmed
    confirm.get_by_role("button", name="Revoke").click()
    page.wait_for_selector("text=revoked; requests using it now get 401")
    assert page.locator(".badge", has_text="revoked").count() == 1
