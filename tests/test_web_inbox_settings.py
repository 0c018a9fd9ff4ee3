"""Admin → In-app inbox: allowed origins (errors by line next to the field, nothing saved on error),
the token lifetime, "Revoke all user tokens" behind a confirmation, the embed snippet; admins only.
The last test drives the page in headless Chromium and saves screenshots at 1280 and 390 px."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from dashboard.extensions import db
from dashboard.models import AuditEvent
from dashboard.services import inbox
from dashboard.services.actor import Actor
from tests.conftest import csrf_from

ACTOR = Actor.system("test")
SHOTS = Path(os.environ.get("HERALD_SCREENSHOTS", "/tmp/herald-screenshots")) / "inbox-settings"


@pytest.fixture(autouse=True)
def _fresh_settings():
    """The inbox settings are cached a few seconds per process; each test starts from an emptied database."""
    inbox._cache.clear()


def _save(client, origins: str, token: str | None = None):
    token = token or csrf_from(client.get("/admin/inbox").get_data(as_text=True))
    return client.post("/admin/inbox", data={"origins": origins, "csrf_token": token})


def _textarea(page_html: str) -> str:
    match = re.search(r"<textarea[^>]*>(.*?)</textarea>", page_html, re.S)
    assert match, "no textarea"
    return html.unescape(match.group(1)).strip("\r\n")


def _field_error(page_html: str) -> str:
    match = re.search(r'<div class="field-error" id="origins-error">(.*?)</div>', page_html, re.S)
    assert match, "no error next to the field"
    return html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def test_admin_sees_origins_lifetime_revoke_and_the_snippet(app, client, logged_in):
    inbox.set_settings(allowed_origins=["https://app.example.com", "http://localhost:8080"], actor=ACTOR)
    logged_in("admin")
    response = client.get("/admin/inbox")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _textarea(page) == "https://app.example.com\nhttp://localhost:8080"
    assert "2 origins" in page
    assert re.search(r'<a href="/admin/inbox" aria-current="page">In-app inbox</a>', page)
    assert "<strong>12 hours</strong>" in page and "43,200 seconds" in page and "HERALD_INBOX_TOKEN_TTL" in page
    assert "Last revoked: never" in page
    revoke = re.search(r'<form method="post" action="/admin/inbox/rotate" data-confirm="([^"]+)">', page)
    assert revoke and "Every open inbox stops updating" in revoke.group(1)
    herald = app.config["HERALD_PUBLIC_URL"]
    snippet = html.unescape(re.search(r'<pre class="snippet"[^>]*><code>(.*?)</code></pre>', page, re.S).group(1))
    assert f'<script type="module" src="{herald}/inbox/v1/herald-inbox.js"></script>' in snippet
    assert f'<herald-inbox api-base="{herald}"' in snippet and 'token="TOKEN_FROM_YOUR_SERVER"' in snippet
    assert f"POST {herald}/api/v1/users/USER_ID/inbox-token" in snippet
    assert len(snippet.strip().splitlines()) <= 10


@pytest.mark.parametrize("role", ["support", "marketer"])
def test_only_admins_open_or_change_it(client, logged_in, role):
    inbox.set_settings(allowed_origins=["https://kept.example.com"], actor=ACTOR)
    logged_in(role)
    assert client.get("/admin/inbox").status_code == 403
    token = csrf_from(client.get("/").get_data(as_text=True))
    assert _save(client, "https://evil.example.com", token).status_code == 403
    assert client.post("/admin/inbox/rotate", data={"csrf_token": token}).status_code == 403
    assert inbox.public_settings()["rotatedAt"] is None
    assert inbox.allowed_origins() == ["https://kept.example.com"]
    assert 'href="/admin/inbox"' not in client.get("/").get_data(as_text=True)


def test_origins_are_saved_as_browsers_send_them(client, logged_in):
    logged_in("admin")
    response = _save(client, "HTTPS://App.Example.com:443/\r\n\r\n  http://localhost:8080  \r\nhttp://localhost:8080/\r\n")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/inbox")
    assert inbox.allowed_origins() == ["https://app.example.com", "http://localhost:8080"]
    page = client.get("/admin/inbox").get_data(as_text=True)
    assert "Allowed origins saved: https://app.example.com, http://localhost:8080." in html.unescape(page)
    assert _textarea(page) == "https://app.example.com\nhttp://localhost:8080"
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.inbox_updated")).one()
    assert event.details == {"before": {"allowedOrigins": []},
                             "after": {"allowedOrigins": ["https://app.example.com", "http://localhost:8080"]}}
    assert event.actor_account_id is not None
    assert _save(client, "").status_code == 302
    assert inbox.allowed_origins() == []
    assert "only Herald&#39;s own pages" in client.get("/admin/inbox").get_data(as_text=True)


def test_bad_lines_are_named_next_to_the_field_and_nothing_is_saved(client, logged_in):
    inbox.set_settings(allowed_origins=["https://kept.example.com"], actor=ACTOR)
    logged_in("admin")
    typed = "https://ok.example.com\n\nftp://files.example.com\nhttps://shop.example.com/cart\n<script>x</script>"
    response = _save(client, typed)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    errors = _field_error(page)
    assert "Line 3: “ftp://files.example.com” is not an origin like https://app.example.com." in errors
    assert "Line 4: “https://shop.example.com/cart” has more than scheme://host[:port]" in errors
    assert "Line 5:" in errors and "Line 1:" not in errors and "Nothing was saved." in errors
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert 'aria-invalid="true"' in page and 'aria-describedby="origins-error origins-hint"' in page
    assert _textarea(page) == typed  # what was typed stays, to be corrected
    assert inbox.allowed_origins() == ["https://kept.example.com"]
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.inbox_updated")).all() == [
        db.session.scalars(select(AuditEvent)).first()]  # only the setup's


def test_more_than_fifty_origins_are_refused(client, logged_in):
    logged_in("admin")
    response = _save(client, "\n".join(f"https://s{n}.example.com" for n in range(51)))
    assert response.status_code == 400
    assert "At most 50 allowed origins; nothing was changed." in _field_error(response.get_data(as_text=True))
    assert inbox.allowed_origins() == []


def test_a_post_without_the_csrf_token_changes_nothing(client, logged_in):
    logged_in("admin")
    assert client.post("/admin/inbox", data={"origins": "https://app.example.com"}).status_code == 400
    assert client.post("/admin/inbox/rotate").status_code == 400
    assert inbox.allowed_origins() == [] and inbox.public_settings()["rotatedAt"] is None


def test_revoke_all_user_tokens(client, logged_in):
    before, _ = inbox.issue_token("alice")
    auth = {"Authorization": f"Bearer {before}"}
    assert client.get("/inbox/v1/unread-count", headers=auth).status_code == 200
    logged_in("admin")
    token = csrf_from(client.get("/admin/inbox").get_data(as_text=True))
    response = client.post("/admin/inbox/rotate", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/inbox#tokens")
    refused = client.get("/inbox/v1/unread-count", headers=auth)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"
    after, _ = inbox.issue_token("alice")
    assert client.get("/inbox/v1/unread-count", headers={"Authorization": f"Bearer {after}"}).status_code == 200
    page = client.get("/admin/inbox").get_data(as_text=True)
    assert "Every user token is revoked" in page and "Last revoked: never" not in page
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "workspace.inbox_updated")).one()
    assert event.details["after"] == {"allowedOrigins": [], "secretRotated": True}
    assert inbox.settings(fresh=True)["secret"] not in repr(event.details)


def test_the_page_in_a_browser(browser, live_server, make_account):
    """Type origins with one bad line, see the error by the field (axe finds nothing serious there),
    fix it, revoke through the dialog."""
    from playwright.sync_api import expect

    from tests.test_browser import _sign_in
    from tests.test_browser_a11y import _axe, _context

    SHOTS.mkdir(parents=True, exist_ok=True)
    admin = make_account("admin")
    context = _context(browser, 1280, 900)  # axe is injected: the app's CSP would (rightly) refuse it
    page = context.new_page()
    _sign_in(page, live_server, admin.email)
    page.goto(f"{live_server}/admin/accounts")
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="In-app inbox").click()
    expect(page.get_by_role("heading", name="In-app inbox", level=1)).to_be_visible()
    field = page.get_by_label("Allowed origins")
    field.fill("https://app.example.com\nhttps://shop.example.com/cart")
    page.get_by_role("button", name="Save origins").click()
    expect(page.locator("#origins-error")).to_contain_text("Line 2: “https://shop.example.com/cart” has more than")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert _axe(page) == []
    _shoot(page, "origins-error")
    field.fill("https://app.example.com\nhttp://localhost:8080/")
    page.get_by_role("button", name="Save origins").click()
    expect(page.get_by_text("Allowed origins saved: https://app.example.com, http://localhost:8080.")).to_be_visible()
    expect(field).to_have_value("https://app.example.com\nhttp://localhost:8080")
    _shoot(page, "saved")
    page.get_by_role("button", name="Revoke all user tokens").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Every open inbox stops updating")
    _shoot(page, "revoke-confirm", full_page=False)
    dialog.get_by_role("button", name=re.compile("^(OK|Confirm|Yes|Revoke)", re.I)).click()
    expect(page.get_by_text("Every user token is revoked")).to_be_visible()
    assert inbox.public_settings()["rotatedAt"] is not None
    context.close()


def _shoot(page, name: str, full_page: bool = True) -> None:
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=full_page)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (name, width)
    page.set_viewport_size({"width": 1280, "height": 900})
