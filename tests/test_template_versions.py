"""Templates and versions (issue 13): the live/draft state, campaigns picking an approved version
and sending it, sample values saved with the template, the editor's live schema check."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from dashboard import queries
from dashboard.errors import ValidationError
from dashboard.extensions import db
from dashboard.models import Campaign, Notification, Recipient, utcnow
from dashboard.services import campaigns, lifecycle, recipients, templates
from dashboard.services.actor import Actor
from tests.conftest import csrf_from
from tests.engine import drain

ACTOR = Actor.system("test")


def two_versions(approve_v2: bool = False):
    """"news": v1 approved (firstName, offer, store), v2 an edit that drops offer and adds city."""
    templates.create({"name": "News", "templateId": "news",
                      "channels": {"in_app": {"title": "v1 {{ firstName }}", "body": "{{ offer }} at {{ store }}"}},
                      "variableSchema": [{"key": "firstName", "defaultValue": "there", "sample": "Ana"},
                                         {"key": "offer", "required": True, "sample": "20% off"},
                                         {"key": "store", "defaultValue": "our shop"}]}, ACTOR)
    templates.transition("news", "approve", ACTOR)
    templates.update("news", {"channels": {"in_app": {"title": "v2 {{ firstName }}", "body": "in {{ city }}"}},
                              "variableSchema": [{"key": "firstName", "defaultValue": "there"},
                                                {"key": "city", "defaultValue": "town"}]},
                     ACTOR)
    if approve_v2:
        templates.transition("news", "approve", ACTOR)
    return templates.get("news")


def fresh(campaign_id: int) -> Campaign:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id)


def test_version_state_reads_live_and_draft():
    templates.create({"name": "A", "channels": {"in_app": {"title": "t", "body": "b"}}}, ACTOR)
    state = templates.version_state(templates.get("a"))
    assert (state["live"], state["draft"].version) == (None, 1)
    templates.transition("a", "approve", ACTOR)
    state = templates.version_state(templates.get("a"))
    assert (state["live"].version, state["draft"]) == (1, None)
    templates.update("a", {"name": "A2"}, ACTOR)
    state = templates.version_state(templates.get("a"))
    assert (state["live"].version, state["draft"].version) == (1, 2)
    templates.transition("a", "archive", ACTOR)
    state = templates.version_state(templates.get("a"))
    assert state["archived"] and state["live"] is None and state["draft"] is None


def test_campaign_sends_the_approved_version_while_a_newer_draft_waits(app):
    two_versions()
    campaign = campaigns.create({"name": "C", "templateId": "news", "variables": {"offer": "5%"}}, ACTOR)
    assert campaign.template_version is None  # newest approved at send
    recipients.add_manual(campaign.id, ["u1"], None, ACTOR)
    sent = lifecycle.send(campaign.id, None, ACTOR)
    assert sent.template_version == 1
    drain()
    note = db.session.scalar(select(Notification).where(Notification.user_id == "u1"))
    assert (note.title, note.body) == ("v1 there", "5% at our shop")


def test_a_picked_version_is_kept_and_sent_after_a_newer_one_is_approved(app):
    two_versions(approve_v2=True)
    picked = campaigns.create({"name": "Old", "templateId": "news", "templateVersion": 1,
                               "variables": {"offer": "7%"}}, ACTOR)
    newest = campaigns.create({"name": "New", "templateId": "news"}, ACTOR)
    assert (picked.template_version, newest.template_version) == (1, None)
    for c in (picked, newest):
        recipients.add_manual(c.id, [f"user-{c.id}"], None, ACTOR)
    assert lifecycle.send(picked.id, None, ACTOR).template_version == 1
    assert lifecycle.send(newest.id, None, ACTOR).template_version == 2
    drain()
    titles = dict(db.session.execute(select(Notification.user_id, Notification.title)).all())
    assert titles == {f"user-{picked.id}": "v1 there", f"user-{newest.id}": "v2 there"}


def test_unschedule_keeps_the_picked_version(app):
    two_versions(approve_v2=True)
    c = campaigns.create({"name": "C", "templateId": "news", "templateVersion": 1,
                          "variables": {"offer": "7%"}}, ACTOR)
    recipients.add_manual(c.id, ["u1"], None, ACTOR)
    lifecycle.send(c.id, (utcnow() + timedelta(hours=1)).isoformat(), ACTOR)
    assert lifecycle.unschedule(c.id, ACTOR).template_version == 1


@pytest.mark.parametrize("number, message", [
    (2, "version 2 is not approved"), (9, 'has no version 9'), ("1", "must be a version number"),
    (True, "must be a version number"),
])
def test_a_picked_version_must_be_an_approved_version(number, message):
    two_versions()
    with pytest.raises(ValidationError) as err:
        campaigns.create({"name": "C", "templateId": "news", "templateVersion": number}, ACTOR)
    assert err.value.details[0]["field"] == "templateVersion" and message in err.value.details[0]["message"]


def test_defaults_and_edits_follow_the_picked_version():
    two_versions(approve_v2=True)
    c = campaigns.create({"name": "C", "templateId": "news", "templateVersion": 1,
                          "variables": {"offer": "7%"}}, ACTOR)  # offer is only in v1
    with pytest.raises(ValidationError, match="not a variable of this template"):
        campaigns.edit(c.id, {"templateVersion": 2}, ACTOR)
    assert campaigns.edit(c.id, {"name": "Renamed"}, ACTOR).template_version == 1
    edited = campaigns.edit(c.id, {"templateVersion": None, "variables": {"city": "Oslo"}}, ACTOR)
    assert (edited.template_version, edited.variables) == (None, {"city": "Oslo"})


def test_send_refuses_a_template_with_nothing_approved(app):
    templates.create({"name": "D", "channels": {"in_app": {"title": "t", "body": "b"}}}, ACTOR)
    c = campaigns.create({"name": "C", "templateId": "d"}, ACTOR)
    recipients.add_manual(c.id, ["u1"], None, ACTOR)
    with pytest.raises(ValidationError, match="is draft; approve it before sending"):
        lifecycle.send(c.id, None, ACTOR)


def test_samples_are_saved_and_checked(client, api_key):
    headers = {"Authorization": f"Bearer {api_key('marketer')}"}
    body = {"name": "S", "channels": {"in_app": {"title": "{{ name }}", "body": "b", "imageUrl": "{{ pic }}"}},
            "variableSchema": [{"key": "name", "sample": "Ana"}, {"key": "pic", "type": "image",
                                                                   "sample": "https://img.test/a.png"}]}
    created = client.post("/api/v1/templates", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert [v.get("sample") for v in created.get_json()["variableSchema"]] == ["Ana", "https://img.test/a.png"]
    body["variableSchema"][1]["sample"] = "not a url"
    refused = client.post("/api/v1/templates", json=body, headers=headers)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["details"][0]["field"] == "variableSchema[1].sample"
    body["variableSchema"][1]["sample"] = 5
    assert client.post("/api/v1/templates", json=body, headers=headers).status_code == 400
    body["variableSchema"] = [{"key": "name", "sample": "Ana"}, {"key": "pic", "sample": "no url"}]
    refused = client.post("/api/v1/templates", json=body, headers=headers).get_json()
    assert refused["error"]["details"][0]["field"] == "variableSchema[1].sample"  # it starts imageUrl


def test_content_problems_name_undeclared_placeholders_but_not_empty_fields():
    problems = templates.content_problems({"channels": {"in_app": {"title": "", "body": "Hi {{ promo }}"}},
                                           "variableSchema": [{"key": "name"}]})
    assert problems == [{"field": "channels.in_app.body",
                         "message": "uses {{ promo }}, which is not in the variable schema"}]
    assert templates.content_problems({"channels": {}, "variableSchema": []}) == []


def _editor_form(client, path: str) -> dict:
    token = csrf_from(client.get(path).get_data(as_text=True))
    return {"csrf_token": token, "name": "News", "in_app_enabled": "y", "in_app_title": "Hi {{ firstName }}",
            "in_app_body": "Take {{ promo }}", "variables-0-key": "firstName", "variables-0-type": "string",
            "variables-0-sample": "Ana"}


def test_editor_preview_shows_an_undeclared_placeholder_as_you_type(client, logged_in):
    logged_in("marketer")
    html = client.post("/templates/_preview", data=_editor_form(client, "/templates/new")).get_data(as_text=True)
    assert "In-app body uses {{ promo }}, which is not in the variable schema" in html
    assert "Take {{ promo }}</p>" in html and "Hi Ana</p>" in html


def test_editor_saves_sample_values(client, logged_in):
    logged_in("marketer")
    data = _editor_form(client, "/templates/new") | {"in_app_body": "Welcome"}
    assert client.post("/templates/new", data=data).status_code == 302
    assert templates.get("news").current.variable_schema[0]["sample"] == "Ana"
    page = client.get("/templates/news/edit").get_data(as_text=True)
    assert 'name="variables-0-sample" type="text" value="Ana"' in page


def test_pages_say_live_and_draft_and_the_campaign_form_offers_approved_versions(client, logged_in):
    two_versions(approve_v2=False)
    logged_in("marketer")
    show = client.get("/templates/news").get_data(as_text=True)
    assert "v1 live</span>" in show and "v2 draft</span>" in show
    assert "Campaigns keep sending version 1 until you approve it" in show
    form = client.get("/campaigns/new").get_data(as_text=True)  # first load: variables already there
    assert "News (v1 live · newer draft)" in form
    assert '<option value="1" selected>v1 — newest' in form and '<option value="2"' not in form
    assert 'name="var-offer"' in form and 'name="var-city"' not in form
    token = csrf_from(form)
    response = client.post("/campaigns/new", data={"csrf_token": token, "name": "C", "template_id": "news",
                                                   "template_version": "1", "channel": "in_app",
                                                   "delivery_mode": "batch", "failure_threshold": "50",
                                                   "var-offer": "9%"})
    assert response.status_code == 302, response.get_data(as_text=True)
    campaign = db.session.scalar(select(Campaign))
    assert (campaign.template_version, campaign.variables) == (1, {"offer": "9%"})
    edit = client.get(f"/campaigns/{campaign.id}/edit").get_data(as_text=True)
    assert '<option value="1" selected>' in edit and 'value="9%"' in edit


def test_recipients_and_previews_use_the_picked_version():
    two_versions(approve_v2=True)
    c = campaigns.create({"name": "C", "templateId": "news", "templateVersion": 1}, ACTOR)
    recipients.add_manual(c.id, ["u1"], {"u1": {"offer": "3%"}}, ACTOR)  # offer: v1 only
    with pytest.raises(ValidationError):
        recipients.add_manual(c.id, ["u2"], {"u2": {"offer": "1%", "city": "Oslo"}}, ACTOR)  # city: v2 only
    row = recipients.preview_rows(fresh(c.id), [("u1", {"offer": "3%"})])[0]
    assert "v1 there" in str(row)


def test_review_offers_send_for_the_live_version_while_a_draft_waits(client, logged_in):
    two_versions()
    c = campaigns.create({"name": "C", "templateId": "news", "variables": {"offer": "5%"}}, ACTOR)
    recipients.add_manual(c.id, ["u1"], None, ACTOR)
    logged_in("marketer")
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert "News · version 1 <span class=\"badge badge-ok\">approved</span>" in page
    assert "The template must be approved before sending" not in page
    send_now = re.search(r'<button type="submit"[^>]*>Send now</button>', page)
    assert send_now and "disabled" not in send_now.group(0)  # offered, and enabled


def test_review_checks_required_variables_of_the_version_it_sends():
    two_versions()  # offer is required in the live v1, gone from the v2 draft
    c = campaigns.create({"name": "C", "templateId": "news"}, ACTOR)
    recipients.add_manual(c.id, ["u1"], {"u1": {"offer": "1%"}}, ACTOR)
    db.session.execute(Campaign.__table__.update().values(variables={}))  # nothing else gives offer
    db.session.execute(Recipient.__table__.update().values(variables={}))
    db.session.commit()
    missing = queries.missing_required(fresh(c.id))
    assert missing is not None and missing.count == 1
    assert [v["key"] for v in queries.campaign_schema(fresh(c.id))] == ["firstName", "offer", "store"]
