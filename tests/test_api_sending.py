from datetime import timedelta

from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign, Notification, utcnow
from tests.conftest import csrf_from
from tests.engine import drain
from tests.test_sending import make_campaign


def _h(key):
    return {"Authorization": f"Bearer {key}"}


def test_send_returns_202_with_campaign_json(client, api_key):
    c = make_campaign(3)
    response = client.post(f"/api/v1/campaigns/{c.id}/send", headers=_h(api_key()))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "sending" and body["templateVersion"] == 1
    assert body["counts"]["total"] == 3 and "etaSeconds" in body and "rate" in body
    drain()
    done = client.get(f"/api/v1/campaigns/{c.id}", headers=_h(api_key())).get_json()
    assert done["status"] == "sent" and done["counts"]["sent"] == 3 and done["completedAt"]


def test_schedule_validation_through_api(client, api_key):
    c = make_campaign(1)
    key = api_key()
    for raw in ("2030-01-01T10:00:00", "not a date", "2000-01-01T00:00:00Z"):
        response = client.post(f"/api/v1/campaigns/{c.id}/send", json={"scheduledAt": raw}, headers=_h(key))
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "validation_error"
    when = (utcnow() + timedelta(hours=2)).isoformat()
    body = client.post(f"/api/v1/campaigns/{c.id}/send", json={"scheduledAt": when}, headers=_h(key)).get_json()
    assert body["status"] == "scheduled" and body["scheduledAt"] == when
    assert client.post(f"/api/v1/campaigns/{c.id}/unschedule", headers=_h(key)).get_json()["status"] == "draft"
    assert client.post(f"/api/v1/campaigns/{c.id}/unschedule", headers=_h(key)).status_code == 409


def test_idempotency_key_replays_send(client, api_key):
    c = make_campaign(2)
    key = api_key()
    headers = {**_h(key), "Idempotency-Key": "abc-123"}
    first = client.post(f"/api/v1/campaigns/{c.id}/send", headers=headers)
    second = client.post(f"/api/v1/campaigns/{c.id}/send", headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == second.get_json()
    third = client.post(f"/api/v1/campaigns/{c.id}/send", headers=_h(key))  # no key: a real second send
    assert third.status_code == 409
    drain()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 2


def test_idempotency_key_on_create(client, api_key):
    make_campaign(0)
    headers = {**_h(api_key()), "Idempotency-Key": "create-1"}
    body = {"name": "Once", "templateId": "promo"}
    ids = {client.post("/api/v1/campaigns", json=body, headers=headers).get_json()["id"] for _ in range(3)}
    assert len(ids) == 1
    assert db.session.scalar(select(func.count()).select_from(Campaign).where(Campaign.name == "Once")) == 1
    reused = client.post("/api/v1/campaigns", json={"name": "Other", "templateId": "promo"}, headers=headers)
    assert reused.status_code == 422 and reused.get_json()["error"]["code"] == "idempotency_key_reused"


def test_cancel_duplicate_retry_via_api(client, api_key):
    c = make_campaign(3)
    key = api_key()
    cancelled = client.post(f"/api/v1/campaigns/{c.id}/cancel", headers=_h(key)).get_json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["skipped"] == 3
    assert client.post(f"/api/v1/campaigns/{c.id}/send", headers=_h(key)).status_code == 409
    copy = client.post(f"/api/v1/campaigns/{c.id}/duplicate", headers=_h(key))
    assert copy.status_code == 201 and copy.get_json()["counts"]["total"] == 3
    retry = client.post(f"/api/v1/campaigns/{c.id}/retry-failed", headers=_h(key))
    assert retry.status_code == 400 and "nothing to retry" in retry.get_json()["error"]["message"]


def test_support_cannot_use_lifecycle_endpoints(client, api_key):
    c = make_campaign(1)
    key = api_key("support")
    for path in ("send", "unschedule", "cancel", "duplicate", "retry-failed"):
        assert client.post(f"/api/v1/campaigns/{c.id}/{path}", headers=_h(key)).status_code == 403
    assert db.session.get(Campaign, c.id).status == "draft"


def test_status_partial_polls_then_stops_with_286(client, logged_in):
    c = make_campaign(2)
    logged_in("support")
    draft = client.get(f"/campaigns/{c.id}/_status", headers={"HX-Request": "true"})
    assert draft.status_code == 286 and 'hx-trigger="every 1s"' not in draft.get_data(as_text=True)
    from dashboard.services import lifecycle
    from dashboard.services.actor import Actor

    lifecycle.send(c.id, None, Actor.system("t"))
    live = client.get(f"/campaigns/{c.id}/_status", headers={"HX-Request": "true"})
    assert live.status_code == 200 and 'hx-trigger="every 1s"' in live.get_data(as_text=True)
    assert "sending" in live.get_data(as_text=True)
    drain()
    final = client.get(f"/campaigns/{c.id}/_status", headers={"HX-Request": "true"})
    assert final.status_code == 286 and final.headers["HX-Trigger"] == "campaign-finished"
    assert 'data-testid="count-sent">2<' in final.get_data(as_text=True)


def test_send_and_cancel_from_the_page(client, logged_in):
    c = make_campaign(2)
    logged_in("marketer")
    page = client.get(f"/campaigns/{c.id}").get_data(as_text=True)
    assert "Review &amp; send" in page and 'data-confirm="Send' in page
    when = (utcnow() + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/campaigns/{c.id}/send", data={"csrf_token": csrf_from(page), "intent": "schedule",
                                                            "scheduled_local": when, "timezone": "Europe/Oslo"})
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Scheduled for" in page
    db.session.expire_all()
    scheduled = db.session.get(Campaign, c.id)
    assert scheduled.status == "scheduled"
    assert scheduled.scheduled_at.strftime("%H:%M") != when[-5:]  # stored in UTC, converted from Oslo time
    response = client.post(f"/campaigns/{c.id}/cancel", data={"csrf_token": csrf_from(page)})
    assert "Cancelled." in client.get(response.headers["Location"]).get_data(as_text=True)
    response = client.post(f"/campaigns/{c.id}/send", data={"csrf_token": csrf_from(page), "intent": "now"})
    assert "Campaign is cancelled" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_double_click_send_in_dashboard_delivers_once(client, logged_in):
    c = make_campaign(5)
    logged_in("marketer")
    token = csrf_from(client.get(f"/campaigns/{c.id}").get_data(as_text=True))
    client.post(f"/campaigns/{c.id}/send", data={"csrf_token": token, "intent": "now"})
    second = client.post(f"/campaigns/{c.id}/send", data={"csrf_token": token, "intent": "now"})
    assert "cannot be sent" in client.get(second.headers["Location"]).get_data(as_text=True)
    drain()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 5
