"""Login throttling per (address, email), per email and per address; a browser that signed
in before keeps its way in; a 429 says when to try again."""

from __future__ import annotations

import time

import pytest

from dashboard.services.login_throttle import DEVICE_COOKIE, device_token
from tests.conftest import PASSWORD, csrf_from

PAIR, PER_EMAIL, PER_ADDRESS = 2, 4, 6


@pytest.fixture(autouse=True)
def small_limits(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES", PAIR)
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES_PER_EMAIL", PER_EMAIL)
    monkeypatch.setitem(app.config, "LOGIN_MAX_FAILURES_PER_ADDRESS", PER_ADDRESS)


def attempt(app, email: str, password: str = PASSWORD, address: str = "198.51.100.1", device: str | None = None):
    """One sign-in from a fresh browser at `address` (optionally carrying a device cookie)."""
    client = app.test_client()
    if device:
        client.set_cookie(DEVICE_COOKIE, device)
    environ = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_base=environ).get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base=environ)


def fail(app, email: str, address: str, times: int) -> None:
    for _ in range(times):
        assert attempt(app, email, "wrong-password", address).status_code == 401


def test_one_address_guessing_is_stopped_but_others_may_sign_in(app, make_account):
    account = make_account()
    fail(app, account.email, "198.51.100.1", PAIR)
    blocked = attempt(app, account.email, address="198.51.100.1")
    assert blocked.status_code == 429
    assert attempt(app, account.email, address="198.51.100.2").status_code == 302


def test_429_says_when_to_try_again(app, make_account):
    account = make_account()
    fail(app, account.email, "198.51.100.1", PAIR)
    blocked = attempt(app, account.email, address="198.51.100.1")
    window = app.config["LOGIN_WINDOW_SECONDS"]
    assert 0 < int(blocked.headers["Retry-After"]) <= window
    assert f"Try again in {window // 60} minutes." in blocked.get_data(as_text=True)


def test_guessing_one_account_from_many_addresses_is_capped(app, make_account):
    account = make_account()
    for i in range(PER_EMAIL):
        fail(app, account.email, f"203.0.113.{i}", 1)
    blocked = attempt(app, account.email, address="203.0.113.200")  # a new address, right password
    assert blocked.status_code == 429
    assert "for this account" in blocked.get_data(as_text=True)
    assert "Retry-After" in blocked.headers


def test_the_owners_browser_still_signs_in_while_the_account_is_under_attack(app, make_account):
    account = make_account()
    first = attempt(app, account.email, address="192.0.2.10")
    device = first.headers.getlist("Set-Cookie")
    cookie = next(c for c in device if c.startswith(f"{DEVICE_COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    for i in range(PER_EMAIL * 2):  # the attacker keeps re-locking the account
        attempt(app, account.email, "wrong-password", f"203.0.113.{i}")
    assert attempt(app, account.email, address="203.0.113.250").status_code == 429
    assert attempt(app, account.email, address="192.0.2.99", device=token).status_code == 302


def test_a_device_cookie_is_good_only_for_its_own_account(app, make_account):
    account, other = make_account(), make_account()
    for i in range(PER_EMAIL):
        fail(app, account.email, f"203.0.113.{i}", 1)
    with app.test_request_context():
        wrong_account = device_token(other.email)
    for device in (wrong_account, "forged-token", "x" * 2000):
        assert attempt(app, account.email, address="203.0.113.9", device=device).status_code == 429


def test_a_trusted_browser_has_its_own_limit(app, make_account):
    account = make_account()
    with app.test_request_context():
        device = device_token(account.email)
    for _ in range(PAIR):
        assert attempt(app, account.email, "wrong-password", device=device).status_code == 401
    assert attempt(app, account.email, device=device).status_code == 429


def test_spraying_many_accounts_from_one_address_is_capped(app, make_account):
    for i in range(PER_ADDRESS):
        fail(app, f"victim{i}@example.com", "198.51.100.66", 1)
    target = make_account()
    blocked = attempt(app, target.email, address="198.51.100.66")
    assert blocked.status_code == 429
    assert "from your network" in blocked.get_data(as_text=True)
    assert attempt(app, target.email, address="198.51.100.67").status_code == 302


def test_signing_in_does_not_reset_the_spraying_budget(app, make_account):
    own = make_account()
    for i in range(PER_ADDRESS - 1):
        fail(app, f"victim{i}@example.com", "198.51.100.66", 1)
    assert attempt(app, own.email, address="198.51.100.66").status_code == 302
    fail(app, "victim-last@example.com", "198.51.100.66", 1)
    assert attempt(app, "victim-next@example.com", "any-password", "198.51.100.66").status_code == 429


def test_unknown_and_known_emails_are_throttled_alike(app, make_account):
    account = make_account()
    fail(app, account.email, "198.51.100.1", PAIR)
    fail(app, "nobody@example.com", "198.51.100.1", PAIR)
    known = attempt(app, account.email, "wrong-password", "198.51.100.1")
    unknown = attempt(app, "nobody@example.com", "wrong-password", "198.51.100.1")
    assert known.status_code == unknown.status_code == 429
    assert known.get_data(as_text=True).count("Too many") == unknown.get_data(as_text=True).count("Too many")


def test_limits_lift_when_the_window_ends(app, make_account, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_WINDOW_SECONDS", 1)
    account = make_account()
    fail(app, account.email, "198.51.100.1", PAIR)
    assert attempt(app, account.email).status_code == 429
    time.sleep(1.2)
    assert attempt(app, account.email).status_code == 302


def test_shipped_limits(app):
    from dashboard.config import from_environment

    config = from_environment(app.instance_path, {"HERALD_ENV": "testing", "SECRET_KEY": "k"})
    assert (config["LOGIN_MAX_FAILURES"], config["LOGIN_MAX_FAILURES_PER_EMAIL"],
            config["LOGIN_MAX_FAILURES_PER_ADDRESS"], config["LOGIN_WINDOW_SECONDS"]) == (5, 20, 50, 900)
    assert config["HERALD_SESSION_IDLE_MINUTES"] == 720 and config["HERALD_TRUSTED_PROXIES"] == 0


def test_trusted_proxies_must_be_a_count(database_url, redis_url):
    from dashboard import create_app

    with pytest.raises(RuntimeError, match="HERALD_TRUSTED_PROXIES"):
        create_app({"HERALD_ENV": "testing", "SECRET_KEY": "k", "DATABASE_URL": database_url,
                    "REDIS_URL": redis_url, "HERALD_TRUSTED_PROXIES": -1})
