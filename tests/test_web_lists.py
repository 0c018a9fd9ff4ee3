"""Audiences → Lists pages: index (empty state, sizes), create, paste userIds (errors by line),
CSV upload through a preview with row errors, confirm, remove, rename, delete (refused while a
draft uses the list), and "Save recipients as a list" on the campaign page."""

import io
import os
import re
from pathlib import Path

from sqlalchemy import func, select, update

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.models.user import ListMember, UserList
from dashboard.services import campaigns, recipients
from dashboard.services import lists as service
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.test_api_campaigns import make_template

SYSTEM = Actor.system("test")


def _token(client, path="/audiences/lists"):
    return csrf_from(client.get(path).get_data(as_text=True))


def members(list_id: int) -> list[str]:
    return list(db.session.scalars(select(ListMember.user_id).where(ListMember.list_id == list_id)
                                   .order_by(ListMember.user_id)))


def test_index_empty_state_then_lists_with_sizes(client, logged_in):
    logged_in("marketer")
    html = client.get("/audiences/lists").get_data(as_text=True)
    assert "No lists yet." in html and 'href="/audiences/lists/new"' in html
    service.create("Beta <testers>", "Early", SYSTEM, ["a", "b", "c"])
    html = client.get("/audiences/lists").get_data(as_text=True)
    assert "Beta &lt;testers&gt;" in html and re.search(r'data-testid="list-size">3<', html)
    assert "No lists yet." not in html


def test_support_sees_lists_without_write_controls(client, logged_in):
    made = service.create("Readable", None, SYSTEM, ["a"])
    logged_in("support")
    assert "New list" not in client.get("/audiences/lists").get_data(as_text=True)
    html = client.get(f"/audiences/lists/{made.id}").get_data(as_text=True)
    assert ">a<" in html and "Delete list" not in html and "Paste userIds" not in html
    assert client.get("/audiences/lists/new").status_code == 403


