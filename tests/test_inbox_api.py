"""The end-user inbox API (/inbox/v1) and its server-to-server parts (the token, the settings), through
the Flask test client on the real database and Redis: what a widget sees, and what the rows and the
campaign counters hold afterwards. The live stream itself is tested through gunicorn elsewhere."""

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import AuditEvent, Campaign, Notification
from dashboard.services import campaigns, inbox, lifecycle, notifications, recipients, templates
from dashboard.services.actor import Actor
from tests.engine import drain_until_idle

ACTOR = Actor.system("test")
APP = "https://app.example.com"
WIDGET = Path(__file__).resolve().parent.parent / "static" / "inbox" / "v1" / "herald-inbox.js"


@pytest.fixture(autouse=True)
def _fresh_settings():
    """The inbox settings are cached a few seconds per process; each test starts from an emptied database."""
    inbox._cache.clear()


def _template() -> None:
    templates.create({
        "name": "Promo", "templateId": "promo",
        "channels": {"in_app": {"title": "Hi {{ firstName }}", "body": "{{ offer }}",
                                "actionUrl": "https://shop.example.com/sale"}},
        "variableSchema": [{"key": "firstName", "type": "string", "defaultValue": "there"},
                           {"key": "offer", "type": "string", "required": True}]}, ACTOR)
    templates.transition("promo", "approve", ACTOR)


def _campaign(name: str, user_ids: list[str]) -> int:
    """A campaign delivered in-app to the users (real jobs): one feed item each."""
    campaign = campaigns.create({"name": name, "templateId": "promo", "variables": {"offer": name}}, ACTOR)
    recipients.add_manual(campaign.id, user_ids, {}, ACTOR)
    lifecycle.send(campaign.id, None, ACTOR)
    drain_until_idle()  # a slow machine's slices may be continued by a later job
    return campaign.id


@pytest.fixture
def feed_of():
    """Items delivered by one-call sends: `feed_of(5)` gives alice 5 items (and bob 5), oldest first."""
    _template()

    def make(count: int, users=("alice", "bob")) -> list[int]:
        for n in range(count):
            notifications.send({"templateId": "promo", "targets": list(users), "variables": {"offer": f"offer {n}"}},
                               ACTOR)
        drain_until_idle()  # a slow machine's slices may be continued by a later job
        ids = db.session.scalars(select(Notification.id).where(Notification.user_id == users[0])
                                 .order_by(Notification.id)).all()
        assert len(ids) >= count, ids
        return ids
    return make


