"""Delivery control over the API (issue 14, SPEC §10): send options (canary, haltRule,
spreadMinutes), pause and resume, Continue after a canary hold, four-eyes approval and its
workspace setting. Real Redis and database; jobs run by tests.engine.drain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import AuditEvent, Notification, Recipient, utcnow
from dashboard.services import campaigns, recipients
from dashboard.services.actor import Actor
from tests.engine import drain
from tests.test_delivery_faults import assert_counters_match_rows, status_of
from tests.test_sending import make_campaign

ACTOR = Actor.system("test")


def _h(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _each_recipient_once(campaign_id: int, total: int) -> None:
    """In-app: one feed item per recipient, no user twice."""
    notes, users = db.session.execute(
        select(func.count(), func.count(func.distinct(Notification.user_id)))
        .where(Notification.campaign_id == campaign_id)).one()
    assert notes == users == total


def test_a_canary_send_holds_and_resume_continues_with_each_recipient_once(api):
    c = make_campaign(1000)
    sent = api("POST", f"/campaigns/{c.id}/send", {"canary": {"percent": 5}})
    assert sent.status_code == 202, sent.get_json()
    body = sent.get_json()
    assert body["status"] == "sending"
    assert body["canary"] == {"size": None, "percent": 5.0, "holdMinutes": None, "state": "sending",
                              "seed": body["canary"]["seed"], "wave": None}
    assert isinstance(body["canary"]["seed"], int)
    assert body["haltRule"] == {"percent": 5.0, "window": 200}  # the default that comes with a canary
    drain()

    held = api("GET", f"/campaigns/{c.id}").get_json()
    assert (held["status"], held["pausedReason"], held["pausedBy"]) == ("paused", "canary: waiting", "system")
    assert held["pausedAt"] and held["canary"]["state"] == "held"
    assert held["canary"]["wave"] == {"recipients": 50, "sent": 50, "failed": 0, "pending": 0, "skipped": 0,
                                      "reasons": [], "read": 0, "clicked": 0}
    assert held["counts"]["sent"] == 50 and held["counts"]["pending"] == 950
    listed = api("GET", "/campaigns?status=paused").get_json()["items"]
    assert [item["id"] for item in listed] == [c.id]
    assert listed[0]["canary"]["wave"] is None and listed[0]["pausedReason"] == "canary: waiting"  # lists stay cheap
    assert api("GET", "/campaigns?status=sending").get_json()["items"] == []

    resumed = api("POST", f"/campaigns/{c.id}/resume")
    assert resumed.status_code == 200, resumed.get_json()
    body = resumed.get_json()
    assert (body["status"], body["pausedReason"], body["canary"]["state"]) == ("sending", None, "done")
    drain()
    done = assert_counters_match_rows(c.id)
    assert (done.status, done.sent, done.pending) == ("sent", 1000, 0)
    _each_recipient_once(c.id, 1000)
    wave = db.session.scalar(select(func.count()).select_from(Recipient).where(
        Recipient.campaign_id == c.id, Recipient.wave == 1))
    assert wave == 50
    final = api("GET", f"/campaigns/{c.id}").get_json()
    assert final["canary"]["wave"]["sent"] == 50 and final["pausedAt"] is None


def test_pause_and_resume_over_the_api(api):
    c = make_campaign(3000)
    assert api("POST", f"/campaigns/{c.id}/send").status_code == 202
    paused = api("POST", f"/campaigns/{c.id}/pause")
    assert paused.status_code == 200, paused.get_json()
    body = paused.get_json()
    assert body["status"] == "paused" and body["pausedReason"].startswith("paused by API key ")
    assert body["pausedBy"] in body["pausedReason"] and body["canary"] is None
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("paused", 0)  # nothing delivered while paused

    again = api("POST", f"/campaigns/{c.id}/pause")
    assert again.status_code == 409
    assert again.get_json()["error"]["details"] == [{"field": "status", "message": "paused"}]

    assert api("POST", f"/campaigns/{c.id}/resume").get_json()["status"] == "sending"
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 3000)
    _each_recipient_once(c.id, 3000)
    moves = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.target_type == "campaign", AuditEvent.target_id == str(c.id)).order_by(AuditEvent.id)).all()
    assert "campaign.pause" in moves and "campaign.resume" in moves
    after = api("POST", f"/campaigns/{c.id}/resume")
    assert after.status_code == 409 and after.get_json()["error"]["details"][0]["message"] == "sent"


def test_pause_resume_and_approve_of_a_draft_are_conflicts(api):
    c = make_campaign(3)
    for action in ("pause", "resume", "approve-send"):
        response = api("POST", f"/campaigns/{c.id}/{action}")
        assert response.status_code == 409, (action, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "conflict" and "draft" in error["message"]
    assert status_of(c.id) == "draft"
    assert api("POST", "/campaigns/999999/pause").status_code == 404


def test_a_paused_campaign_can_be_cancelled(api):
    c = make_campaign(2000)
    api("POST", f"/campaigns/{c.id}/send")
    api("POST", f"/campaigns/{c.id}/pause")
    cancelled = api("POST", f"/campaigns/{c.id}/cancel").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["skipped"] == 2000
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("cancelled", 0)


@pytest.mark.parametrize(("options", "field"), [
    ({"canary": {"size": 2, "percent": 5}}, "canary"),
    ({"canary": {}}, "canary"),
    ({"canary": "5%"}, "canary"),
    ({"canary": {"percent": 0}}, "canary.percent"),
    ({"canary": {"percent": 100}}, "canary.percent"),
    ({"canary": {"percent": "x"}}, "canary.percent"),
    ({"canary": {"size": 0}}, "canary.size"),
    ({"canary": {"size": 1.5}}, "canary.size"),
    ({"canary": {"size": 2, "holdMinutes": 0}}, "canary.holdMinutes"),
    ({"canary": {"size": 2, "holdMinutes": True}}, "canary.holdMinutes"),
    ({"canary": {"size": 10}}, "canary"),  # the whole audience
    ({"canary": {"percent": 99.9}}, "canary"),  # rounds up to the whole audience
    ({"haltRule": {"percent": 5, "window": 5}}, "haltRule.window"),
    ({"haltRule": {"percent": 0, "window": 200}}, "haltRule.percent"),
    ({"haltRule": {"window": 200}}, "haltRule.percent"),
    ({"haltRule": 5}, "haltRule"),
    ({"spreadMinutes": 0}, "spreadMinutes"),
    ({"spreadMinutes": "60"}, "spreadMinutes"),
])
def test_bad_options_are_400s_naming_the_field_and_the_campaign_stays_a_draft(api, options, field):
    c = make_campaign(10)
    response = api("POST", f"/campaigns/{c.id}/send", options)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field] and field in error["message"]
    assert status_of(c.id) == "draft"
    assert api("GET", f"/campaigns/{c.id}").get_json()["canary"] is None


def test_spread_needs_batch_delivery(api):
    c = make_campaign(5, mode="realtime")
    response = api("POST", f"/campaigns/{c.id}/send", {"spreadMinutes": 30})
    assert response.status_code == 400
    assert response.get_json()["error"]["details"][0]["field"] == "spreadMinutes"
    assert "realtime" in response.get_json()["error"]["message"]
    assert status_of(c.id) == "draft"


def test_spread_and_halt_rule_are_in_the_campaign_json(api):
    c = make_campaign(600)
    lists_before = api("GET", f"/campaigns/{c.id}").get_json()
    assert (lists_before["spreadMinutes"], lists_before["spreadRate"], lists_before["haltRule"]) == (None, None, None)
    body = api("POST", f"/campaigns/{c.id}/send",
               {"spreadMinutes": 60.0, "haltRule": {"percent": 10, "window": 500}}).get_json()  # 60.0 is 60
    assert body["status"] == "sending" and body["spreadMinutes"] == 60
    assert body["spreadRate"] == pytest.approx(600 / 3600)  # recipients / window, below the channel's 100/s
    assert body["haltRule"] == {"percent": 10.0, "window": 500} and body["canary"] is None
    listed = api("GET", "/campaigns").get_json()["items"][0]
    assert listed["spreadRate"] == pytest.approx(600 / 3600)
    api("POST", f"/campaigns/{c.id}/cancel")


def test_options_cannot_change_a_scheduled_campaign(api):
    c = make_campaign(5)
    when = (utcnow() + timedelta(hours=2)).isoformat()
    scheduled = api("POST", f"/campaigns/{c.id}/send", {"scheduledAt": when, "canary": {"size": 1}}).get_json()
    assert scheduled["status"] == "scheduled" and scheduled["canary"]["size"] == 1
    refused = api("POST", f"/campaigns/{c.id}/send", {"spreadMinutes": 10})
    assert refused.status_code == 409 and "scheduled" in refused.get_json()["error"]["message"]
    assert api("GET", f"/campaigns/{c.id}").get_json()["spreadMinutes"] is None


def test_four_eyes_setting_is_admin_only_and_validated(client, api_key):
    admin, marketer = _h(api_key("admin")), _h(api_key("marketer"))
    assert client.get("/api/v1/settings/four-eyes", headers=admin).get_json() == {"enabled": False,
                                                                                  "threshold": 1000}
    for method in ("GET", "PUT"):
        response = client.open("/api/v1/settings/four-eyes", method=method, headers=marketer,
                               json={"enabled": True, "threshold": 5})
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    for bad, field in (({"enabled": "yes", "threshold": 5}, "enabled"), ({"enabled": True}, "threshold"),
                       ({"enabled": True, "threshold": -1}, "threshold"),
                       ({"enabled": True, "threshold": 2.5}, "threshold")):
        response = client.put("/api/v1/settings/four-eyes", headers=admin, json=bad)
        assert response.status_code == 400 and response.get_json()["error"]["details"][0]["field"] == field
    saved = client.put("/api/v1/settings/four-eyes", headers=admin, json={"enabled": True, "threshold": 5.0})
    assert saved.status_code == 200 and saved.get_json() == {"enabled": True, "threshold": 5}
    assert client.get("/api/v1/settings/four-eyes", headers=admin).get_json() == {"enabled": True, "threshold": 5}
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "workspace.four_eyes")) == 1


def test_four_eyes_a_large_send_waits_for_a_second_account(client, api_key):
    admin, first, second = _h(api_key("admin")), _h(api_key("marketer")), _h(api_key("marketer"))
    c = make_campaign(10)
    small = campaigns.create({"name": "Small", "templateId": "promo", "variables": {"offer": "5%"}}, ACTOR)
    recipients.add_manual(small.id, ["a", "b", "c"], None, ACTOR)  # at or below the threshold: no approval needed
    client.put("/api/v1/settings/four-eyes", headers=admin, json={"enabled": True, "threshold": 5})

    waiting = client.post(f"/api/v1/campaigns/{c.id}/send", headers=first)
    assert waiting.status_code == 202
    body = waiting.get_json()
    assert (body["status"], body["scheduledAt"]) == ("scheduled", None)
    approval = body["approval"]
    assert approval["awaiting"] is True and approval["approvedBy"] is None and approval["approvedAt"] is None
    assert approval["requestedBy"].startswith("API key ") and approval["requestedAt"]
    drain()
    assert status_of(c.id) == "scheduled"  # nothing starts before the approval

    again = client.post(f"/api/v1/campaigns/{c.id}/send", headers=second)
    assert again.status_code == 409  # sending it again is not a way around the approval
    same = client.post(f"/api/v1/campaigns/{c.id}/approve-send", headers=first)
    assert same.status_code == 403 and same.get_json()["error"]["code"] == "four_eyes"
    assert status_of(c.id) == "scheduled"

    approved = client.post(f"/api/v1/campaigns/{c.id}/approve-send", headers=second)
    assert approved.status_code == 200, approved.get_json()
    body = approved.get_json()
    assert body["status"] == "sending"
    assert body["approval"]["awaiting"] is False and body["approval"]["approvedBy"].startswith("API key ")
    assert body["approval"]["approvedBy"] != body["approval"]["requestedBy"]
    assert client.post(f"/api/v1/campaigns/{c.id}/approve-send", headers=second).status_code == 409
    drain()
    c = assert_counters_match_rows(c.id)
    assert (c.status, c.sent) == ("sent", 10)
    _each_recipient_once(c.id, 10)

    quick = client.post(f"/api/v1/campaigns/{small.id}/send", headers=first).get_json()
    assert quick["status"] == "sending" and quick["approval"] is None


def test_support_cannot_pause_resume_or_approve(client, api_key):
    c = make_campaign(2000)
    client.post(f"/api/v1/campaigns/{c.id}/send", headers=_h(api_key("admin")))
    support = _h(api_key("support"))
    for action in ("pause", "resume", "approve-send"):
        response = client.post(f"/api/v1/campaigns/{c.id}/{action}", headers=support)
        assert response.status_code == 403, action
    assert status_of(c.id) == "sending"
    assert client.get(f"/api/v1/campaigns/{c.id}", headers=support).get_json()["status"] == "sending"
