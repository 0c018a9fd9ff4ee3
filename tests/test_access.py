import pytest

from tests.conftest import csrf_from

ADMIN_PAGES = ["/admin/accounts", "/admin/api-keys"]


def test_every_route_declares_an_access_rule(app):
    """Fail closed: a view without roles(...) or public would answer 403 to everyone,
    so every registered endpoint must say who may use it."""
    undeclared = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        if not (getattr(view, "is_public", False) or getattr(view, "allowed_roles", None)):
            undeclared.append(rule.rule)
    assert undeclared == []


INBOX_PUBLIC = {
    "/inbox/v1/herald-inbox.js": "the widget's script, for any page",
    "/inbox/v1/notifications": "user token",
    "/inbox/v1/notifications/<int(max=9223372036854775807):notification_id>/<any(read, click, archive):what>":
        "user token",
    "/inbox/v1/notifications/read-all": "user token",
    "/inbox/v1/stream": "user token",
    "/inbox/v1/unread-count": "user token",
}


def test_only_login_and_healthz_are_public(app):
    """/metrics is for a scraper, so it checks its own credential instead of a session: the
    HERALD_METRICS_TOKEN bearer token or a signed-in admin (tests/test_ops_metrics.py). /c/<token>
    is an email's tracked link, followed by recipients who have no account: it checks its own
    signature instead (tests/test_clicks.py). /inbox/v1 is called from customers' pages by their end
    users, who have no account either: it checks a signed user token instead of a role (below and
    tests/test_inbox_api.py), except the widget's script, which is public on purpose."""
    public = sorted(r.rule for r in app.url_map.iter_rules()
                    if getattr(app.view_functions[r.endpoint], "is_public", False))
    assert [p for p in public if not p.startswith("/inbox/")] == ["/c/<path:token>", "/healthz", "/login", "/metrics"]
    assert sorted(p for p in public if p.startswith("/inbox/")) == sorted(INBOX_PUBLIC)


@pytest.mark.parametrize("method,path", [("GET", "/inbox/v1/notifications"), ("GET", "/inbox/v1/unread-count"),
                                         ("GET", "/inbox/v1/stream"), ("POST", "/inbox/v1/notifications/1/read"),
                                         ("POST", "/inbox/v1/notifications/1/click"),
                                         ("POST", "/inbox/v1/notifications/1/archive"),
                                         ("POST", "/inbox/v1/notifications/read-all")])
def test_public_inbox_routes_need_a_user_token_not_a_session(client, logged_in, api_key, method, path):
    """'Public' to the account roles only: without a user token each answers 401, signed in or with an API key."""
    assert client.open(path, method=method).get_json()["error"]["code"] == "token_missing"
    logged_in("admin")
    response = client.open(path, method=method)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "token_missing"
    response = client.open(path, method=method, headers={"Authorization": f"Bearer {api_key('admin')}"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"


@pytest.mark.parametrize("role", ["support", "marketer"])
def test_non_admins_get_403_on_admin_pages(client, logged_in, role):
    logged_in(role)
    for path in ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == 403
        html = response.get_data(as_text=True)
        assert "You don&#39;t have access to this page" in html or "access to this page" in html
        assert 'class="topbar"' in html  # the error page keeps the layout and navigation


def test_support_cannot_post_admin_forms(client, logged_in, make_account):
    logged_in("support")
    target = make_account("marketer")
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post(f"/admin/accounts/{target.id}/role", data={"role": "admin", "csrf_token": token})
    assert response.status_code == 403
    from dashboard.extensions import db
    from dashboard.models import Account

    assert db.session.get(Account, target.id).role == "marketer"


def test_admin_sees_admin_pages(client, logged_in):
    logged_in("admin")
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 200


@pytest.mark.parametrize("role,visible", [("admin", True), ("marketer", False), ("support", False)])
def test_navigation_shows_only_what_the_role_may_use(client, logged_in, role, visible):
    logged_in(role)
    html = client.get("/").get_data(as_text=True)
    assert ('href="/admin/accounts"' in html) is visible
    assert ('href="/admin/api-keys"' in html) is visible


def test_404_page_matches_the_layout(client, logged_in):
    logged_in("marketer")
    response = client.get("/no/such/page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "Page not found" in html and 'class="topbar"' in html


def test_redis_outage_page_is_friendly(app, client, logged_in):
    logged_in("marketer")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        from dashboard.extensions import get_redis

        get_redis().connection_pool.disconnect()
        broken = app.extensions["herald_redis"]
        app.extensions["herald_redis"] = type(broken).from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        # The login throttle needs Redis: an outage surfaces as a friendly 503, not a traceback.
        client.post("/logout", data={"csrf_token": csrf_from(client.get("/").get_data(as_text=True))})
        token = csrf_from(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"email": "a@b.co", "password": "x" * 9, "csrf_token": token})
    finally:
        app.extensions["herald_redis"] = broken
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "Temporarily unavailable" in html and "nothing was changed" in html
    assert "Traceback" not in html


def test_htmx_request_without_session_gets_hx_redirect(client):
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_htmx_post_without_csrf_header_is_rejected(client, logged_in, make_account):
    logged_in("admin")
    target = make_account("marketer")
    response = client.post(f"/admin/accounts/{target.id}/deactivate", headers={"HX-Request": "true"})
    assert response.status_code == 400
    token = csrf_from(client.get("/").get_data(as_text=True))
    response = client.post(f"/admin/accounts/{target.id}/deactivate",
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 302