@pytest.fixture
def token(client, api_key):
    key = api_key("marketer")

    def mint(user_id: str = "alice", **body) -> str:
        response = client.post(f"/api/v1/users/{user_id}/inbox-token", json=body,
                               headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["token"]
    return mint


def call(client, method: str, path: str, token: str | None = None, headers=None, **kwargs):
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return client.open(f"/inbox/v1{path}", method=method, headers=sent, **kwargs)


def _vary(response) -> set[str]:
    return {v.strip().lower() for line in response.headers.get_all("Vary") for v in line.split(",")}


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def _counters(campaign_id: int) -> tuple[int, int]:
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    return campaign.read_count, campaign.clicked_count


def _rows(campaign_id: int) -> tuple[int, int]:
    """(read, clicked) feed rows of a campaign: what its counters must equal."""
    def count(column):
        return db.session.scalar(select(func.count()).select_from(Notification).where(
            Notification.campaign_id == campaign_id, column.is_not(None)))
    return count(Notification.read_at), count(Notification.clicked_at)


# -- the token ------------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["admin", "marketer"])
def test_writers_mint_a_token_for_one_user(client, api_key, role):
    before = time.time()
    response = client.post("/api/v1/users/alice@example.com/inbox-token",
                           headers={"Authorization": f"Bearer {api_key(role)}"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"token", "userId", "expiresAt"} and body["userId"] == "alice@example.com"
    expires = datetime.fromisoformat(body["expiresAt"])
    assert expires.tzinfo is not None
    assert before + 43200 - 2 <= expires.timestamp() <= time.time() + 43200 + 1  # HERALD_INBOX_TOKEN_TTL
    assert inbox.read_token(body["token"])[0] == "alice@example.com"


def test_support_may_not_mint_a_token(client, api_key):
    response = client.post("/api/v1/users/alice/inbox-token", headers={"Authorization": f"Bearer {api_key('support')}"})
    assert error_of(response) == (403, "forbidden")


def test_a_bad_user_id_is_refused_naming_the_field(client, api_key):
    response = client.post("/api/v1/users/not%20an%20id!/inbox-token",
                           headers={"Authorization": f"Bearer {api_key()}"})
    assert error_of(response) == (400, "validation_error")
    assert [d["field"] for d in response.get_json()["error"]["details"]] == ["userId"]


@pytest.mark.parametrize("expires_in", [0, -5, 604801, True, 1.5, "60", None, [60]])
def test_expires_in_must_be_whole_seconds_within_a_week(client, api_key, expires_in):
    response = client.post("/api/v1/users/alice/inbox-token", json={"expiresIn": expires_in},
                           headers={"Authorization": f"Bearer {api_key()}"})
    if expires_in is None:  # null: the default lifetime
        assert response.status_code == 201
        return
    assert error_of(response) == (400, "validation_error")
    assert [d["field"] for d in response.get_json()["error"]["details"]] == ["expiresIn"]


@pytest.mark.parametrize("expires_in,seconds", [(1, 1), (604800, 604800), (60.0, 60)])
def test_expires_in_sets_the_lifetime(client, api_key, expires_in, seconds):
    response = client.post("/api/v1/users/alice/inbox-token", json={"expiresIn": expires_in},
                           headers={"Authorization": f"Bearer {api_key()}"})
    assert response.status_code == 201
    expires = datetime.fromisoformat(response.get_json()["expiresAt"]).timestamp()
    assert abs(expires - (time.time() + seconds)) <= 2


# -- the feed -------------------------------------------------------------------------------------

def test_feed_pages_newest_first_by_cursor(client, token, feed_of):
    ids = feed_of(5)
    alice = token("alice")
    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = call(client, "GET", "/notifications", alice, query_string=query)
        assert response.status_code == 200
        body = response.get_json()
        assert body["unreadCount"] == 5
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    first = call(client, "GET", "/notifications", alice).get_json()["items"][0]
    assert set(first) == {"id", "campaignId", "title", "body", "imageUrl", "actionUrl", "createdAt", "readAt",
                          "clickedAt", "archivedAt"}
    assert first["title"] == "Hi there" and first["body"] == "offer 4"
    assert first["actionUrl"] == "https://shop.example.com/sale"
    assert first["readAt"] is None and first["clickedAt"] is None and first["archivedAt"] is None


def test_feed_is_only_the_tokens_user(client, token, feed_of):
    feed_of(2, users=("alice",))
    feed_of_bob = call(client, "GET", "/notifications", token("bob")).get_json()
    assert feed_of_bob == {"items": [], "unreadCount": 0, "nextCursor": None}


@pytest.mark.parametrize("query,field", [({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                                         ({"unreadOnly": "yes"}, "unreadOnly"), ({"archived": "1"}, "archived"),
                                         ({"cursor": "not-a-cursor"}, "cursor")])
def test_feed_refuses_bad_query_parameters(client, token, query, field):
    response = call(client, "GET", "/notifications", token(), query_string=query)
    assert error_of(response) == (400, "validation_error")
    assert field in response.get_json()["error"]["message"]


def test_read_is_idempotent_and_counted_once(client, token):
    _template()
    campaign_id = _campaign("Spring", ["alice", "bob"])
    alice = token("alice")
    item = call(client, "GET", "/notifications", alice).get_json()["items"][0]
    assert item["campaignId"] == campaign_id
    first = call(client, "POST", f"/notifications/{item['id']}/read", alice)
    assert first.status_code == 200
    body = first.get_json()
    assert body["unreadCount"] == 0 and body["notification"]["readAt"] is not None
    again = call(client, "POST", f"/notifications/{item['id']}/read", alice).get_json()
    assert again["notification"]["readAt"] == body["notification"]["readAt"]  # the first time stays
    assert _counters(campaign_id) == (1, 0) == _rows(campaign_id)
    unread = call(client, "GET", "/notifications", alice, query_string={"unreadOnly": "true"}).get_json()
    assert unread["items"] == [] and unread["unreadCount"] == 0
    assert call(client, "GET", "/unread-count", alice).get_json() == {"unreadCount": 0}


def test_click_records_click_and_read_once_and_returns_the_action_url(client, token):
    _template()
    campaign_id = _campaign("Spring", ["alice", "bob"])
    alice = token("alice")
    note_id = call(client, "GET", "/notifications", alice).get_json()["items"][0]["id"]
    for _ in range(3):
        response = call(client, "POST", f"/notifications/{note_id}/click", alice)
        assert response.status_code == 200
        body = response.get_json()
        assert body["actionUrl"] == "https://shop.example.com/sale" and body["unreadCount"] == 0
        assert body["notification"]["clickedAt"] and body["notification"]["readAt"]
    assert _counters(campaign_id) == (1, 1) == _rows(campaign_id)
    call(client, "POST", f"/notifications/{note_id}/read", alice)  # read after the click: no second count
    assert _counters(campaign_id) == (1, 1) == _rows(campaign_id)


def test_archive_hides_an_item_from_the_feed_and_the_unread_count(client, token, feed_of):
    ids = feed_of(3)
    alice = token("alice")
    response = call(client, "POST", f"/notifications/{ids[1]}/archive", alice)
    assert response.status_code == 200
    body = response.get_json()
    assert body["notification"]["archivedAt"] is not None and body["notification"]["readAt"] is None
    assert body["unreadCount"] == 2
    again = call(client, "POST", f"/notifications/{ids[1]}/archive", alice).get_json()
    assert again["notification"]["archivedAt"] == body["notification"]["archivedAt"]
    feed = call(client, "GET", "/notifications", alice).get_json()
    assert [i["id"] for i in feed["items"]] == [ids[2], ids[0]] and feed["unreadCount"] == 2
    archived = call(client, "GET", "/notifications", alice, query_string={"archived": "true"}).get_json()
    assert [i["id"] for i in archived["items"]] == [ids[1]]
    assert call(client, "GET", "/unread-count", alice).get_json() == {"unreadCount": 2}
    read_all = call(client, "POST", "/notifications/read-all", alice).get_json()
    assert read_all == {"updated": 2, "unreadCount": 0}
    assert db.session.get(Notification, ids[1]).read_at is None  # archived items are left as they were


def test_read_all_counts_once_per_campaign(client, token):
    _template()
    first, second, third = (_campaign(name, ["alice", "bob"]) for name in ("A", "B", "C"))
    alice = token("alice")
    b_item = next(i for i in call(client, "GET", "/notifications", alice).get_json()["items"]
                  if i["campaignId"] == second)
    call(client, "POST", f"/notifications/{b_item['id']}/read", alice)
    response = call(client, "POST", "/notifications/read-all", alice)
    assert response.status_code == 200 and response.get_json() == {"updated": 2, "unreadCount": 0}
    assert call(client, "POST", "/notifications/read-all", alice).get_json() == {"updated": 0, "unreadCount": 0}
    for campaign_id in (first, second, third):
        assert _counters(campaign_id) == (1, 0) == _rows(campaign_id)
    bob = call(client, "GET", "/notifications", token("bob")).get_json()
    assert bob["unreadCount"] == 3 and all(i["readAt"] is None for i in bob["items"])


@pytest.mark.parametrize("what", ["read", "click", "archive"])
def test_another_users_notification_is_not_found_and_unchanged(client, token, what):
    _template()
    campaign_id = _campaign("Spring", ["alice", "bob"])
    bobs = db.session.scalar(select(Notification.id).where(Notification.user_id == "bob"))
    response = call(client, "POST", f"/notifications/{bobs}/{what}", token("alice"))
    assert error_of(response) == (404, "not_found")
    assert "bob" not in response.get_json()["error"]["message"]
    db.session.expire_all()
    note = db.session.get(Notification, bobs)
    assert (note.read_at, note.clicked_at, note.archived_at) == (None, None, None)
    assert _counters(campaign_id) == (0, 0)
    assert error_of(call(client, "POST", "/notifications/999999/read", token("alice"))) == (404, "not_found")


# -- auth -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/notifications", "/unread-count", "/stream"])
def test_no_token_is_token_missing(client, path):
    assert error_of(call(client, "GET", path)) == (401, "token_missing")
    assert error_of(call(client, "GET", path, headers={"Authorization": "Basic abc"})) == (401, "token_missing")


def test_a_tampered_token_is_invalid(client, token):
    good = token("alice")
    payload, _, signature = good.rpartition(".")
    # The first character: the last one of base64 carries unused bits, so changing it may decode to the same bytes.
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    bob = token("bob")
    swapped = bob.rpartition(".")[0] + "." + signature  # bob's payload under alice's signature
    for bad in (f"{payload}.{flipped}", swapped, "x" * 3000, "garbage"):
        assert error_of(call(client, "GET", "/unread-count", bad)) == (401, "invalid_token")


def test_an_expired_token_is_refused(client, feed_of):
    feed_of(1)
    short, _ = inbox.issue_token("alice", expires_in=1)
    assert call(client, "GET", "/unread-count", short).get_json() == {"unreadCount": 1}
    time.sleep(1.1)
    response = call(client, "GET", "/notifications", short)
    assert error_of(response) == (401, "token_expired")
    assert "expired" in response.get_json()["error"]["message"]


def test_rotation_revokes_every_token(client, api_key, token):
    old = token("alice")
    assert call(client, "GET", "/unread-count", old).status_code == 200
    response = client.post("/api/v1/settings/inbox/rotate", headers={"Authorization": f"Bearer {api_key('admin')}"})
    assert response.status_code == 200 and response.get_json()["rotatedAt"]
    assert error_of(call(client, "GET", "/unread-count", old)) == (401, "invalid_token")
    assert call(client, "GET", "/unread-count", token("alice")).status_code == 200


def test_keys_and_tokens_do_not_cross(client, api_key, token):
    key = api_key("admin")
    assert error_of(call(client, "GET", "/notifications", key)) == (401, "invalid_token")
    response = client.get("/api/v1/users/alice/notifications", headers={"Authorization": f"Bearer {token('alice')}"})
    assert error_of(response) == (401, "unauthorized")


def test_a_session_cookie_is_not_a_token(client, logged_in):
    logged_in("admin")
    assert error_of(call(client, "GET", "/unread-count")) == (401, "token_missing")


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "99999999999999999999999", "\u00b2"])
def test_stream_refuses_a_bad_last_event_id(client, token, value):
    response = call(client, "GET", "/stream", token(), headers={"Last-Event-ID": value})
    assert error_of(response) == (400, "validation_error")
    assert response.get_json()["error"]["details"][0]["field"] == "Last-Event-ID"
    query = call(client, "GET", "/stream", token(), headers={"Last-Event-ID": ""}, query_string={"lastEventId": value})
    assert error_of(query) == (400, "validation_error")  # an empty header does not hide a bad query value
    assert query.get_json()["error"]["details"][0]["field"] == "lastEventId"


# -- CORS -----------------------------------------------------------------------------------------

@pytest.fixture
def allowed():
    inbox.set_settings(allowed_origins=[APP], actor=ACTOR)


def test_an_allowed_origin_is_answered_with_its_own_origin(client, token, allowed):
    response = call(client, "GET", "/unread-count", token(), headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "origin" in _vary(response)
    assert "Access-Control-Allow-Credentials" not in response.headers  # a bearer token, never cookies
    refused = call(client, "GET", "/unread-count", "garbage", headers={"Origin": APP})
    assert error_of(refused) == (401, "invalid_token")  # readable by the widget: it may ask for a new token
    assert refused.headers["Access-Control-Allow-Origin"] == APP


def test_preflight_allows_the_widgets_headers(client, allowed):
    response = client.options("/inbox/v1/stream", headers={
        "Origin": APP, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization,last-event-id"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "origin" in _vary(response)
    allowed_headers = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "last-event-id"} <= allowed_headers
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods
    post = client.options("/inbox/v1/notifications/read-all", headers={
        "Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert post.status_code == 204 and post.headers["Access-Control-Allow-Origin"] == APP


def test_a_disallowed_origin_is_refused_without_cors_headers(client, token, feed_of, allowed):
    ids = feed_of(1)
    alice = token("alice")
    for origin in ("https://evil.example.com", "http://app.example.com", "https://app.example.com:8443", "null"):
        response = call(client, "GET", "/notifications", alice, headers={"Origin": origin})
        assert error_of(response) == (403, "origin_not_allowed")
        assert "Access-Control-Allow-Origin" not in response.headers
        preflight = client.options("/inbox/v1/notifications", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight.headers
        marked = call(client, "POST", f"/notifications/{ids[0]}/read", alice, headers={"Origin": origin})
        assert marked.status_code == 403
    db.session.expire_all()
    assert db.session.get(Notification, ids[0]).read_at is None


def test_heralds_own_origin_needs_no_listing(client, token):
    assert inbox.allowed_origins() == []
    response = call(client, "GET", "/unread-count", token(), headers={"Origin": "http://localhost"})
    assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "http://localhost"


def test_no_origin_header_is_a_server_or_same_origin_call(client, token):
    response = call(client, "GET", "/unread-count", token())
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers


def test_the_widget_script_is_public_to_any_origin(client):
    if not WIDGET.exists():
        pytest.skip(f"{WIDGET} is not written yet (another engineer's file)")
    response = client.get("/inbox/v1/herald-inbox.js", headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.get_data() == WIDGET.read_bytes()


# -- settings -------------------------------------------------------------------------------------

def _admin(api_key) -> dict:
    return {"Authorization": f"Bearer {api_key('admin')}"}


@pytest.mark.parametrize("role", ["support", "marketer"])
def test_only_admins_read_and_change_inbox_settings(client, api_key, role):
    headers = {"Authorization": f"Bearer {api_key(role)}"}
    assert error_of(client.get("/api/v1/settings/inbox", headers=headers)) == (403, "forbidden")
    response = client.put("/api/v1/settings/inbox", json={"allowedOrigins": [APP]}, headers=headers)
    assert error_of(response) == (403, "forbidden")
    assert error_of(client.post("/api/v1/settings/inbox/rotate", headers=headers)) == (403, "forbidden")
    assert inbox.allowed_origins() == []


def test_settings_normalise_origins(client, api_key):
    headers = _admin(api_key)
    assert client.get("/api/v1/settings/inbox", headers=headers).get_json() == {
        "allowedOrigins": [], "rotatedAt": None, "tokenTtlSeconds": 43200}
    response = client.put("/api/v1/settings/inbox", headers=headers, json={"allowedOrigins": [
        "HTTPS://App.Example.com:443/", " http://localhost:8080 ", "http://localhost:8080/", "http://shop.example.com:80",
        "http://[::1]:8080/", "https://Bücher.example"]})
    assert response.status_code == 200
    saved = [APP, "http://localhost:8080", "http://shop.example.com", "http://[::1]:8080", "https://xn--bcher-kva.example"]
    assert response.get_json()["allowedOrigins"] == saved
    assert inbox.allowed_origins() == saved
    for origin in saved:  # each exactly as a browser sends it in Origin
        answer = call(client, "GET", "/unread-count", inbox.issue_token("alice")[0], headers={"Origin": origin})
        assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == origin
    emptied = client.put("/api/v1/settings/inbox", headers=headers, json={"allowedOrigins": []})
    assert emptied.get_json()["allowedOrigins"] == []


@pytest.mark.parametrize("origins,fields", [
    ([APP, "ftp://files.example.com", "https://a.example.com/path", 5, ""],
     ["allowedOrigins[1]", "allowedOrigins[2]", "allowedOrigins[3]", "allowedOrigins[4]"]),
    (["https://a.example.com?x=1", "https://a.example.com:99999", "app.example.com"],
     ["allowedOrigins[0]", "allowedOrigins[1]", "allowedOrigins[2]"]),
    ("https://app.example.com", ["allowedOrigins"]),
    ([f"https://s{n}.example.com" for n in range(51)], ["allowedOrigins"]),
])
def test_bad_origins_are_refused_by_path_and_nothing_is_saved(client, api_key, origins, fields):
    inbox.set_settings(allowed_origins=["https://kept.example.com"], actor=ACTOR)
    response = client.put("/api/v1/settings/inbox", headers=_admin(api_key), json={"allowedOrigins": origins})
    assert error_of(response) == (400, "validation_error")
    assert [d["field"] for d in response.get_json()["error"]["details"]] == fields
    assert inbox.allowed_origins() == ["https://kept.example.com"]
    for body in ({}, {"allowedOrigins": None}):
        missing = client.put("/api/v1/settings/inbox", headers=_admin(api_key), json=body)
        assert error_of(missing) == (400, "validation_error")
        assert [d["field"] for d in missing.get_json()["error"]["details"]] == ["allowedOrigins"]


def test_changes_are_audited_without_the_secret(client, api_key):
    headers = _admin(api_key)
    client.put("/api/v1/settings/inbox", headers=headers, json={"allowedOrigins": [APP]})
    client.post("/api/v1/settings/inbox/rotate", headers=headers)
    secret = inbox.settings(fresh=True)["secret"]
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.inbox_updated")
                                .order_by(AuditEvent.id)).all()
    assert [e.details["after"] for e in events] == [{"allowedOrigins": [APP]},
                                                    {"allowedOrigins": [APP], "secretRotated": True}]
    assert events[0].details["before"] == {"allowedOrigins": []}
    assert all(e.actor_api_key_id is not None for e in events)
    assert all(secret not in repr(e.details) and "secret\"" not in repr(e.details) for e in events)
    rotated = client.get("/api/v1/settings/inbox", headers=headers).get_json()["rotatedAt"]
    assert abs(datetime.fromisoformat(rotated).timestamp() - datetime.now(UTC).timestamp()) < 60
