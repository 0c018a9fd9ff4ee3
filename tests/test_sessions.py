"""Server-side sessions: logout, deactivation, a new password and idleness end a session for
every copy of its cookie; a remember cookie cannot bring one back."""

from __future__ import annotations

from datetime import timedelta

from flask_login.utils import encode_cookie
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import AccountSession, utcnow
from dashboard.services import accounts, sessions
from dashboard.services.actor import Actor
from tests.conftest import csrf_from, login

ADMIN = Actor.system("test")


def _copy(client, app):
    """A second browser holding a copy of the first one's session cookie."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def _signed_out(response) -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def _logout(client):
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def _session_rows(account_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(AccountSession)
                             .where(AccountSession.account_id == account_id))


def test_login_records_a_session_and_the_cookie_token_is_not_stored(app, client, make_account):
    account = make_account()
    login(client, account.email)
    assert _session_rows(account.id) == 1
    cookie = app.session_interface.get_signing_serializer(app).loads(client.get_cookie("session").value)
    stored = db.session.scalar(select(AccountSession.token_hash))
    assert cookie["sid"] and cookie["sid"] != stored and len(stored) == 64


def test_copied_cookie_stops_working_after_logout(app, client, make_account):
    account = make_account()
    login(client, account.email)
    copy = _copy(client, app)
    assert copy.get("/campaigns").status_code == 200
    _logout(client)
    response = copy.get("/campaigns")
    assert _signed_out(response)
    assert "Your session has ended" in copy.get(response.headers["Location"]).get_data(as_text=True)
    assert _session_rows(account.id) == 0


def test_logout_ends_only_that_session(app, make_account):
    account = make_account()
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, account.email)
    login(phone, account.email)
    _logout(laptop)
    assert phone.get("/campaigns").status_code == 200
    assert _signed_out(laptop.get("/campaigns"))


def test_deactivating_an_account_ends_its_sessions(app, client, make_account):
    admin, account = make_account("admin"), make_account()
    login(client, account.email)
    accounts.set_active(account.id, False, Actor(label=admin.email, account_id=admin.id))
    assert _signed_out(client.get("/campaigns"))
    accounts.set_active(account.id, True, Actor(label=admin.email, account_id=admin.id))
    assert _signed_out(client.get("/campaigns"))  # reactivating does not revive the old session


def test_deactivation_through_the_admin_page_signs_the_account_out(app, make_account):
    admin, account = make_account("admin"), make_account()
    admin_browser, browser = app.test_client(), app.test_client()
    login(admin_browser, admin.email)
    login(browser, account.email)
    token = csrf_from(admin_browser.get("/admin/accounts").get_data(as_text=True))
    assert admin_browser.post(f"/admin/accounts/{account.id}/deactivate",
                              data={"csrf_token": token}).status_code == 302
    assert _signed_out(browser.get("/campaigns"))


def test_a_new_password_ends_every_session(app, client, make_account):
    account = make_account()
    login(client, account.email)
    accounts.set_password(account, "a brand new password")
    db.session.commit()
    assert _signed_out(client.get("/campaigns"))
    assert login(client, account.email, "a brand new password").status_code == 302
    assert client.get("/campaigns").status_code == 200


def test_idle_session_expires(app, client, make_account):
    account = make_account()
    login(client, account.email)
    idle = timedelta(minutes=app.config["HERALD_SESSION_IDLE_MINUTES"])
    db.session.execute(AccountSession.__table__.update().values(last_seen_at=utcnow() - idle - timedelta(seconds=5)))
    db.session.commit()
    assert _signed_out(client.get("/campaigns"))
    assert _session_rows(account.id) == 0


def test_activity_restarts_the_idle_clock(app, client, make_account):
    account = make_account()
    login(client, account.email)
    idle = timedelta(minutes=app.config["HERALD_SESSION_IDLE_MINUTES"])
    db.session.execute(AccountSession.__table__.update().values(last_seen_at=utcnow() - idle + timedelta(minutes=1)))
    db.session.commit()
    assert client.get("/campaigns").status_code == 200
    db.session.expire_all()
    assert utcnow() - db.session.scalar(select(AccountSession.last_seen_at)) < timedelta(seconds=30)


def test_remember_cookie_cannot_bring_a_revoked_session_back(app, client, make_account):
    account = make_account()
    login(client, account.email)
    copy = _copy(client, app)
    _logout(client)
    remember = encode_cookie(str(account.id))
    copy.set_cookie(app.config.get("REMEMBER_COOKIE_NAME", "remember_token"), remember)
    assert _signed_out(copy.get("/campaigns"))
    fresh = app.test_client()  # a remember cookie alone, no session at all
    fresh.set_cookie(app.config.get("REMEMBER_COOKIE_NAME", "remember_token"), remember)
    assert _signed_out(fresh.get("/campaigns"))


def test_a_session_token_only_signs_in_its_own_account(app, client, make_account):
    victim, account = make_account("admin"), make_account("support")
    login(client, account.email)
    with client.session_transaction() as cookie:
        cookie["_user_id"] = str(victim.id)  # as if the secret key leaked: the row still says who
    assert _signed_out(client.get("/admin/accounts"))


def test_signing_in_clears_expired_sessions_of_everyone(app, make_account):
    old, new = make_account(), make_account()
    token = sessions.start(old)
    db.session.execute(AccountSession.__table__.update().values(last_seen_at=utcnow() - timedelta(days=60)))
    db.session.commit()
    sessions.start(new)
    assert sessions.resume(token, old.id) is None
    assert _session_rows(old.id) == 0 and _session_rows(new.id) == 1