def test_create_form_errors_and_success(client, logged_in):
    logged_in("marketer")
    token = _token(client, "/audiences/lists/new")
    response = client.post("/audiences/lists/new", data={"csrf_token": token, "name": "   "})
    assert response.status_code == 400 and "Is required." in response.get_data(as_text=True)
    service.create("Taken", None, SYSTEM)
    response = client.post("/audiences/lists/new", data={"csrf_token": token, "name": "taken"})
    assert response.status_code == 400 and "already the name of another list" in response.get_data(as_text=True)
    response = client.post("/audiences/lists/new", data={"csrf_token": token, "name": "VIPs", "description": "Top"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Created the list “VIPs”" in page and "This list has no members yet." in page


def test_paste_shows_problems_by_line_and_adds_nothing_then_adds(client, logged_in):
    logged_in("marketer")
    made = service.create("Paste", None, SYSTEM)
    path = f"/audiences/lists/{made.id}"
    token = _token(client, path)
    response = client.post(f"{path}/members", data={"csrf_token": token, "user_ids": "ok-1\nbad id\nok-2, no good"},
                           headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "Line 2:" in html and "Line 3:" in html and "bad id" in html
    assert members(made.id) == []
    response = client.post(f"{path}/members", data={"csrf_token": token, "user_ids": "ok-1\nok-2, ok-1"})
    assert response.status_code == 302
    page = client.get(path).get_data(as_text=True)
    assert "Added 2 members" in page and re.search(r'data-testid="list-size">2<', page)
    assert members(made.id) == ["ok-1", "ok-2"]


def _upload(client, list_id, data: bytes, htmx=False):
    return client.post(f"/audiences/lists/{list_id}/upload", data={
        "csrf_token": _token(client, f"/audiences/lists/{list_id}"), "file": (io.BytesIO(data), "ids.csv")},
        content_type="multipart/form-data", headers={"HX-Request": "true"} if htmx else {})


def test_upload_preview_shows_row_errors_then_confirm_imports(client, logged_in):
    logged_in("marketer")
    made = service.create("Upload", None, SYSTEM, ["already"])
    response = _upload(client, made.id, b"userId,plan\nalready,x\nnew-1,y\nbad id,z\n=cmd,w\nnew-2,\n", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "3 userIds ready to add" in html and "2 rows rejected" in html
    assert re.search(r'<td class="num">4</td><td class="mono">userId</td><td>&#34;bad id&#34; is not a valid', html)
    assert "Columns ignored" not in html and "Column ignored: plan" in html
    assert members(made.id) == ["already"]  # nothing added by the check
    token = re.search(r"/uploads/([^/]+)/confirm", html).group(1)
    rejected = client.get(f"/audiences/lists/{made.id}/uploads/{token}/rejected.csv").get_data(as_text=True)
    assert rejected.splitlines()[0] == "userId,plan,error" and "'=cmd" in rejected
    response = client.post(f"/audiences/lists/{made.id}/uploads/{token}/confirm",
                           data={"csrf_token": _token(client, f"/audiences/lists/{made.id}")})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Imported 3 userIds (2 new, 1 already in the list)" in page
    assert members(made.id) == ["already", "new-1", "new-2"]
    db.session.expire_all()
    assert db.session.get(UserList, made.id).size == 3


def test_unreadable_upload_full_page_and_htmx(client, logged_in):
    logged_in("marketer")
    made = service.create("Bad file", None, SYSTEM)
    response = _upload(client, made.id, b"name\nx\n")
    assert response.status_code == 400 and "No userId column" in response.get_data(as_text=True)
    response = _upload(client, made.id, b"name\nx\n", htmx=True)
    assert response.status_code == 400 and "No userId column" in response.get_data(as_text=True)


def test_remove_rename_and_delete(client, logged_in):
    logged_in("marketer")
    made = service.create("Old name", None, SYSTEM, ["a", "b"])
    path = f"/audiences/lists/{made.id}"
    token = _token(client, path)
    response = client.post(f"{path}/members/remove", data={"csrf_token": token, "user_id": "a"})
    assert "Removed a from the list" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert members(made.id) == ["b"]
    response = client.post(f"{path}/edit", data={"csrf_token": token, "name": "", "description": "x"})
    assert response.status_code == 400 and "Is required." in response.get_data(as_text=True)
    response = client.post(f"{path}/edit", data={"csrf_token": token, "name": "New <name>", "description": "d"})
    assert "New &lt;name&gt;" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-confirm="Delete the list' in client.get(path).get_data(as_text=True)
    response = client.post(f"{path}/delete", data={"csrf_token": token})
    assert response.headers["Location"].endswith("/audiences/lists")
    assert "Deleted the list" in client.get("/audiences/lists").get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(UserList)) == 0


def _campaign_with_recipients() -> Campaign:
    make_template()
    campaign = campaigns.create({"name": "Spring", "templateId": "promo", "channel": "in_app",
                                 "variables": {"offer": "10%"}}, SYSTEM)
    recipients.add_manual(campaign.id, ["r1", "r2", "r3"], None, SYSTEM)
    db.session.execute(update(Recipient).where(Recipient.campaign_id == campaign.id, Recipient.user_id == "r2")
                       .values(status="sent"))
    db.session.commit()
    return campaign


def test_delete_refused_while_a_draft_uses_the_list(client, logged_in):
    logged_in("marketer")
    made = service.create("In use", None, SYSTEM, ["a"])
    campaign = _campaign_with_recipients()
    db.session.execute(update(Campaign).where(Campaign.id == campaign.id)
                       .values(audience_kind="list", audience_id=made.id))
    db.session.commit()
    path = f"/audiences/lists/{made.id}"
    page = client.get(path).get_data(as_text=True)
    assert "The audience of" in page and ">Spring</a> (draft)" in page
    response = client.post(f"{path}/delete", data={"csrf_token": _token(client, path)})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "“Spring” (draft)" in page and db.session.get(UserList, made.id) is not None


def test_save_recipients_as_a_list_from_the_campaign_page(client, logged_in):
    logged_in("marketer")
    campaign = _campaign_with_recipients()
    page = client.get(f"/campaigns/{campaign.id}").get_data(as_text=True)
    assert "Save recipients as a list" in page and 'value="Spring — recipients"' in page
    url = f"/audiences/lists/from-campaign/{campaign.id}"
    token = csrf_from(page)
    response = client.post(url, data={"csrf_token": token, "name": "Spring sent", "status": "sent"},
                           headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 201 and "Saved 1 recipient as the list" in html
    saved = db.session.scalars(select(UserList).where(UserList.name == "Spring sent")).one()
    assert f'href="/audiences/lists/{saved.id}"' in html and members(saved.id) == ["r2"]
    response = client.post(url, data={"csrf_token": token, "name": "spring SENT", "status": ""},
                           headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "already the name of another list" in html and 'aria-invalid="true"' in html
    response = client.post(url, data={"csrf_token": token, "name": "Everyone of Spring", "status": ""})
    assert response.status_code == 302
    everyone = db.session.scalars(select(UserList).where(UserList.name == "Everyone of Spring")).one()
    assert response.headers["Location"].endswith(f"/audiences/lists/{everyone.id}")
    assert members(everyone.id) == ["r1", "r2", "r3"]


def test_save_as_list_is_hidden_without_recipients_or_for_support(client, logged_in):
    make_template()
    empty = campaigns.create({"name": "Empty", "templateId": "promo", "channel": "in_app"}, SYSTEM)
    logged_in("marketer")
    assert "Save recipients as a list" not in client.get(f"/campaigns/{empty.id}").get_data(as_text=True)


# -- in a real browser (headless Chromium): create, paste, upload with row errors, confirm --------

SHOTS = Path(os.environ.get("HERALD_LIST_SHOTS", "/tmp/shots/lists"))


def _shots(page, name: str) -> None:
    """The page at 1280 px and at 390 px wide (full page), for review."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)  # no sideways scroll
    page.set_viewport_size({"width": 1280, "height": 900})


def test_browser_list_from_empty_index_to_import(page, live_server, make_account, tmp_path):
    from playwright.sync_api import expect

    from tests.test_browser import _sign_in

    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.goto(f"{live_server}/audiences/lists")
    expect(page.get_by_text("No lists yet.")).to_be_visible()
    _shots(page, "lists-index-empty")
    page.get_by_role("link", name="New list").click()
    page.get_by_label("Name").fill("Beta testers")
    page.get_by_label("Description (optional)").fill("Opted in to early features")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_text("Created the list “Beta testers”")).to_be_visible()

    page.get_by_label("Paste userIds").fill("user-1\nnot valid!\nuser-2")
    page.get_by_role("button", name="Add userIds").click()
    expect(page.locator("#list-add-errors")).to_contain_text("Line 2:")
    assert members(db.session.scalars(select(UserList.id)).one()) == []
    page.get_by_label("Paste userIds").fill("user-1\nuser-2, user-1")
    page.get_by_role("button", name="Add userIds").click()
    expect(page.get_by_text("Added 2 members")).to_be_visible()

    path = tmp_path / "more.csv"
    path.write_bytes(b"userId,plan\nuser-2,gold\nuser-3,silver\nbad id,x\n,empty\nuser-4,\n")
    page.get_by_label("Upload a CSV").set_input_files(str(path))
    page.get_by_role("button", name="Check file").click()
    expect(page.get_by_test_id("accepted-count")).to_have_text("3 userIds ready to add")
    expect(page.get_by_test_id("rejected-count")).to_have_text("2 rows rejected")
    errors = page.locator("table.errors")
    expect(errors).to_contain_text('"bad id" is not a valid userId')
    expect(errors).to_contain_text("userId is empty")
    _shots(page, "list-upload-preview-errors")
    page.get_by_role("button", name="Add 3 userIds (skip the rejected rows)").click()
    expect(page.get_by_text("Imported 3 userIds (2 new, 1 already in the list)")).to_be_visible()
    expect(page.get_by_test_id("list-size")).to_have_text("4")
    expect(page.locator("table.list-members tbody tr")).to_have_count(4)
    _shots(page, "list-page")

    page.get_by_role("button", name="Remove user-3").click()
    page.locator("[data-confirm-ok]").click()
    expect(page.get_by_text("Removed user-3 from the list")).to_be_visible()
    assert members(db.session.scalars(select(UserList.id)).one()) == ["user-1", "user-2", "user-4"]

    service.create("Support escalations", "Users with an open ticket", SYSTEM, [f"u{i}" for i in range(1200)])
    page.goto(f"{live_server}/audiences/lists")
    expect(page.locator("table.list-index")).to_contain_text("1,200")
    _shots(page, "lists-index")


def test_browser_save_recipients_as_a_list(page, live_server, make_account):
    from playwright.sync_api import expect

    from tests.test_browser import _sign_in

    campaign = _campaign_with_recipients()
    marketer = make_account("marketer")
    _sign_in(page, live_server, marketer.email)
    page.goto(f"{live_server}/campaigns/{campaign.id}")
    section = page.locator("#save-as-list")
    expect(section.get_by_label("List name")).to_have_value("Spring — recipients")
    _shots(page, "campaign-with-save-as-list")
    page.set_viewport_size({"width": 390, "height": 900})
    section.screenshot(path=str(SHOTS / "campaign-save-as-list-form-390.png"))
    page.set_viewport_size({"width": 1280, "height": 900})
    section.screenshot(path=str(SHOTS / "campaign-save-as-list-form-1280.png"))
    section.get_by_label("Who").select_option("sent")
    section.get_by_role("button", name="Save as a list").click()
    expect(section).to_contain_text("Saved 1 recipient as the list")
    section.screenshot(path=str(SHOTS / "campaign-save-as-list-done.png"))
    section.get_by_role("link", name="Spring — recipients").click()
    expect(page.get_by_test_id("list-size")).to_have_text("1")
    expect(page.locator("table.list-members")).to_contain_text("r2")
