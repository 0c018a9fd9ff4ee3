import io

import pytest
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, Recipient
from dashboard.services import templates
from dashboard.services.actor import Actor

SYSTEM = Actor.system("test")


def make_template(template_id="promo", status="approved", channels=None, schema=None):
    templates.create({
        "name": template_id.title(), "templateId": template_id,
        "channels": channels or {"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }} {{ banner }}"},
                                 "email": {"subject": "Hi {{ firstName }}", "text": "{{ offer }}"}},
        "variableSchema": schema if schema is not None else [
            {"key": "firstName", "type": "string", "defaultValue": "there"},
            {"key": "offer", "type": "string", "required": True},
            {"key": "banner", "type": "image"},
            {"key": "cta", "type": "action"},
        ]}, SYSTEM)
    if status == "approved":
        templates.transition(template_id, "approve", SYSTEM)
    elif status == "archived":
        templates.transition(template_id, "archive", SYSTEM)


@pytest.fixture
def campaign(api):
    make_template()
    response = api("POST", "/campaigns", {"name": "Spring", "templateId": "promo", "channel": "in_app",
                                          "variables": {"offer": "10% off"}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_defaults_and_shape(campaign):
    assert campaign["status"] == "draft" and campaign["deliveryMode"] == "batch"
    assert campaign["counts"] == {"total": 0, "pending": 0, "sent": 0, "failed": 0, "skipped": 0}
    assert campaign["templateId"] == "promo" and campaign["templateVersion"] is None
    assert campaign["variables"] == {"offer": "10% off"}


@pytest.mark.parametrize("body,field", [
    ({"templateId": "promo", "channel": "in_app"}, "name"),
    ({"name": "x", "templateId": "nope", "channel": "in_app"}, "templateId"),
    ({"name": "x", "templateId": "promo", "channel": "sms"}, "channel"),
    ({"name": "x", "templateId": "promo", "deliveryMode": "turbo"}, "deliveryMode"),
    ({"name": "x", "templateId": "promo", "variables": {"unknown": "v"}}, "variables.unknown"),
    ({"name": "x", "templateId": "promo", "variables": {"banner": "not-a-url"}}, "variables.banner"),
    ({"name": "x", "templateId": "promo", "failureThreshold": 2}, "failureThreshold"),
])
def test_create_validation(api, body, field):
    make_template()
    response = api("POST", "/campaigns", body)
    assert response.status_code == 400
    assert field in [d["field"] for d in response.get_json()["error"]["details"]]
    assert db.session.scalar(select(Campaign)) is None


def test_draft_may_use_unapproved_template_but_not_archived(api):
    make_template("drafty", status="draft")
    make_template("old", status="archived")
    assert api("POST", "/campaigns", {"name": "a", "templateId": "drafty"}).status_code == 201
    response = api("POST", "/campaigns", {"name": "b", "templateId": "old"})
    assert response.status_code == 400 and "archived" in response.get_json()["error"]["message"]


def test_channel_needs_matching_template_content(api):
    make_template("inapp-only", channels={"in_app": {"title": "t", "body": "b"}}, schema=[])
    response = api("POST", "/campaigns", {"name": "a", "templateId": "inapp-only", "channel": "email"})
    assert response.status_code == 400 and "no email content" in response.get_json()["error"]["message"]
    assert api("POST", "/campaigns", {"name": "a", "templateId": "inapp-only", "channel": "webhook"}).status_code == 201


def test_edit_and_delete_draft(api, campaign):
    cid = campaign["id"]
    edited = api("PATCH", f"/campaigns/{cid}", {"name": "Renamed", "deliveryMode": "realtime"}).get_json()
    assert (edited["name"], edited["deliveryMode"]) == ("Renamed", "realtime")
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["u1", "u2"]})
    assert api("DELETE", f"/campaigns/{cid}").status_code == 204
    assert api("GET", f"/campaigns/{cid}").status_code == 404
    assert db.session.scalar(select(Recipient)) is None


def test_manual_add_merges_duplicates_later_values_win(api, campaign):
    cid = campaign["id"]
    response = api("POST", f"/campaigns/{cid}/recipients",
                   {"userIds": ["u1", "u2", "u1", " u3 "], "userVariables": {"u1": {"offer": "20%"}}})
    assert response.get_json() == {"added": 3, "merged": 1, "total": 3}
    again = api("POST", f"/campaigns/{cid}/recipients",
                {"userIds": ["u2", "u4"], "userVariables": {"u2": {"offer": "late"}}}).get_json()
    assert again == {"added": 1, "merged": 1, "total": 4}
    rows = {r.user_id: r.variables for r in db.session.scalars(select(Recipient))}
    assert rows == {"u1": {"offer": "20%"}, "u2": {"offer": "late"}, "u3": {}, "u4": {}}
    counts = api("GET", f"/campaigns/{cid}").get_json()["counts"]
    assert counts["total"] == 4 and counts["pending"] == 4


def test_manual_add_rejects_invalid_ids_with_positions(api, campaign):
    cid = campaign["id"]
    response = api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["ok", "bad id", "", "x" * 129, 5]})
    error = response.get_json()["error"]
    assert response.status_code == 400
    assert [d["index"] for d in error["details"]] == [1, 2, 3, 4]
    assert "nothing was added" in error["message"]
    assert db.session.scalar(select(Recipient)) is None


