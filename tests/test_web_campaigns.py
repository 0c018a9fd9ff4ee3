import io
import re

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.test_api_campaigns import make_template

SYSTEM = Actor.system("test")


def _token(client, path):
    return csrf_from(client.get(path).get_data(as_text=True))


def _new_campaign(client, **fields) -> int:
    data = {"csrf_token": _token(client, "/campaigns/new"), "name": "Promo blast", "template_id": "promo",
            "channel": "in_app", "delivery_mode": "batch", "failure_threshold": "50", "var-offer": "5% off"}
    data.update(fields)
    response = client.post("/campaigns/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def _upload(client, cid, data: bytes):
    return client.post(f"/campaigns/{cid}/upload", data={
        "csrf_token": _token(client, f"/campaigns/{cid}"), "file": (io.BytesIO(data), "list.csv")},
        content_type="multipart/form-data")


def test_form_creates_draft_with_defaults(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    campaign = db.session.get(Campaign, cid)
    assert (campaign.name, campaign.variables, campaign.failure_threshold) == ("Promo blast", {"offer": "5% off"}, 0.5)
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert "Now add recipients" in page and "No recipients yet." in page


def test_form_errors_and_template_defaults_partial(client, logged_in):
    make_template()
    logged_in("marketer")
    response = client.post("/campaigns/new", data={"csrf_token": _token(client, "/campaigns/new"), "name": "",
                                                   "template_id": "promo", "channel": "in_app",
                                                   "delivery_mode": "batch", "var-banner": "nope"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "a name is required" in html and "banner must be an http(s) URL" in html
    partial = client.get("/campaigns/_defaults?template_id=promo").get_data(as_text=True)
    assert 'name="var-offer"' in partial and "required" in partial


def test_manual_add_textarea(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    response = client.post(f"/campaigns/{cid}/recipients", data={
        "csrf_token": _token(client, f"/campaigns/{cid}"), "user_ids": "a1\na2, a3 ,a1\n\n"})
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "Added 3 recipients, merged 1 duplicate. Total: 3." in page
    typed = "ok9\nbad id!, ok10\n\nsemi;colon"
    response = client.post(f"/campaigns/{cid}/recipients", data={
        "csrf_token": _token(client, f"/campaigns/{cid}"), "user_ids": typed})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "2 user IDs are not valid; nothing was added." in page
    assert "line 2: &#34;bad id!&#34; is not a valid userId" in page
    assert "line 4: &#34;semi;colon&#34; is not a valid userId" in page
    assert re.search(r">\s*ok9\r?\nbad id!, ok10\r?\n\r?\nsemi;colon</textarea>", page)  # the text stays
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 3


def test_manual_add_refuses_ids_without_a_required_value_then_sets_the_default(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client, **{"var-offer": ""})
    data = {"csrf_token": _token(client, f"/campaigns/{cid}"), "user_ids": "u1\nu2"}
    response = client.post(f"/campaigns/{cid}/recipients", data=data, headers={"HX-Request": "true"})
    fragment = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was added: offer is required" in fragment and "these 2 user IDs" in fragment
    assert 'name="default-offer"' in fragment and re.search(r">\s*u1\r?\nu2</textarea>", fragment)
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
    response = client.post(f"/campaigns/{cid}/recipients", data={**data, "default-offer": "15% off"},
                           headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"].endswith(f"/campaigns/{cid}#recipients")
    assert response.headers["HX-Refresh"] == "true"
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 2
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert "Added 2 recipients (campaign default set for offer)" in page and "15% off" in page


def test_review_lists_recipients_missing_a_required_value(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    recipients.add_manual(cid, ["a", "b", "c"], {"b": {"offer": "x"}}, SYSTEM)
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert "missing-vars" not in page
    campaigns.edit(cid, {"variables": {}}, SYSTEM)
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert "2 recipients have no value for offer" in page and "a, c" in page
    assert f"/campaigns/{cid}/edit#var-offer" in page


def test_upload_preview_confirm_and_rejected_download(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    response = _upload(client, cid, b"userId,offer\nu1,x\nbad id,y\n=cmd,z\n")
    html = response.get_data(as_text=True)
    assert "1 ready to import" in html and "2 rows rejected" in html
    token = re.search(r"/uploads/([^/]+)/confirm", html).group(1)
    rejected = client.get(f"/campaigns/{cid}/uploads/{token}/rejected.csv").get_data(as_text=True)
    assert rejected.splitlines() == ["userId,offer,error",
                                     'bad id,y,"""bad id"" is not a valid userId (1-128 characters: letters, '
                                     'digits and _ - . @ :)"',
                                     "'=cmd,z,\"\"\"=cmd\"\" is not a valid userId (1-128 characters: letters, "
                                     "digits and _ - . @ :)\""]
    assert db.session.scalar(select(func.count()).select_from(Recipient)) == 0
    response = client.post(f"/campaigns/{cid}/uploads/{token}/confirm",
                           data={"csrf_token": _token(client, f"/campaigns/{cid}")})
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "Imported 1 recipients" in page
    assert db.session.scalars(select(Recipient.user_id)).all() == ["u1"]
    # The rejected rows stay downloadable after the import.
    assert client.get(f"/campaigns/{cid}/uploads/{token}/rejected.csv").status_code == 200


def test_changed_campaign_invalidates_staged_upload(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    html = _upload(client, cid, b"userId,offer\nu1,x\n").get_data(as_text=True)
    token = re.search(r"/uploads/([^/]+)/confirm", html).group(1)
    client.post(f"/campaigns/{cid}/recipients", data={"csrf_token": _token(client, f"/campaigns/{cid}"),
                                                      "user_ids": "someone"})
    response = client.post(f"/campaigns/{cid}/uploads/{token}/confirm",
                           data={"csrf_token": _token(client, f"/campaigns/{cid}")})
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "The campaign changed after this file was checked" in page
    assert db.session.scalars(select(Recipient.user_id)).all() == ["someone"]


def test_unreadable_upload_shows_one_clear_error(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    response = _upload(client, cid, b"\x89PNG\r\n\x1a\n\x00\x00")
    assert response.status_code == 400
    assert "This looks like a binary file" in response.get_data(as_text=True)
    response = client.post(f"/campaigns/{cid}/upload", data={"csrf_token": _token(client, f"/campaigns/{cid}")},
                           headers={"HX-Request": "true"})
    assert response.status_code == 400 and "Choose a CSV file" in response.get_data(as_text=True)
    assert "<html" not in response.get_data(as_text=True)  # an HTMX fragment, not a page


def test_non_draft_pages_refuse_changes_with_clear_message(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    campaign = db.session.get(Campaign, cid)
    campaign.status = "sending"
    db.session.commit()
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert "Delete draft" not in page and "Add recipients" not in page
    response = client.get(f"/campaigns/{cid}/edit")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "This campaign is sending; only drafts can be changed." in page
    response = client.post(f"/campaigns/{cid}/recipients/clear",
                           data={"csrf_token": _token(client, f"/campaigns/{cid}")})
    page = client.get(response.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "Campaign is sending; only drafts can be changed." in page
    response = _upload(client, cid, b"userId,offer\nu1,x\n")
    assert response.status_code == 409 and "only drafts can be changed" in response.get_data(as_text=True)


def test_delete_draft_from_page(client, logged_in):
    make_template()
    logged_in("marketer")
    cid = _new_campaign(client)
    page = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert 'data-confirm="Delete the draft' in page
    response = client.post(f"/campaigns/{cid}/delete", data={"csrf_token": csrf_from(page)})
    assert "Draft “Promo blast” deleted." in client.get(response.headers["Location"]).get_data(as_text=True)
    assert db.session.get(Campaign, cid) is None


def test_support_sees_campaign_but_no_write_controls(client, logged_in, make_account):
    make_template()
    from dashboard.services import campaigns, recipients
    from dashboard.services.actor import Actor

    c = campaigns.create({"name": "C", "templateId": "promo", "variables": {"offer": "5%"}}, Actor.system("t"))
    recipients.add_manual(c.id, ["u1"], None, Actor.system("t"))
    logged_in("support")
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert "u1" in page and "Add recipients" not in page and "Clear all" not in page
    assert client.get("/campaigns/new").status_code == 403
    token = csrf_from(page)
    for path in (f"/campaigns/{c.id}/delete", f"/campaigns/{c.id}/recipients", f"/campaigns/{c.id}/upload",
                 f"/campaigns/{c.id}/recipients/clear", f"/campaigns/{c.id}/edit", "/campaigns/new"):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert client.get(f"/campaigns/{c.id}/recipients.csv").status_code == 200


def test_recipients_partial_filters_and_escapes(client, logged_in):
    make_template()
    from dashboard.services import campaigns, recipients
    from dashboard.services.actor import Actor

    c = campaigns.create({"name": "<script>alert(1)</script>", "templateId": "promo"}, Actor.system("t"))
    recipients.add_manual(c.id, ["alpha", "beta"], {"alpha": {"offer": "<img src=x onerror=alert(1)>"},
                                                   "beta": {"offer": "x"}},
                          Actor.system("t"))
    logged_in("marketer")
    html = client.get(f"/campaigns/{c.id}/_recipients?userId=al").get_data(as_text=True)
    assert "alpha" in html and "beta" not in html and "<html" not in html
    assert "<img src=x" not in html and "&lt;img src=x" in html
    for path in ("/campaigns", f"/campaigns/{c.id}"):
        assert "<script>alert(1)</script>" not in client.get(path).get_data(as_text=True)


def test_preview_as_any_recipient(client, logged_in):
    make_template()
    from dashboard.services import campaigns, recipients
    from dashboard.services.actor import Actor

    c = campaigns.create({"name": "P", "templateId": "promo", "variables": {"offer": "5%"}}, Actor.system("t"))
    recipients.add_manual(c.id, ["first", "vip"], {"vip": {"firstName": "<Val>", "offer": "50%"}}, Actor.system("t"))
    logged_in("support")
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert "Preview as a recipient" in page and "Hi there" in page  # the first recipient by default
    html = client.get(f"/campaigns/{c.id}/_preview?previewUser=vip").get_data(as_text=True)
    assert "Hi &lt;Val&gt;" in html and "50% " in html and "<html" not in html
    assert "is not a recipient" in client.get(f"/campaigns/{c.id}/_preview?previewUser=ghost").get_data(as_text=True)


def test_a_refused_schedule_keeps_the_date_and_zone_typed(client, logged_in):
    from tests.test_sending import make_campaign

    c = make_campaign(3)
    logged_in("marketer")
    token = csrf_from(client.get(f"/campaigns/{c.id}").get_data(as_text=True))
    response = client.post(f"/campaigns/{c.id}/send", data={"csrf_token": token, "intent": "schedule",
                                                            "scheduled_local": "2020-01-02T10:30",
                                                            "timezone": "Asia/Tokyo"})
    assert response.status_code == 302
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert "in the past" in page
    assert 'value="2020-01-02T10:30"' in page
    assert re.search(r'<option value="Asia/Tokyo"[^>]*selected', page)
    again = client.get(f"/campaigns/{c.id}").get_data(as_text=True)  # shown once, like the message
    assert 'value="2020-01-02T10:30"' not in again
    assert db.session.get(Campaign, c.id).status == "draft"
