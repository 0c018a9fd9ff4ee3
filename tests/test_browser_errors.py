"""Headless Chromium: errors reach the screen. Each kind of bad CSV shows the server's message under
"Check file"; hand-typed IDs are refused by line with the text kept; IDs without a required variable
can get a campaign default in one step; Review & send lists what is missing; a dropped connection says so."""

from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor
from tests.test_api_campaigns import make_template
from tests.test_browser import _sign_in

CORPUS = Path(__file__).parent / "data" / "csv"
SYSTEM = Actor.system("test")


def _draft(**fields) -> Campaign:
    make_template()
    return campaigns.create({"name": "Spring promo", "templateId": "promo", "channel": "in_app", **fields}, SYSTEM)


def _big_files(tmp_path: Path) -> dict[str, Path]:
    rows = tmp_path / "too_many_rows.csv"
    with rows.open("w") as out:
        out.write("userId,offer\n")
        out.writelines(f"u{i},x\n" for i in range(100_001))
    large = tmp_path / "too_large.csv"
    line = "u1," + "x" * 1000 + "\n"
    with large.open("w") as out:
        out.write("userId,offer\n")
        out.writelines(line for _ in range((25 * 1024 * 1024) // len(line) + 200))  # just over 25 MB
    return {"rows": rows, "large": large}


@pytest.fixture
def marketer_page(page, live_server, make_account):
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    expect(page.locator(".who-email")).to_have_text(marketer.email)
    return page


def test_each_kind_of_bad_file_shows_its_message(marketer_page, live_server, tmp_path):
    page = marketer_page
    campaign = _draft(variables={"offer": "10% off"})
    big = _big_files(tmp_path)
    cases = [
        (CORPUS / "binary_png.csv", "This looks like a binary file"),
        (CORPUS / "binary_xlsx.csv", "This looks like a binary file"),
        (CORPUS / "empty.csv", "The file is empty."),
        (CORPUS / "no_userid_column.csv", "No userId column"),
        (big["rows"], "The file has more than 100,000 data rows. Split it into smaller files."),
        (big["large"], "larger than 25 MB"),
    ]
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    region = page.locator("#upload-errors")
    expect(region).to_have_attribute("aria-live", "assertive")
    for path, message in cases:
        page.get_by_label("Upload a CSV").set_input_files(str(path))
        page.get_by_role("button", name="Check file").click()
        expect(region).to_contain_text(message, timeout=20_000)
        expect(region.get_by_role("alert")).to_be_visible()
        # the form stays, with the chosen file, ready for the next one
        assert page.get_by_label("Upload a CSV").evaluate("el => el.files[0].name") == path.name
        expect(page.get_by_role("button", name="Check file")).to_be_enabled()
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0

    good = tmp_path / "good.csv"
    good.write_text("userId,offer\nu-1,5% off\n")
    page.get_by_label("Upload a CSV").set_input_files(str(good))
    page.get_by_role("button", name="Check file").click()
    expect(page.get_by_test_id("accepted-count")).to_have_text("1 ready to import")


def test_a_network_failure_says_so(marketer_page, live_server, tmp_path):
    page = marketer_page
    campaign = _draft(variables={"offer": "10% off"})
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    page.route("**/upload", lambda route: route.abort("internetdisconnected"))
    page.get_by_label("Upload a CSV").set_input_files(str(CORPUS / "empty.csv"))
    page.get_by_role("button", name="Check file").click()
    expect(page.locator("#upload-errors")).to_have_text(
        "Couldn't reach Herald — check your connection and try again.")


def test_an_expired_form_shows_the_servers_message(marketer_page, live_server):
    page = marketer_page
    campaign = _draft(variables={"offer": "10% off"})
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    page.locator("#upload-area input[name=csrf_token]").evaluate("el => el.value = 'stale'")
    page.get_by_label("Upload a CSV").set_input_files(str(CORPUS / "empty.csv"))
    page.get_by_role("button", name="Check file").click()
    expect(page.locator("#upload-errors")).to_contain_text("Your form expired")


def test_hand_typed_ids_are_refused_by_line_and_the_text_stays(marketer_page, live_server):
    page = marketer_page
    campaign = _draft(variables={"offer": "10% off"})
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    typed = "u-1\nu-2, u-3\nu-4\nu-5\nu-6\nu-8\nbad id!"
    page.get_by_label("User IDs").fill(typed)
    page.get_by_role("button", name="Add user IDs").click()
    errors = page.locator("#add-ids-errors")
    expect(errors).to_contain_text("1 user ID is not valid; nothing was added.")
    expect(errors).to_contain_text('line 7: "bad id!" is not a valid userId')
    expect(page.get_by_label("User IDs")).to_have_value(typed)
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0

    page.get_by_label("User IDs").fill(typed.replace("bad id!", "u-7"))
    page.get_by_role("button", name="Add user IDs").click()
    expect(page.get_by_text("Added 8 recipients. Total: 8.")).to_be_visible()
    expect(page.locator("#recipients-table")).to_contain_text("u-7")


def test_ids_without_a_required_value_get_a_default_in_one_step(marketer_page, live_server):
    page = marketer_page
    campaign = _draft()  # the template's "offer" is required and has no default
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    page.get_by_label("User IDs").fill("ann\nbob")
    page.get_by_role("button", name="Add user IDs").click()
    expect(page.locator("#add-ids-errors")).to_contain_text(
        "Nothing was added: offer is required and neither this campaign nor the template has a default")
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
    expect(page.get_by_label("User IDs")).to_have_value("ann\nbob")
    page.get_by_label("Default for offer").fill("20% off")
    page.get_by_role("button", name="Set default and add").click()
    expect(page.get_by_text("Added 2 recipients (campaign default set for offer). Total: 2.")).to_be_visible()
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).variables == {"offer": "20% off"}


def test_review_lists_missing_values_before_any_button(marketer_page, live_server):
    page = marketer_page
    campaign = _draft(variables={"offer": "10% off"})
    recipients.add_manual(campaign.id, ["ann", "bob", "cy"], {"bob": {"offer": "5% off"}}, SYSTEM)
    campaigns.edit(campaign.id, {"variables": {}}, SYSTEM)
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    notice = page.get_by_test_id("missing-vars")
    expect(notice).to_contain_text("2 recipients have no value for offer")
    expect(notice).to_contain_text("ann, cy")
    notice.get_by_role("link", name="Set a campaign default").click()
    expect(page.get_by_label("offer")).to_be_visible()
