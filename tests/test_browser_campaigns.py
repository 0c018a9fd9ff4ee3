"""Headless Chromium: a draft from a CSV with two bad rows, the preview, confirm, the table."""

from playwright.sync_api import expect
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Recipient
from tests.test_api_campaigns import make_template
from tests.test_browser import SHOTS, _sign_in

CSV = (b"userId,firstName,offer,banner\n"
       b"u-1,Ann,20% off,https://cdn.test/a.png\n"
       b"bad id,Bob,10% off,\n"
       b"u-3,,free shipping,\n"
       b"u-4,Dee,,\n"
       b"u-5,Eve,<b>bold</b>,\n")


def test_marketer_uploads_csv_sees_preview_and_imports(page, live_server, make_account, tmp_path):
    make_template()
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.get_by_role("link", name="Campaigns").first.click()
    page.get_by_role("link", name="Create your first campaign").click()
    page.get_by_label("Campaign name").fill("Spring promo")
    page.get_by_label("Template").select_option("promo")
    page.get_by_role("button", name="Create draft").click()
    expect(page.get_by_text("Now add recipients")).to_be_visible()

    path = tmp_path / "spring.csv"
    path.write_bytes(CSV)
    page.get_by_label("Upload a CSV").set_input_files(str(path))
    page.get_by_role("button", name="Check file").click()
    expect(page.get_by_test_id("accepted-count")).to_have_text("3 ready to import")
    expect(page.get_by_test_id("rejected-count")).to_have_text("2 rows rejected")
    errors = page.locator("table.errors")
    expect(errors).to_contain_text('"bad id" is not a valid userId')
    expect(errors).to_contain_text("required variable offer has no value")
    expect(page.locator(".sample-grid")).to_contain_text("Hi Ann")
    expect(page.locator(".sample-grid")).to_contain_text("Hi there")  # template default for u-3
    expect(page.locator(".sample-grid")).to_contain_text("<b>bold</b>")  # escaped, shown as text
    assert page.locator(".sample-grid b").count() == 0
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
    page.screenshot(path=str(SHOTS / "campaign-upload-preview.png"), full_page=True)

    page.get_by_role("button", name="Import 3 recipients").click()
    expect(page.get_by_text("Imported 3 recipients")).to_be_visible()
    table = page.locator("#recipients-table")
    for user in ("u-1", "u-3", "u-5"):
        expect(table).to_contain_text(user)
    page.screenshot(path=str(SHOTS / "campaign-draft.png"), full_page=True)

    page.get_by_placeholder("User ID or email starts with…").fill("u-3")
    page.get_by_role("button", name="Search").last.click()
    expect(table.locator("tbody tr")).to_have_count(1)
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 3
