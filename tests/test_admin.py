from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import Account, ApiKey, AuditEvent
from tests.conftest import csrf_from, login


def _token(client, path="/admin/accounts"):
    return csrf_from(client.get(path).get_data(as_text=True))


def test_admin_creates_account_that_can_sign_in(app, client, logged_in):
    admin = logged_in("admin")
    response = client.post("/admin/accounts", data={
        "email": "new.marketer@example.com", "role": "marketer", "password": "long enough pw",
        "csrf_token": _token(client)})
    assert response.status_code == 302
    page = client.get("/admin/accounts").get_data(as_text=True)
    assert "Account new.marketer@example.com created as marketer." in page
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "account.created",
                                                       AuditEvent.actor_account_id == admin.id))
    assert event.details["email"] == "new.marketer@example.com"
    other = app.test_client()
    assert login(other, "new.marketer@example.com", "long enough pw").status_code == 302


def test_account_form_errors_are_shown_per_field(client, logged_in):
    admin = logged_in("admin")
    response = client.post("/admin/accounts", data={
        "email": admin.email, "role": "marketer", "password": "long enough pw", "csrf_token": _token(client)})
    assert response.status_code == 400
    assert "An account with this email already exists." in response.get_data(as_text=True)
    response = client.post("/admin/accounts", data={
        "email": "not-an-email", "role": "marketer", "password": "short", "csrf_token": _token(client)})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter a valid email address." in html
    response = client.post("/admin/accounts", data={
        "email": "ok@example.com", "role": "marketer", "password": "short", "csrf_token": _token(client)})
    assert "Password must be at least 8 characters." in response.get_data(as_text=True)
    assert db.session.scalar(select(Account).where(Account.email == "ok@example.com")) is None


def test_admin_changes_role_and_it_is_audited(client, logged_in, make_account):
    logged_in("admin")
    target = make_account("support")
    client.post(f"/admin/accounts/{target.id}/role", data={"role": "marketer", "csrf_token": _token(client)})
    db.session.expire_all()
    assert db.session.get(Account, target.id).role == "marketer"
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "account.role_changed"))
    assert (event.from_status, event.to_status) == ("support", "marketer")


def test_last_admin_cannot_be_demoted_or_deactivated(client, logged_in):
    admin = logged_in("admin")
    response = client.post(f"/admin/accounts/{admin.id}/role", data={"role": "support", "csrf_token": _token(client)})
    assert "last active admin" in client.get(response.headers["Location"]).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Account, admin.id).role == "admin"


def test_deactivate_blocks_sign_in(app, client, logged_in, make_account):
    logged_in("admin")
    target = make_account("marketer")
    client.post(f"/admin/accounts/{target.id}/deactivate", data={"csrf_token": _token(client)})
    assert login(app.test_client(), target.email).status_code == 401
    html = client.get("/admin/accounts").get_data(as_text=True)
    assert "deactivated" in html
    assert 'data-confirm="Deactivate' in html  # destructive action asks first


def test_api_key_page_shows_key_once_and_revokes(client, logged_in, make_account):
    logged_in("admin")
    owner = make_account("marketer")
    token = _token(client, "/admin/api-keys")
    response = client.post("/admin/api-keys", data={"name": "CRM sync", "account_id": owner.id, "csrf_token": token})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "it will not be shown again" in html
    import re

    plain = re.search(r'id="new-key" class="mono" type="text" readonly value="([^"]+)"', html).group(1)
    api = client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {plain}"})
    assert api.status_code == 200
    listing = client.get("/admin/api-keys").get_data(as_text=True)
    assert plain not in listing and "CRM sync" in listing
    key = db.session.scalar(select(ApiKey).where(ApiKey.account_id == owner.id))
    client.post(f"/admin/api-keys/{key.id}/revoke", data={"csrf_token": _token(client, "/admin/api-keys")})
    assert client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    actions = set(db.session.scalars(select(AuditEvent.action)).all())
    assert {"api_key.created", "api_key.revoked"} <= actions


def test_user_text_is_escaped_on_admin_pages(client, logged_in):
    logged_in("admin")
    from dashboard.services import accounts
    from dashboard.services.actor import Actor

    admin = db.session.scalar(select(Account).where(Account.role == "admin"))
    accounts.create_api_key(admin, '<script>alert(1)</script>', Actor.system("test"))
    html = client.get("/admin/api-keys").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_in_app_channel_card_points_to_the_inbox_widget_its_settings_and_the_demo(app, client, logged_in,
                                                                                     monkeypatch):
    logged_in("admin")
    page = client.get("/admin/channels").get_data(as_text=True)
    card = page[page.index('id="inbox-embed"'):]
    card = card[:card.index("</p>")]
    assert 'href="/inbox/v1/herald-inbox.js"' in card and 'href="/admin/inbox"' in card
    assert 'href="/docs/api"' in card and "inbox demo" not in card  # no demo outside `make run`
    monkeypatch.setitem(app.config, "HERALD_INBOX_DEMO_URL", "http://127.0.0.1:5001/")
    page = client.get("/admin/channels").get_data(as_text=True)
    assert '<a href="http://127.0.0.1:5001/" target="_blank" rel="noopener">Open the inbox demo</a>' in page
