"""The campaign's audience in the JSON API: campaign.audience, PATCH/create {"audience": …},
POST /campaigns/{id}/audience/freeze (both databases)."""

from __future__ import annotations

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, Recipient
from tests.test_api_campaigns import make_template
from tests.test_audiences import make_list, make_segment, make_users


def create(api, **extra):
    response = api("POST", "/campaigns", {"name": "Spring", "templateId": "promo", "channel": "in_app",
                                          "variables": {"offer": "10% off"}} | extra)
    return response


def rows(campaign_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(Recipient).where(Recipient.campaign_id == campaign_id))


def test_patch_sets_freezes_and_clears_the_audience(api):
    make_template()
    make_users(9)
    segment = make_segment()
    campaign = create(api).get_json()
    assert campaign["audience"] is None
    response = api("PATCH", f"/campaigns/{campaign['id']}", {"audience": {"segmentId": segment.id}})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["audience"] == {"kind": "segment", "id": segment.id, "name": "Pro users",
                                               "frozenAt": None, "size": None}
    frozen = api("POST", f"/campaigns/{campaign['id']}/audience/freeze")
    assert frozen.status_code == 200, frozen.get_json()
    body = frozen.get_json()
    assert body["audience"]["size"] == 6 and body["audience"]["frozenAt"] is not None
    assert body["counts"]["total"] == body["counts"]["pending"] == 6 == rows(campaign["id"])
    assert api("GET", f"/campaigns/{campaign['id']}").get_json()["audience"]["size"] == 6
    cleared = api("PATCH", f"/campaigns/{campaign['id']}", {"audience": None})
    assert cleared.status_code == 200 and cleared.get_json()["audience"] is None
    assert cleared.get_json()["counts"]["total"] == 0 == rows(campaign["id"])


def test_create_with_a_list_audience_and_send_materialises_it(api):
    make_template()
    make_users(4)
    user_list = make_list(["u1", "u3", "outsider"])
    response = create(api, audience={"listId": user_list.id})
    assert response.status_code == 201, response.get_json()
    campaign = response.get_json()
    assert campaign["audience"]["kind"] == "list" and campaign["audience"]["name"] == "VIPs"
    sent = api("POST", f"/campaigns/{campaign['id']}/send")
    assert sent.status_code == 202, sent.get_json()
    body = sent.get_json()
    assert body["counts"]["total"] == 3 and body["audience"]["size"] == 3 and body["audience"]["frozenAt"]
    listed = api("GET", f"/campaigns/{campaign['id']}/recipients").get_json()["items"]
    assert {r["userId"] for r in listed} == {"u1", "u3", "outsider"}


def test_bad_audience_bodies_are_400s_naming_the_field_and_change_nothing(api):
    make_template()
    campaign = create(api).get_json()
    cases = [({"segmentId": 999}, "audience.segmentId"), ({"listId": 999}, "audience.listId"),
             ({"segmentId": "3"}, "audience.segmentId"), ({"listId": True}, "audience.listId"),
             ({"segmentId": 1, "listId": 2}, "audience"), ("everyone", "audience"), ({}, "audience")]
    for body, field in cases:
        response = api("PATCH", f"/campaigns/{campaign['id']}", {"audience": body})
        assert response.status_code == 400, (body, response.get_json())
        error = response.get_json()["error"]
        assert error["details"][0]["field"] == field, (body, error)
    before = db.session.scalar(select(func.count()).select_from(Campaign))
    response = create(api, audience={"segmentId": 12345})
    assert response.status_code == 400 and "no segment 12345" in response.get_json()["error"]["message"]
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == before  # nothing created


def test_an_audience_with_a_bad_other_field_changes_neither(api):
    make_template()
    make_users(3)
    user_list = make_list(["u1"])
    campaign = create(api).get_json()
    response = api("PATCH", f"/campaigns/{campaign['id']}", {"audience": {"listId": user_list.id}, "name": ""})
    assert response.status_code == 400 and response.get_json()["error"]["details"][0]["field"] == "name"
    assert api("GET", f"/campaigns/{campaign['id']}").get_json()["audience"] is None
    both = api("PATCH", f"/campaigns/{campaign['id']}", {"audience": {"listId": user_list.id}, "name": "Renamed"})
    assert both.status_code == 200 and both.get_json()["name"] == "Renamed"
    assert both.get_json()["audience"]["id"] == user_list.id


def test_409s_for_one_source_of_recipients_and_non_drafts(api):
    make_template()
    make_users(3)
    user_list = make_list(["u1", "u2"])
    hand = create(api).get_json()
    assert api("POST", f"/campaigns/{hand['id']}/recipients", {"userIds": ["a", "b"]}).status_code == 200
    refused = api("PATCH", f"/campaigns/{hand['id']}", {"audience": {"listId": user_list.id}})
    assert refused.status_code == 409 and "remove the 2 recipients first" in refused.get_json()["error"]["message"]
    chosen = create(api, audience={"listId": user_list.id}).get_json()
    added = api("POST", f"/campaigns/{chosen['id']}/recipients", {"userIds": ["x"]})
    assert added.status_code == 409 and "Clear the audience first" in added.get_json()["error"]["message"]
    no_audience = api("POST", f"/campaigns/{hand['id']}/audience/freeze")
    assert no_audience.status_code == 409 and no_audience.get_json()["error"]["details"][0]["field"] == "audience"
    assert api("POST", f"/campaigns/{chosen['id']}/send").status_code == 202
    late = api("PATCH", f"/campaigns/{chosen['id']}", {"audience": None})
    assert late.status_code == 409
    assert api("POST", f"/campaigns/{chosen['id']}/audience/freeze").status_code == 409
    assert api("POST", "/campaigns/424242/audience/freeze").status_code == 404


def test_an_empty_segment_send_is_a_400_with_its_name(api):
    make_template()
    make_users(2)
    segment = make_segment({"match": "all", "conditions": [
        {"type": "attribute", "attribute": "plan", "operator": "eq", "value": "gold"}]}, name="Gold")
    campaign = create(api, audience={"segmentId": segment.id}).get_json()
    response = api("POST", f"/campaigns/{campaign['id']}/send")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("The segment “Gold” matches no users")
    assert api("GET", f"/campaigns/{campaign['id']}").get_json()["status"] == "draft"


def test_support_cannot_freeze(client, api_key, api):
    make_template()
    campaign = create(api).get_json()
    headers = {"Authorization": f"Bearer {api_key('support')}"}
    response = client.post(f"/api/v1/campaigns/{campaign['id']}/audience/freeze", headers=headers)
    assert response.status_code == 403
