from __future__ import annotations

import os
import re
import shutil
import threading

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import make_server

from dashboard import create_app
from dashboard.extensions import db, get_redis
from dashboard.services import accounts, inbox
from dashboard.services.actor import Actor
from tests import services

TEST_DB = os.environ.get("HERALD_TEST_DB", "sqlite")
PASSWORD = "correct horse battery"


def pytest_report_header(config):
    browser = CHROMIUM or "none (browser tests will be skipped)"
    return [f"herald: database backend = {TEST_DB}", f"herald: browser = {browser}"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if TEST_DB == "postgresql":
        if not services.postgres_reachable():
            pytest.exit(f"PostgreSQL not reachable at {services.postgres_admin_url()}", returncode=3)
        url = services.create_postgres_database()
        yield url
        services.drop_postgres_database(url)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'herald-test.db'}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    base = os.environ.get("HERALD_TEST_REDIS_URL", services.DEFAULT_REDIS)
    db_index = 14 if TEST_DB == "postgresql" else 15
    proc = None
    if not services.redis_reachable(base):
        from scripts import redis_server

        proc, started = redis_server.start(tmp_path_factory.mktemp("redis"))
        base = started.rsplit("/", 1)[0]
    yield f"{base.rstrip('/')}/{db_index}"
    if proc is not None:
        proc.terminate()
        proc.wait(timeout=10)


class FreshContextClient(FlaskClient):
    """Each request gets its own app context (fresh g and DB session), as in production,
    even though the test itself holds one open to call services."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)  # consume streamed bodies inside this request's context
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def app(database_url, redis_url):
    from flask_migrate import upgrade

    app = create_app({
        "HERALD_ENV": "testing",
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SERVER_NAME": None,
        "HERALD_BATCH_CHUNK": 1000,  # small enough that a few thousand recipients make several chunks
        "HERALD_WEBHOOK_ALLOW_PRIVATE": True,  # the webhook sinks listen on 127.0.0.1
    })
    app.test_client_class = FreshContextClient
    with app.app_context():
        upgrade()  # the real migrations, on the real backend
    return app


def _clean_database() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for name in tables:
            db.session.execute(text(f"DELETE FROM {name}"))
    db.session.commit()


@pytest.fixture(autouse=True)
def _app_context(app):
    with app.app_context():
        _clean_database()
        inbox.forget_settings()  # its per-process cache would outlive the rows just removed
        get_redis().flushdb()
        yield
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_account():
    def make(role: str = "marketer", email: str | None = None, password: str = PASSWORD):
        email = email or f"{role}-{os.urandom(3).hex()}@example.com"
        return accounts.create_account(email, role, password, Actor.system("test"))
    return make


@pytest.fixture
def api(client, api_key):
    """Call /api/v1 as a marketer's API key."""
    headers = {"Authorization": f"Bearer {api_key('marketer')}"}

    def call(method, path, body=None, **kwargs):
        return client.open(f"/api/v1{path}", method=method, json=body, headers=headers, **kwargs)
    return call


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


def login(client, email: str, password: str = PASSWORD):
    page = client.get("/login")
    token = csrf_from(page.get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


@pytest.fixture
def logged_in(client, make_account):
    """A client signed in through the real login form, as the given role."""
    def sign_in(role: str = "marketer"):
        account = make_account(role)
        response = login(client, account.email)
        assert response.status_code == 302, response.get_data(as_text=True)
        return account
    return sign_in


@pytest.fixture
def api_key(make_account):
    def make(role: str = "marketer") -> str:
        account = make_account(role)
        _, plain = accounts.create_api_key(account, "test", Actor.system("test"))
        return plain
    return make


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        if os.environ.get("HERALD_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (HERALD_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("browser tests need Debian's chromium (/usr/bin/chromium); it is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()
