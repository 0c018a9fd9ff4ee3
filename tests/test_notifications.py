import re

from sqlalchemy import func, select

from dashboard.extensions import db, get_queue
from dashboard.models import Campaign, CampaignChunk, Notification, User
from tests.engine import drain
from tests.test_api_campaigns import make_template


def _h(key):
    return {"Authorization": f"Bearer {key}"}


def test_users_upsert_reports_bad_rows_and_saves_good(client, api_key):
    key = api_key()
    body = [{"userId": "u1", "name": "Ann", "email": "ann@example.com", "timezone": "Europe/Oslo"},
            {"userId": "bad id"}, {"userId": "u2", "email": "nope"}, {"userId": "u3", "timezone": "Mars/Base"},
            {"userId": "u4"}]
    result = client.post("/api/v1/users", json=body, headers=_h(key)).get_json()
    assert (result["created"], result["updated"]) == (2, 0)
    assert [e["index"] for e in result["errors"]] == [1, 2, 3]
    again = client.post("/api/v1/users", json={"users": [{"userId": "u1", "name": "Anna"}]}, headers=_h(key))
    assert again.get_json()["updated"] == 1
    user = client.get("/api/v1/users/u1", headers=_h(key)).get_json()
    assert user["name"] == "Anna" and user["userId"] == "u1"
    assert client.get("/api/v1/users/zzz", headers=_h(key)).status_code == 404
    too_many = client.post("/api/v1/users", json=[{"userId": f"x{i}"} for i in range(10_001)], headers=_h(key))
    assert too_many.status_code == 400


