import pytest

from dashboard import config
from tests.conftest import login


def test_heroku_postgres_url_is_accepted():
    assert config.normalise_database_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert config.normalise_database_url("postgresql://h/d") == "postgresql+psycopg://h/d"
    assert config.normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_secret_key_required_in_production(tmp_path):
    with pytest.raises(RuntimeError, match="SECRET_KEY is required"):
        config.from_environment(str(tmp_path), {"HERALD_ENV": "production"})


def test_development_defaults(tmp_path):
    cfg = config.from_environment(str(tmp_path), {"HERALD_ENV": "development"})
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'herald.db'}"
    assert cfg["SESSION_COOKIE_SECURE"] is False
    assert cfg["SECRET_KEY"] == config.from_environment(str(tmp_path), {"HERALD_ENV": "development"})["SECRET_KEY"]


def test_production_cookies_are_secure(tmp_path):
    cfg = config.from_environment(str(tmp_path), {"SECRET_KEY": "s", "DATABASE_URL": "postgres://h/d"})
    assert cfg["SESSION_COOKIE_SECURE"] and cfg["SESSION_COOKIE_HTTPONLY"]
    assert cfg["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert cfg["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def test_unknown_environment_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="HERALD_ENV"):
        config.from_environment(str(tmp_path), {"HERALD_ENV": "staging"})


def test_security_headers_on_pages(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts(client, logged_in):
    logged_in("admin")
    import re

    for path in ("/", "/admin/accounts", "/admin/api-keys"):
        html = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag, f"inline script on {path}: {tag}"
        assert " on" + "click=" not in html


def test_session_cookie_flags(client, make_account):
    account = make_account()
    response = login(client, account.email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