def test_manual_add_limit(api, campaign):
    response = api("POST", f"/campaigns/{campaign['id']}/recipients", {"userIds": [f"u{i}" for i in range(10_001)]})
    assert response.status_code == 400 and "10,000" in response.get_json()["error"]["message"]


def test_manual_add_ten_thousand(api, campaign):
    response = api("POST", f"/campaigns/{campaign['id']}/recipients", {"userIds": [f"u{i}" for i in range(10_000)]})
    assert response.get_json() == {"added": 10_000, "merged": 0, "total": 10_000}


def _set_status(campaign_id: int, status: str) -> None:
    db.session.get(Campaign, campaign_id).status = status
    db.session.commit()


@pytest.mark.parametrize("status", ["scheduled", "sending", "sent", "failed", "cancelled"])
def test_every_write_to_non_draft_is_409(api, campaign, status):
    cid = campaign["id"]
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["u1"]})
    _set_status(cid, status)
    csv_file = (io.BytesIO(b"userId,offer\nu9,x\n"), "r.csv")
    calls = [("PATCH", f"/campaigns/{cid}", {"name": "x"}), ("DELETE", f"/campaigns/{cid}", None),
             ("POST", f"/campaigns/{cid}/recipients", {"userIds": ["u2"]}),
             ("DELETE", f"/campaigns/{cid}/recipients", None)]
    for method, path, body in calls:
        response = api(method, path, body)
        assert response.status_code == 409, (method, path)
        assert status in response.get_json()["error"]["message"]
    for query in ("?dryRun=true", ""):
        response = api("POST", f"/campaigns/{cid}/recipients/upload{query}", None,
                       data={"file": (io.BytesIO(csv_file[0].getvalue()), "r.csv")})
        assert response.status_code == 409
    assert [r.user_id for r in db.session.scalars(select(Recipient))] == ["u1"]


def test_recipient_list_filters_and_paginates(api, campaign):
    cid = campaign["id"]
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": [f"user{i:02d}" for i in range(30)] + ["other_1"]})
    first = api("GET", f"/campaigns/{cid}/recipients?limit=20").get_json()
    assert [r["userId"] for r in first["items"]][:2] == ["user00", "user01"] and first["nextCursor"]
    second = api("GET", f"/campaigns/{cid}/recipients?limit=20&cursor={first['nextCursor']}").get_json()
    assert len(second["items"]) == 11 and second["nextCursor"] is None
    assert [r["userId"] for r in api("GET", f"/campaigns/{cid}/recipients?userId=other").get_json()["items"]] \
        == ["other_1"]
    assert api("GET", f"/campaigns/{cid}/recipients?userId=user_").get_json()["items"] == []  # _ is literal
    assert len(api("GET", f"/campaigns/{cid}/recipients?status=pending&limit=100").get_json()["items"]) == 31
    assert api("GET", f"/campaigns/{cid}/recipients?status=sent").get_json()["items"] == []


def test_clear_recipients(api, campaign):
    cid = campaign["id"]
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["a", "b"]})
    assert api("DELETE", f"/campaigns/{cid}/recipients").get_json() == {"removed": 2, "total": 0}
    assert api("GET", f"/campaigns/{cid}").get_json()["counts"]["total"] == 0


def test_export_neutralises_formula_cells(api, campaign):
    cid = campaign["id"]
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["u1", "u2"],
                                                  "userVariables": {"u1": {"offer": "=HYPERLINK(\"x\")"},
                                                                    "u2": {"offer": "@SUM(A1)"}}})
    body = api("GET", f"/campaigns/{cid}/recipients/export").get_data(as_text=True)
    lines = body.strip().splitlines()
    assert lines[0] == "userId,email,status,attempts,lastError,sentAt,firstName,offer,banner,cta"
    assert "'=HYPERLINK" in body and "'@SUM(A1)" in body
    assert ",=HYPERLINK" not in body


def test_list_campaigns_with_status_filter(api, campaign):
    api("POST", "/campaigns", {"name": "Second", "templateId": "promo"})
    _set_status(campaign["id"], "sent")
    assert [c["name"] for c in api("GET", "/campaigns?status=draft").get_json()["items"]] == ["Second"]
    assert [c["name"] for c in api("GET", "/campaigns?q=spr").get_json()["items"]] == ["Spring"]
    assert api("GET", "/campaigns?status=bogus").status_code == 400


def test_support_reads_campaigns_but_cannot_write(client, api, campaign, api_key):
    support = {"Authorization": f"Bearer {api_key('support')}"}
    cid = campaign["id"]
    assert client.get(f"/api/v1/campaigns/{cid}", headers=support).status_code == 200
    assert client.get(f"/api/v1/campaigns/{cid}/recipients", headers=support).status_code == 200
    for method, path in [("POST", "/campaigns"), ("PATCH", f"/campaigns/{cid}"), ("DELETE", f"/campaigns/{cid}"),
                         ("POST", f"/campaigns/{cid}/recipients"), ("DELETE", f"/campaigns/{cid}/recipients"),
                         ("POST", f"/campaigns/{cid}/recipients/upload")]:
        assert client.open(f"/api/v1{path}", method=method, json={}, headers=support).status_code == 403, path


def test_writes_are_audited(api, campaign):
    cid = campaign["id"]
    api("POST", f"/campaigns/{cid}/recipients", {"userIds": ["a"]})
    api("DELETE", f"/campaigns/{cid}/recipients")
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "campaign")
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["campaign.created", "campaign.recipients_added", "campaign.recipients_cleared"]
