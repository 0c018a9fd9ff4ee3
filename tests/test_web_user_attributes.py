"""The dashboard side of user attributes: the Users CSV import preview (types, samples, row
errors, changing a type, confirm) and the user page's attributes (shown by type, set, remove)."""

from __future__ import annotations

import html as htmllib
import io
import os
import re
from pathlib import Path

from dashboard.extensions import db
from dashboard.models import User
from dashboard.services import attributes, users
from tests.conftest import csrf_from

CSV = (b"userId,name,plan,seats,vip,signup,score\n"
       b"u1,Ann,gold,3,yes,2026-01-05,1.5\n"
       b"u2,Bo,free,x,no,2026-02-30,-2\n"
       b"u3,Cy,<b>pro</b>,10,NO,2026-03-01,0\n")


def _upload(client, data: bytes = CSV):
    token = csrf_from(client.get("/users").get_data(as_text=True))
    response = client.post("/users/import", data={"csrf_token": token, "file": (io.BytesIO(data), "u.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 302
    return response.headers["Location"], token


def _selected(html: str, column: str) -> str:
    select = re.search(rf'<select id="type-{column}".*?</select>', html, re.S).group()
    return re.search(r'<option value="(\w+)" selected', select).group(1)


def _text(html: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _attrs(user_id):
    db.session.expire_all()
    user = db.session.get(User, user_id)
    return user.attributes if user else None


def test_preview_shows_inferred_types_samples_and_row_errors_and_saves_nothing(client, logged_in):
    logged_in("marketer")
    users.upsert([{"userId": "u0", "attributes": {"score": 1}}])  # a registered type is shown fixed
    location, _ = _upload(client)
    html = client.get(location).get_data(as_text=True)
    assert "3 rows: 3 ready" in _text(html) and "Row errors" not in html  # the detected types fit every cell
    assert _selected(html, "plan") == "string"
    assert _selected(html, "seats") == "string"  # "x" is not a number, so the column reads as text
    assert _selected(html, "vip") == "boolean"
    assert _selected(html, "signup") == "string"  # 2026-02-30 is not a real day
    assert 'id="type-score"' not in html and '<span class="badge badge-muted"' in html
    assert "&lt;b&gt;pro&lt;/b&gt;" in html and "<b>pro</b>" not in html
    assert "<code>gold</code><code>free</code>" in html
    assert db.session.get(User, "u1") is None and "plan" not in attributes.types()


def test_changing_a_type_rechecks_the_rows(client, logged_in):
    logged_in("marketer")
    location, _ = _upload(client)
    html = client.get(location + "/preview", query_string={"type-seats": "number", "type-signup": "date"},
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert not html.lstrip().startswith("<!doctype")  # the partial only
    assert _selected(html, "seats") == "number" and _selected(html, "signup") == "date"
    rows = re.findall(r"<tr><td>(\d+)</td><td class=\"mono\">(\w+)</td><td><code>([^<]*)</code></td><td>([^<]*)</td>",
                      htmllib.unescape(html))
    assert rows == [("3", "seats", "x", '"x" is not a number'),
                    ("3", "signup", "2026-02-30", '"2026-02-30" is not a date (YYYY-MM-DD, a real day)')]
    assert "3 rows: 2 ready, 1 with errors" in _text(html)
    assert db.session.get(User, "u1") is None


def test_confirm_imports_the_good_rows_with_the_chosen_types(client, logged_in):
    logged_in("marketer")
    users.upsert([{"userId": "u1", "attributes": {"kept": "yes"}}])
    location, token = _upload(client)
    done = client.post(location, data={"csrf_token": token, "type-seats": "number", "type-signup": "date",
                                       "type-vip": "boolean", "type-plan": "string"})
    page = _text(client.get(done.headers["Location"]).get_data(as_text=True))
    assert "1 new, 1 updated. 1 rows skipped (row 3: seats: \"x\" is not a number; signup: " in page
    assert _attrs("u1") == {"kept": "yes", "plan": "gold", "seats": 3, "vip": True, "signup": "2026-01-05",
                            "score": 1.5}
    assert _attrs("u3") == {"plan": "<b>pro</b>", "seats": 10, "vip": False, "signup": "2026-03-01", "score": 0}
    assert db.session.get(User, "u2") is None
    assert attributes.types() == {"kept": "string", "plan": "string", "seats": "number", "vip": "boolean",
                                  "signup": "date", "score": "number"}
    assert client.post(location, data={"csrf_token": token}).status_code == 302  # token used up
    assert client.get(location).status_code == 404


def test_a_column_that_cannot_be_an_attribute_blocks_the_import(client, logged_in):
    logged_in("marketer")
    location, token = _upload(client, b"userId,first name\nu1,Al\n")
    html = client.get(location).get_data(as_text=True)
    assert "not a valid attribute name" in html
    assert re.search(r'<button class="btn btn-primary" type="submit"\s+disabled', html)
    client.post(location, data={"csrf_token": token})
    assert db.session.get(User, "u1") is None


def test_the_size_limit_is_checked_before_parsing(client, logged_in):
    logged_in("marketer")
    token = csrf_from(client.get("/users").get_data(as_text=True))
    big = b"userId,plan\n" + b"u1,gold\n" * (26 * 1024 * 1024 // 8)
    response = client.post("/users/import", data={"csrf_token": token, "file": (io.BytesIO(big), "u.csv")},
                           content_type="multipart/form-data", follow_redirects=True)
    assert response.status_code == 413 and "larger than the allowed maximum (25 MB)" in response.get_data(as_text=True)
    assert db.session.get(User, "u1") is None


def test_user_page_shows_sets_and_removes_attributes(client, logged_in):
    logged_in("marketer")
    users.upsert([{"userId": "u1", "name": "Ann", "email": "a@example.com",
                   "attributes": {"seats": 1200, "vip": True, "signup": "2026-03-01", "plan": "<i>gold</i>"}}])
    html = client.get("/users/u1").get_data(as_text=True)
    assert "1,200" in html and '<time datetime="2026-03-01">1 Mar 2026</time>' in html
    assert "&lt;i&gt;gold&lt;/i&gt;" in html and ">yes<" in html
    token = csrf_from(html)
    bad = client.post("/users/u1/attributes", data={"csrf_token": token, "name": "seats", "type": "string",
                                                    "value": "many"})
    assert bad.status_code == 400
    assert 'id="attr-value-error">seats is a number attribute; "many" is not a number' in \
        htmllib.unescape(bad.get_data(as_text=True))
    bad_name = client.post("/users/u1/attributes", data={"csrf_token": token, "name": "email", "type": "string",
                                                         "value": "x"})
    assert bad_name.status_code == 400 and 'id="attr-name-error"' in bad_name.get_data(as_text=True)
    ok = client.post("/users/u1/attributes", data={"csrf_token": token, "name": "renewal", "type": "date",
                                                   "value": "2027-01-31"})
    assert ok.status_code == 302
    client.post("/users/u1/attributes", data={"csrf_token": token, "name": "seats", "type": "string", "value": "7"})
    assert _attrs("u1") == {"seats": 7, "vip": True, "signup": "2026-03-01", "plan": "<i>gold</i>",
                            "renewal": "2027-01-31"}
    assert attributes.types()["renewal"] == "date"
    client.post("/users/u1/attributes/remove", data={"csrf_token": token, "name": "vip"})
    assert "vip" not in _attrs("u1")
    db.session.expire_all()
    assert db.session.get(User, "u1").email == "a@example.com"  # directory columns untouched


def test_support_reads_attributes_but_cannot_change_them(client, logged_in):
    users.upsert([{"userId": "u1", "attributes": {"plan": "gold"}}])
    logged_in("support")
    html = client.get("/users/u1").get_data(as_text=True)
    assert "gold" in html and "Set an attribute" not in html and "Remove" not in html
    token = csrf_from(html)
    assert client.post("/users/u1/attributes", data={"csrf_token": token, "name": "plan",
                                                     "value": "x"}).status_code == 403
    assert client.post("/users/u1/attributes/remove", data={"csrf_token": token, "name": "plan"}).status_code == 403
    assert _attrs("u1") == {"plan": "gold"}


def test_attribute_forms_need_the_csrf_token(client, logged_in):
    logged_in("marketer")
    users.upsert([{"userId": "u1", "attributes": {"plan": "gold"}}])
    assert client.post("/users/u1/attributes", data={"name": "plan", "value": "x"}).status_code == 400
    assert client.post("/users/u1/attributes/remove", data={"name": "plan"}).status_code == 400
    location, _ = _upload(client)
    assert client.post(location, data={}).status_code == 400
    assert _attrs("u1") == {"plan": "gold"} and _attrs("u2") is None


def test_unknown_user_has_no_attribute_form(client, logged_in):
    logged_in("marketer")
    html = client.get("/users/ghost").get_data(as_text=True)
    assert "Set an attribute" not in html
    token = csrf_from(html)
    assert client.post("/users/ghost/attributes", data={"csrf_token": token, "name": "a", "type": "string",
                                                        "value": "x"}).status_code == 404


SHOTS = Path(os.environ.get("HERALD_SHOTS_ATTRS", "/tmp/shots/attrs"))


def test_browser_import_preview_rechecks_on_type_change_and_user_page_edits(browser, live_server, make_account,
                                                                             tmp_path):
    from playwright.sync_api import expect

    from tests.conftest import PASSWORD

    account = make_account("marketer")
    users.upsert([{"userId": "customer-000123456789", "name": "Ann", "email": "ann@example.com",
                   "attributes": {"tier": "gold", "licences": 1200, "beta": True, "renewal": "2026-03-01",
                                  "lifetime_value_eur": 1234.5}}])
    csv_file = tmp_path / "users.csv"
    csv_file.write_bytes(CSV + b"u4,Di,pro,7,yes,2026-04-01,3\n")
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill(account.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{live_server}/users")
        page.get_by_label("CSV file").set_input_files(str(csv_file))
        page.get_by_role("button", name="Check file").click()
        expect(page.get_by_role("heading", name="4 rows: 4 ready")).to_be_visible()
        page.get_by_label("Type of seats").select_option("number")
        expect(page.get_by_role("heading", name="4 rows: 3 ready, 1 with errors")).to_be_visible()
        expect(page.get_by_role("cell", name='"x" is not a number')).to_be_visible()
        expect(page.get_by_label("Type of seats")).to_have_value("number")
        page.screenshot(path=str(SHOTS / f"users-import-preview-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.goto(f"{live_server}/users/customer-000123456789")
        expect(page.get_by_role("cell", name="1,200")).to_be_visible()
        page.get_by_label("Name", exact=True).fill("licences")
        page.get_by_role("textbox", name="Value").fill("lots")
        page.get_by_role("button", name="Save attribute").click()
        expect(page.locator("#attr-value-error")).to_have_text('licences is a number attribute; "lots" is not a number')
        page.screenshot(path=str(SHOTS / f"user-page-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        context.close()
    # nothing was imported by previewing
    assert db.session.get(User, "u1") is None
