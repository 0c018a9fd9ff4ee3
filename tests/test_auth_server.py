"""Sign-in behaviour through a real gunicorn, where cookies, proxy headers and a Redis outage
behave as in production: a copied cookie dies at logout, idle sessions expire, X-Forwarded-For
counts only when a proxy is trusted, and Redis down answers 503."""

from __future__ import annotations

import time

import httpx
from flask_login.utils import encode_cookie
from sqlalchemy import func, select

from dashboard.extensions import db
from dashboard.models import Campaign
from tests.conftest import PASSWORD, csrf_from
from tests.servers import free_port, gunicorn
from tests.test_api_campaigns import make_template


def sign_in(base: str, email: str, password: str = PASSWORD, **headers) -> httpx.Client:
    browser = httpx.Client(base_url=base, timeout=30, headers=headers)
    token = csrf_from(browser.get("/login").text)
    response = browser.post("/login", data={"email": email, "password": password, "csrf_token": token})
    browser.last = response
    return browser


def signed_out(response: httpx.Response) -> bool:
    return response.status_code == 302 and response.headers["location"].startswith("/login")


def test_a_copied_cookie_stops_working_after_logout(app, make_account):
    account = make_account()
    with gunicorn(app) as base:
        browser = sign_in(base, account.email)
        assert browser.last.status_code == 302
        thief = httpx.Client(base_url=base, timeout=30)
        thief.cookies.set("session", browser.cookies["session"])
        assert thief.get("/campaigns").status_code == 200
        token = csrf_from(browser.get("/campaigns").text)
        assert signed_out(browser.post("/logout", data={"csrf_token": token}))
        assert signed_out(thief.get("/campaigns"))
        thief.cookies.set("remember_token", encode_cookie(str(account.id)))  # a valid remember-me cookie
        assert signed_out(thief.get("/campaigns"))
        assert signed_out(browser.get("/campaigns"))


def test_an_idle_session_expires_and_activity_keeps_it(app, make_account):
    account = make_account()
    with gunicorn(app, HERALD_SESSION_IDLE_MINUTES="0.04") as base:  # 2.4 seconds
        browser = sign_in(base, account.email)
        for _ in range(3):  # 3.6 s of use, never 2.4 s apart
            time.sleep(1.2)
            assert browser.get("/campaigns").status_code == 200
        time.sleep(3.5)
        assert signed_out(browser.get("/campaigns"))
        assert sign_in(base, account.email).last.status_code == 302


def _lock_out(base: str, email: str, limit: int, **headers) -> None:
    for _ in range(limit):
        assert sign_in(base, email, "wrong-password", **headers).last.status_code == 401


def test_forwarded_for_separates_clients_behind_a_trusted_proxy(app, make_account):
    account = make_account()
    with gunicorn(app, HERALD_TRUSTED_PROXIES="1", HERALD_LOGIN_MAX_FAILURES="2") as base:
        _lock_out(base, account.email, 2, **{"X-Forwarded-For": "203.0.113.7"})
        blocked = sign_in(base, account.email, **{"X-Forwarded-For": "203.0.113.7"}).last
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0 and "Try again in" in blocked.text
        # a forged first hop does not change what the trusted proxy appended
        spoofed = sign_in(base, account.email, **{"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}).last
        assert spoofed.status_code == 429
        assert sign_in(base, account.email, **{"X-Forwarded-For": "203.0.113.8"}).last.status_code == 302


def test_forwarded_for_is_ignored_without_a_trusted_proxy(app, make_account):
    account = make_account()
    with gunicorn(app, HERALD_TRUSTED_PROXIES="0", HERALD_LOGIN_MAX_FAILURES="2") as base:
        _lock_out(base, account.email, 2, **{"X-Forwarded-For": "203.0.113.7"})
        other = sign_in(base, account.email, **{"X-Forwarded-For": "203.0.113.8"}).last
        assert other.status_code == 429  # the header is anyone's to write: both are 127.0.0.1


def test_redis_down_answers_503_for_login_and_an_api_write(app, make_account, api_key):
    account = make_account()
    key = api_key("marketer")
    make_template()
    with gunicorn(app) as base:
        reader = sign_in(base, account.email)  # signed in while Redis was up
    with gunicorn(app, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as base:
        login = sign_in(base, account.email).last
        assert login.status_code == 503
        assert "Temporarily unavailable" in login.text and "Try again" in login.text
        assert "Traceback" not in login.text
        response = httpx.post(f"{base}/api/v1/campaigns", timeout=30,
                              json={"name": "Spring", "templateId": "promo", "channel": "in_app",
                                    "variables": {"offer": "10% off"}},
                              headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "spring-1"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert "Try again" in response.json()["error"]["message"]
        # sessions live in the database: pages that only read still work
        reader.base_url = base
        assert reader.get("/campaigns").status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Campaign)) == 0
