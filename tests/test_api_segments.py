"""/api/v1/segments: CRUD, counts (saved and unsaved), roles, 400s naming the field, 404, 409."""

from __future__ import annotations

import pytest

from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, Segment, User, UserAttribute
from dashboard.services import campaigns, templates
from dashboard.services.actor import Actor

ACTOR = Actor.system("test")
PRO = {"match": "all", "conditions": [{"type": "attribute", "attribute": "plan", "operator": "eq", "value": "pro"}]}


@pytest.fixture(autouse=True)
def directory():
    db.session.add_all([UserAttribute(name="plan", type="string"), UserAttribute(name="age", type="number")])
    db.session.add_all([User(user_id="a", attributes={"plan": "pro", "age": 40}),
                        User(user_id="b", attributes={"plan": "pro", "age": 20}),
                        User(user_id="c", attributes={"plan": "free"})])
    db.session.commit()


@pytest.fixture
def as_role(client, api_key):
    def make(role):
        headers = {"Authorization": f"Bearer {api_key(role)}"}

        def call(method, path, body=None):
            return client.open(f"/api/v1{path}", method=method, json=body, headers=headers)
        return call
    return make


def test_create_read_list_edit_delete(api):
    created = api("POST", "/segments", {"name": "Pros", "description": "paying", "definition": PRO})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["name"] == "Pros" and body["description"] == "paying" and body["definition"] == PRO
    assert body["createdBy"].startswith("API key ")
    sid = body["id"]
    assert api("GET", f"/segments/{sid}").get_json()["name"] == "Pros"
    assert [s["name"] for s in api("GET", "/segments").get_json()["items"]] == ["Pros"]
    assert api("GET", f"/segments/{sid}/count").get_json() == {"count": 2, "total": 3}
    older = {**PRO, "conditions": [*PRO["conditions"],
                                   {"type": "attribute", "attribute": "age", "operator": "gte", "value": 30}]}
    edited = api("PATCH", f"/segments/{sid}", {"definition": older, "name": "Older pros"})
    assert edited.status_code == 200 and edited.get_json()["name"] == "Older pros"
    assert edited.get_json()["description"] == "paying"
    assert api("GET", f"/segments/{sid}/count").get_json()["count"] == 1
    assert api("DELETE", f"/segments/{sid}").status_code == 204
    assert api("GET", f"/segments/{sid}").status_code == 404
    assert db.session.query(Segment).count() == 0
    assert [a for (a,) in db.session.query(AuditEvent.action).filter(AuditEvent.target_type == "segment")
            .order_by(AuditEvent.id)] == ["segment.created", "segment.updated", "segment.deleted"]


def test_preview_count_of_an_unsaved_definition(api):
    assert api("POST", "/segments/count", {"definition": PRO}).get_json() == {"count": 2, "total": 3}
    assert api("POST", "/segments/count", {"definition": {"conditions": []}}).get_json()["count"] == 3
    bad = api("POST", "/segments/count", {"definition": {"conditions": [
        {"type": "attribute", "attribute": "age", "operator": "gt", "value": "x"}]}})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["details"] == [{"field": "definition.conditions[0].value",
                                                   "message": "must be a number"}]
    missing = api("POST", "/segments/count", {})
    assert missing.status_code == 400 and missing.get_json()["error"]["details"][0]["field"] == "definition"
    assert db.session.query(Segment).count() == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"definition": PRO}, "name"),
    ({"name": "   ", "definition": PRO}, "name"),
    ({"name": "x" * 201, "definition": PRO}, "name"),
    ({"name": "ok", "description": 5, "definition": PRO}, "description"),
    ({"name": "ok"}, "definition"),
    ({"name": "ok", "definition": []}, "definition"),
    ({"name": "ok", "definition": {"conditions": [{"type": "attribute", "attribute": "ghost", "operator": "eq",
                                                   "value": "x"}]}}, "definition.conditions[0].attribute"),
    ({"name": "ok", "definition": {"conditions": [{"type": "list", "listId": 77}]}}, "definition.conditions[0].listId"),
])
def test_bad_bodies_are_400_naming_the_field(api, body, field):
    response = api("POST", "/segments", body)
    assert response.status_code == 400
    assert field in [d["field"] for d in response.get_json()["error"]["details"]]
    assert db.session.query(Segment).count() == 0


def test_names_are_unique(api):
    assert api("POST", "/segments", {"name": "Pros", "definition": PRO}).status_code == 201
    again = api("POST", "/segments", {"name": "Pros", "definition": PRO})
    assert again.status_code == 400 and again.get_json()["error"]["details"][0]["field"] == "name"
    other = api("POST", "/segments", {"name": "Other", "definition": PRO}).get_json()["id"]
    clash = api("PATCH", f"/segments/{other}", {"name": "Pros"})
    assert clash.status_code == 400 and db.session.get(Segment, other).name == "Other"


def test_delete_is_409_while_a_draft_uses_it(api):
    sid = api("POST", "/segments", {"name": "Pros", "definition": PRO}).get_json()["id"]
    templates.create({"name": "T", "templateId": "t", "channels": {"in_app": {"title": "Hi", "body": "B"}}}, ACTOR)
    draft = campaigns.create({"name": "Summer push", "templateId": "t"}, ACTOR)
    db.session.get(Campaign, draft.id).audience_kind = "segment"
    db.session.get(Campaign, draft.id).audience_id = sid
    db.session.commit()
    refused = api("DELETE", f"/segments/{sid}")
    assert refused.status_code == 409
    assert "Summer push" in refused.get_json()["error"]["message"]
    assert db.session.get(Segment, sid) is not None


def test_roles(as_role):
    marketer, support, admin = as_role("marketer"), as_role("support"), as_role("admin")
    sid = admin("POST", "/segments", {"name": "Pros", "definition": PRO}).get_json()["id"]
    assert support("GET", "/segments").status_code == 200
    assert support("GET", f"/segments/{sid}/count").get_json()["count"] == 2
    assert support("POST", "/segments/count", {"definition": PRO}).status_code == 403  # a builder's tool: writers
    assert support("POST", "/segments", {"name": "No", "definition": PRO}).status_code == 403
    assert support("PATCH", f"/segments/{sid}", {"name": "No"}).status_code == 403
    assert support("DELETE", f"/segments/{sid}").status_code == 403
    assert marketer("PATCH", f"/segments/{sid}", {"name": "Yes"}).status_code == 200
    assert db.session.get(Segment, sid).name == "Yes"


def test_unknown_ids_are_404(api):
    assert api("GET", "/segments/4242").status_code == 404
    assert api("GET", "/segments/4242/count").status_code == 404
    assert api("PATCH", "/segments/4242", {"name": "x"}).status_code == 404
    assert api("DELETE", "/segments/4242").status_code == 404