def test_one_call_send_uses_the_campaign_engine(client, api_key):
    make_template()
    key = api_key()
    response = client.post("/api/v1/notifications", headers=_h(key), json={
        "templateId": "promo", "targets": ["a", "b", "a"], "variables": {"offer": "Free"}, "channel": "in_app"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["total"] == 2
    # Same jobs as campaigns: the start job and chunk jobs of dashboard.jobs, on the realtime queue.
    assert [j.func_name for j in get_queue("realtime").get_jobs()] == ["dashboard.jobs.start_campaign"]
    drain()
    campaign = db.session.get(Campaign, body["id"])
    assert (campaign.kind, campaign.status, campaign.sent) == ("notification", "sent", 2)
    assert db.session.scalar(select(func.count()).select_from(CampaignChunk).where(
        CampaignChunk.campaign_id == campaign.id)) == 1
    note = db.session.scalar(select(Notification).where(Notification.user_id == "a"))
    assert note.campaign_id == campaign.id and note.body == "Free "
    assert client.get("/api/v1/campaigns", headers=_h(key)).get_json()["items"] == []  # not in the campaign list


def test_one_call_limits_and_errors(client, api_key):
    make_template()
    make_template("drafty", status="draft")
    key = api_key()
    over = client.post("/api/v1/notifications", headers=_h(key),
                       json={"templateId": "promo", "targets": [f"u{i}" for i in range(10_001)]})
    assert over.status_code == 400 and "target limit exceeded" in over.get_json()["error"]["message"]
    draft = client.post("/api/v1/notifications", headers=_h(key),
                        json={"templateId": "drafty", "targets": ["u1"], "variables": {"offer": "x"}})
    assert draft.status_code == 400 and "only approved templates" in draft.get_json()["error"]["message"]
    missing = client.post("/api/v1/notifications", headers=_h(key), json={"templateId": "promo", "targets": ["u1"]})
    assert missing.status_code == 400 and "missing a required variable" in missing.get_json()["error"]["message"]
    bad = client.post("/api/v1/notifications", headers=_h(key),
                      json={"templateId": "promo", "targets": ["ok", "no good"], "variables": {"offer": "x"}})
    assert bad.status_code == 400 and bad.get_json()["error"]["details"][0]["index"] == 1
    assert client.post("/api/v1/notifications", headers=_h(key), json={"templateId": "promo", "targets": []}) \
        .status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0


def _deliver(client, key, targets, n=1):
    for _ in range(n):
        client.post("/api/v1/notifications", headers=_h(key),
                    json={"templateId": "promo", "targets": targets, "variables": {"offer": "x"}})
    drain()


def test_feed_pagination_unread_and_idempotent_read_click(client, api_key):
    make_template()
    key = api_key()
    _deliver(client, key, ["reader"], n=5)
    first = client.get("/api/v1/users/reader/notifications?limit=2", headers=_h(key)).get_json()
    assert first["unreadCount"] == 5 and len(first["items"]) == 2 and first["nextCursor"]
    ids = [i["id"] for i in first["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    rest = client.get(f"/api/v1/users/reader/notifications?limit=10&cursor={first['nextCursor']}",
                      headers=_h(key)).get_json()
    assert len(rest["items"]) == 3 and rest["nextCursor"] is None and max(i["id"] for i in rest["items"]) < min(ids)
    target = ids[0]
    once = client.post(f"/api/v1/users/reader/notifications/{target}/read", headers=_h(key)).get_json()
    twice = client.post(f"/api/v1/users/reader/notifications/{target}/read", headers=_h(key)).get_json()
    assert once["readAt"] and once["readAt"] == twice["readAt"]
    clicked = client.post(f"/api/v1/users/reader/notifications/{ids[1]}/clicked", headers=_h(key)).get_json()
    again = client.post(f"/api/v1/users/reader/notifications/{ids[1]}/clicked", headers=_h(key)).get_json()
    assert clicked["clickedAt"] == again["clickedAt"] and clicked["readAt"]  # a click also reads
    unread = client.get("/api/v1/users/reader/notifications?unreadOnly=true", headers=_h(key)).get_json()
    assert unread["unreadCount"] == 3 and len(unread["items"]) == 3
    assert client.post(f"/api/v1/users/someone-else/notifications/{target}/read", headers=_h(key)).status_code == 404


def test_read_and_click_counts_show_on_campaign_page(client, api_key, logged_in):
    make_template()
    key = api_key()
    _deliver(client, key, ["a", "b", "c", "d"])
    cid = db.session.scalar(select(Campaign.id))
    notes = db.session.scalars(select(Notification).order_by(Notification.id)).all()
    for n in notes[:2]:
        client.post(f"/api/v1/users/{n.user_id}/notifications/{n.id}/read", headers=_h(key))
        client.post(f"/api/v1/users/{n.user_id}/notifications/{n.id}/read", headers=_h(key))
    client.post(f"/api/v1/users/{notes[0].user_id}/notifications/{notes[0].id}/clicked", headers=_h(key))
    logged_in("support")
    html = client.get(f"/campaigns/{cid}").get_data(as_text=True)
    assert 'data-testid="eng-delivered">4<' in html
    assert 'data-testid="eng-read">2<' in html and "read · 50.0%" in html
    assert 'data-testid="eng-clicked">1<' in html and "clicked · 25.0%" in html
    assert "<svg class=\"chart\"" in html


def test_support_lookup_and_view_as_user(client, api_key, logged_in):
    make_template()
    key = api_key()
    client.post("/api/v1/users", json=[{"userId": "vip", "name": "<b>Vee</b>"}], headers=_h(key))
    _deliver(client, key, ["vip"])
    logged_in("support")
    html = client.get("/support?userId=vip").get_data(as_text=True)
    assert "One-call: promo" in html and "one-call" in html and 'data-testid="delivery-status">sent<' in html
    assert "<b>Vee</b>" not in html and "&lt;b&gt;Vee&lt;/b&gt;" in html
    feed = client.get("/users/vip").get_data(as_text=True)
    assert "Hi there" in feed and "1 unread" in feed
    assert "Nothing has targeted" in client.get("/support?userId=ghost").get_data(as_text=True)
    log = client.get("/notifications").get_data(as_text=True)
    cid = db.session.scalar(select(Campaign.id))
    assert f">#{cid}</a>" in log and "Promo" in log
    audit = client.get("/audit").get_data(as_text=True)
    assert "started sending campaign" in audit and "sent a one-call notification" in audit


def test_support_gets_403_on_every_write_route(app, client, logged_in, api_key):
    """Walk every registered route that changes state: support is refused on all of them."""
    make_template()
    logged_in("support")
    from tests.conftest import csrf_from

    token = csrf_from(client.get("/").get_data(as_text=True))
    support_key = api_key("support")
    checked = 0
    for rule in app.url_map.iter_rules():
        methods = rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        if not methods or rule.endpoint in ("auth.login", "auth.logout") or rule.endpoint.startswith("account."):
            continue  # signing in and out, and one's own preferences (time zone), are for every role
        if rule.endpoint.startswith("inbox."):
            continue  # end users' own inbox: a user token, never an account (test_access: a session gets 401)
        url = rule.rule
        for arg in rule.arguments:
            url = re.sub(rf"<int(\([^)]*\))?:{arg}>", "1", url).replace(f"<{arg}>", "x")
        url = url.replace("<any(approve, archive):action>", "approve").replace(
            "<any(activate, deactivate):action>", "activate").replace("<any(read, clicked):what>", "read")
        for method in methods:
            if rule.endpoint.startswith("api."):
                response = client.open(url, method=method, json={}, headers=_h(support_key))
            else:
                response = client.open(url, method=method, data={"csrf_token": token})
            assert response.status_code == 403, (method, url, response.status_code)
            checked += 1
    assert checked >= 40


def test_users_csv_import_reuses_the_recipient_reader(client, logged_in):
    logged_in("marketer")
    import io

    from tests.conftest import csrf_from

    token = csrf_from(client.get("/users").get_data(as_text=True))
    data = b"\xef\xbb\xbfuser_id;name;email\nu1;Ann;ann@example.com\nbad id;x;\nu2;Bo;\n"
    response = client.post("/users/import", data={"csrf_token": token, "file": (io.BytesIO(data), "u.csv")},
                           content_type="multipart/form-data")
    preview = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nothing is saved until you confirm" in preview and db.session.get(User, "u1") is None
    confirmed = client.post(response.headers["Location"], data={"csrf_token": token})
    page = client.get(confirmed.headers["Location"]).get_data(as_text=True)
    assert "2 new, 0 updated" in page and "row 3" in page
    assert db.session.get(User, "u1").email == "ann@example.com"


def test_a_one_call_send_with_a_value_no_message_can_carry_still_finishes(app):
    """Written straight into the database (the API may refuse it): nothing hangs, every target
    fails with the reason, and the one-call reaches a final status."""
    from dashboard.services import notifications
    from dashboard.services.actor import Actor

    make_template()
    call = notifications.send({"templateId": "promo", "targets": ["a", "b", "c"], "variables": {"offer": "ok"}},
                              Actor.system("test"))
    db.session.execute(Campaign.__table__.update().where(Campaign.id == call.id)
                       .values(variables={"offer": "bad \x00 value"}))
    db.session.commit()
    drain()
    db.session.expire_all()
    c = db.session.get(Campaign, call.id)
    assert (c.status, c.failed, c.sent, c.pending) == ("sent", 3, 0, 0)
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
