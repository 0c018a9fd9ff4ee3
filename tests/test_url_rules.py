"""imageUrl/actionUrl resolve to http(s) URLs: checked when a template is saved (literals and
the literal start around placeholders), when values come in (campaign defaults, manual
recipients, CSV rows) and again on the rendered message at send, where a bad URL fails that
recipient alone with a plain reason."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from dashboard import rendering
from dashboard.extensions import db
from dashboard.models import Campaign, Notification, Recipient, Template
from dashboard.services import recipients
from tests.conftest import csrf_from
from tests.engine import drain
from tests.test_api_campaigns import make_template

SCHEMA = [
    {"key": "offer", "type": "string"},
    {"key": "banner", "type": "image"},
    {"key": "cta", "type": "action"},
    {"key": "link", "type": "string"},
    {"key": "path", "type": "string"},
]


def links_template(action_url: str = "{{ link }}", image_url: str = "{{ banner }}") -> None:
    make_template("links", channels={"in_app": {"title": "Hi", "body": "{{ offer }}", "imageUrl": image_url,
                                                "actionUrl": action_url}}, schema=SCHEMA)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def details(response) -> list[dict]:
    assert response.status_code == 400, response.get_data(as_text=True)
    return response.get_json()["error"]["details"]


def template_body(action_url: str, image_url: str = "") -> dict:
    content = {"title": "Hi", "body": "{{ offer }}", "actionUrl": action_url}
    if image_url:
        content["imageUrl"] = image_url
    return {"name": "Links", "channels": {"in_app": content}, "variableSchema": SCHEMA}


# --- template save ---------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "javascript:alert(1)//{{ offer }}", "javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,{{ offer }}",
    "https:/{{ offer }}", "ftp://files.test/{{ path }}", "//evil.test/{{ path }}", "https://exa mple.test/{{ path }}",
    "vbscript:{{ offer }}", "mailto:{{ offer }}",
])
def test_url_fields_must_start_with_http_or_a_placeholder(api, url):
    for field, body in (("actionUrl", template_body(url)), ("imageUrl", template_body("", image_url=url))):
        problems = details(api("POST", "/templates", body))
        assert [p["field"] for p in problems] == [f"channels.in_app.{field}"]
        assert "http" in problems[0]["message"]
    assert count(Template) == 0


@pytest.mark.parametrize("url", ["{{ cta }}", "{{link}}/deals", "https://shop.test/{{ path }}?ref={{ offer }}",
                                 "HTTPS://{{ path }}.shop.test", "http://shop.test", "{{ link }}{{ path }}"])
def test_url_fields_that_start_well_are_saved(api, url):
    assert api("POST", "/templates", template_body(url, image_url=url)).status_code == 201


def test_a_default_that_starts_a_url_must_be_an_http_url(api):
    schema = [{"key": "link", "type": "string", "defaultValue": "javascript:alert(1)"}, {"key": "offer"}]
    body = {**template_body("{{ link }}"), "variableSchema": schema}
    assert details(api("POST", "/templates", body)) == [{
        "field": "variableSchema[0].defaultValue",
        "message": "must be an http(s) URL: {{ link }} starts an image or action URL"}]
    schema[0]["defaultValue"] = "https://shop.test"
    assert api("POST", "/templates", body).status_code == 201
    # ... but a default in the middle of a URL is just text: it cannot change the scheme.
    schema[0]["defaultValue"] = "javascript:alert(1)"
    assert api("POST", "/templates", {**template_body("https://shop.test/{{ link }}"), "name": "Mid",
                                      "variableSchema": schema}).status_code == 201


def test_template_form_shows_the_url_error_next_to_the_field(client, logged_in):
    logged_in("marketer")
    token = csrf_from(client.get("/templates/new").get_data(as_text=True))
    response = client.post("/templates/new", data={
        "csrf_token": token, "name": "Links", "in_app_enabled": "y", "in_app_title": "Hi", "in_app_body": "x",
        "in_app_action_url": "javascript:alert(1)//{{ firstName }}",
        "variables-0-key": "firstName", "variables-0-type": "string"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="in_app_action_url-error">must start with http:// or https://', html)
    assert count(Template) == 0


# --- values: campaign defaults, manual recipients, CSV ---------------------------------------

@pytest.mark.parametrize("variables,field", [
    ({"link": "javascript:alert(1)"}, "variables.link"),
    ({"banner": "javascript:alert(1)"}, "variables.banner"),
    ({"cta": "javascript:alert(1)"}, "variables.cta"),
    ({"link": {"type": "custom", "data": "javascript:alert(1)"}}, "variables.link"),
])
def test_campaign_defaults_that_start_a_url_must_be_http_urls(api, variables, field):
    links_template()
    problems = details(api("POST", "/campaigns", {"name": "C", "templateId": "links", "variables": variables}))
    assert [p["field"] for p in problems] == [field]
    assert count(Campaign) == 0


def test_custom_actions_and_mid_url_text_stay_allowed_where_they_cannot_start_a_url(api):
    links_template(action_url="https://shop.test/{{ path }}")
    response = api("POST", "/campaigns", {"name": "C", "templateId": "links", "variables": {
        "path": "javascript:alert(1)", "cta": {"type": "custom", "data": "open-settings"}}})
    assert response.status_code == 201, response.get_json()


def test_dashboard_campaign_default_refused(client, logged_in):
    links_template()
    logged_in("marketer")
    token = csrf_from(client.get("/campaigns/new").get_data(as_text=True))
    response = client.post("/campaigns/new", data={
        "csrf_token": token, "name": "C", "template_id": "links", "channel": "in_app", "delivery_mode": "batch",
        "failure_threshold": "50", "var-link": "javascript:alert(1)"})
    assert response.status_code == 400
    assert "link must be an http(s) URL" in response.get_data(as_text=True)
    assert count(Campaign) == 0


def test_manual_recipient_values_refused(api):
    links_template()
    cid = api("POST", "/campaigns", {"name": "C", "templateId": "links"}).get_json()["id"]
    problems = details(api("POST", f"/campaigns/{cid}/recipients", {
        "userIds": ["u1", "u2"], "userVariables": {"u2": {"link": "javascript:alert(1)"}}}))
    assert problems == [{"field": "userVariables.u2.link", "message": "link must be an http(s) URL"}]
    assert count(Recipient) == 0


CSV = (b"userId,offer,link,banner\n"
       b"u1,x,javascript:alert(1),\n"
       b"u2,x,https://shop.test,\"data:image/png;base64,AAAA\"\n"
       b"u3,x,https://shop.test,https://cdn.test/a.png\n")


def test_csv_url_values_are_row_errors_in_the_api_preview(api):
    links_template()
    cid = api("POST", "/campaigns", {"name": "C", "templateId": "links"}).get_json()["id"]
    response = api("POST", f"/campaigns/{cid}/recipients/upload?dryRun=true", None,
                   data={"file": (io.BytesIO(CSV), "list.csv")}, content_type="multipart/form-data")
    body = response.get_json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert body["errors"] == [{"row": 2, "column": "link", "message": "link must be an http(s) URL"},
                              {"row": 3, "column": "banner", "message": "banner must be an http(s) URL"}]
    assert count(Recipient) == 0


def test_csv_url_values_in_the_dashboard_preview_and_confirm(client, logged_in, api):
    links_template()
    cid = api("POST", "/campaigns", {"name": "C", "templateId": "links"}).get_json()["id"]
    logged_in("marketer")
    token = csrf_from(client.get(f"/campaigns/{cid}").get_data(as_text=True))
    html = client.post(f"/campaigns/{cid}/upload", data={"csrf_token": token, "file": (io.BytesIO(CSV), "l.csv")},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "1 ready to import" in html and "2 rows rejected" in html
    assert "link must be an http(s) URL" in html and "banner must be an http(s) URL" in html
    staged = re.search(r"/uploads/([^/]+)/confirm", html).group(1)
    client.post(f"/campaigns/{cid}/uploads/{staged}/confirm", data={"csrf_token": token})
    assert db.session.scalars(select(Recipient.user_id)).all() == ["u3"]


# --- render time -------------------------------------------------------------------------------

def _send_and_drain(api, cid: int) -> Campaign:
    assert api("POST", f"/campaigns/{cid}/send").status_code == 202
    drain()
    db.session.expire_all()
    return db.session.get(Campaign, cid)


def _outcome() -> dict[str, tuple[str, str | None]]:
    return {u: (s, e) for u, s, e in db.session.execute(select(Recipient.user_id, Recipient.status,
                                                               Recipient.last_error)).all()}


def test_a_rendered_action_url_that_is_not_http_fails_that_recipient_only(api):
    links_template(action_url="{{ link }}{{ path }}")  # only `link` starts the URL: `path` is checked at send
    cid = api("POST", "/campaigns", {"name": "C", "templateId": "links"}).get_json()["id"]
    response = api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["good", "bad"], "userVariables": {
        "good": {"link": "https://shop.test", "path": "/deals"}, "bad": {"path": "javascript:alert(1)"}}})
    assert response.status_code == 200, response.get_json()
    campaign = _send_and_drain(api, cid)
    assert _outcome() == {"good": ("sent", None), "bad": ("failed", "actionUrl is not an http(s) URL")}
    assert (campaign.status, campaign.sent, campaign.failed) == ("sent", 1, 1)
    assert db.session.scalars(select(Notification.action_url)).all() == ["https://shop.test/deals"]


def test_values_stored_before_the_rule_are_caught_at_send(api):
    links_template(action_url="{{ cta }}", image_url="https://cdn.test/{{ path }}")
    cid = api("POST", "/campaigns", {"name": "C", "templateId": "links"}).get_json()["id"]
    # Rows written straight to the table, as rows from before this rule (or a bug) would be.
    recipients.bulk_upsert(cid, [("ok", {"cta": "https://shop.test", "path": "a.png"}, None),
                                 ("js", {"cta": "javascript:alert(1)", "path": "a.png"}, None),
                                 ("space", {"cta": "https://shop.test", "path": "a b.png"}, None)])
    recipients.recount(db.session.get(Campaign, cid))
    db.session.commit()
    campaign = _send_and_drain(api, cid)
    assert _outcome() == {"ok": ("sent", None), "js": ("failed", "actionUrl is not an http(s) URL"),
                          "space": ("failed", "imageUrl is not an http(s) URL")}
    assert (campaign.status, campaign.sent, campaign.failed, campaign.pending) == ("sent", 1, 2, 0)
    assert count(Notification) == 1


# --- the helpers' contract ---------------------------------------------------------------------

def test_url_keys_are_the_placeholders_that_start_a_url_field():
    channels = {"in_app": {"title": "{{ a }}", "imageUrl": " {{ b }}/x", "actionUrl": "https://x.test/{{ c }}"},
                "email": {"subject": "{{ d }}"}}
    assert rendering.url_keys(channels) == {"b"}
