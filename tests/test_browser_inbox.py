"""Headless Chromium: `<herald-inbox>` embedded in a host page on another origin (the demo host of
scripts/inbox_demo.py, with its strict Content-Security-Policy), against a real gunicorn on gevent
workers and, where a send is involved, a real RQ worker or the real delivery code."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from dashboard.cli import DEMO_TEMPLATE, seed_inbox_demo
from dashboard.extensions import db
from dashboard.models import Campaign, Notification, utcnow
from dashboard.services import campaigns, inbox, lifecycle, recipients
from dashboard.services.actor import Actor
from scripts.inbox_demo import DemoHost
from tests.engine import drain, start_worker, stop_worker, wait_for
from tests.servers import free_port, start, stop
from tests.test_browser import SHOTS, _sign_in
from tests.test_browser_a11y import _axe

ACTOR = Actor.system("test")
USER, OTHER = "demo-001", "demo-002"
CSP_PROBE = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
             "(e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
INBOX_SHOTS = SHOTS / "inbox"


# -- the servers ----------------------------------------------------------------------------------

class Herald:
    """Herald's web process as production runs it (gevent) on a port of its own, which it keeps across a
    restart; streams check their token every second."""

    def __init__(self, app):
        self.app, self.port, self.proc = app, free_port(), None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = start(self.app, self.port, worker_class="gevent", HERALD_INBOX_HEARTBEAT="1")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def herald_server(app):
    server = Herald(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def herald(herald_server):
    return herald_server.url


@pytest.fixture
def page(browser, herald):
    """The host page's browser, closed before Herald stops (an open stream would hold its graceful stop)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


@pytest.fixture
def worker(app):
    proc = start_worker(app)
    yield proc
    stop_worker(proc)


def _minter(app):
    def mint(user_id: str) -> str:
        with app.app_context():
            return inbox.issue_token(user_id)[0]
    return mint


@pytest.fixture
def make_host(app, herald):
    """Demo hosts on ports of their own (other origins than Herald's); allowed=True adds the origin."""
    started = []

    def make(allowed: bool = True) -> DemoHost:
        server = DemoHost(("127.0.0.1", 0), herald, _minter(app))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        if allowed:
            inbox.set_settings(allowed_origins=[*inbox.allowed_origins(), server.url], actor=ACTOR)
        return server
    yield make
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture
def host(make_host):
    return make_host()


# -- what the user sees ---------------------------------------------------------------------------

def open_host(page, host: DemoHost, user: str = USER) -> None:
    page.add_init_script(CSP_PROBE)
    page.goto(f"{host.url}/?user={user}")
    expect(bell(page)).to_have_attribute("aria-label", re.compile(r"^Notifications, "))


def bell(page):
    return page.locator("herald-inbox button.bell")


def badge(page):
    return page.locator("herald-inbox .badge")


def panel(page):
    return page.locator("herald-inbox #herald-panel")


def titles(page):
    return page.locator("herald-inbox li.item .title")


def notice(page):
    return page.locator("herald-inbox .notice")


def open_panel(page) -> None:
    bell(page).click()
    expect(bell(page)).to_have_attribute("aria-expanded", "true")
    expect(panel(page)).to_be_visible()


def assert_no_csp_violations(page) -> None:
    assert page.evaluate("window.__csp") == [], "the widget broke the host page's Content-Security-Policy"


def shoot(page, name: str) -> None:
    """The host page at 1280 px and at 390 px (a phone), as it is now."""
    INBOX_SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.wait_for_timeout(150)
    page.screenshot(path=str(INBOX_SHOTS / f"{name}-1280.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(250)
    page.screenshot(path=str(INBOX_SHOTS / f"{name}-390.png"))
    page.set_viewport_size(size)


# -- the data -------------------------------------------------------------------------------------

def add_item(user: str, title: str, minutes_ago: float = 0, **fields) -> Notification:
    """A feed row as delivery writes it (without a campaign)."""
    note = Notification(user_id=user, title=title, body=fields.pop("body", f"About {title.lower()}."),
                        created_at=utcnow() - timedelta(minutes=minutes_ago), **fields)
    db.session.add(note)
    db.session.commit()
    return note


def send_campaign(name: str, users: list[str], headline: str) -> int:
    """An in-app campaign of the demo template, delivered by the real engine in this process."""
    seed_inbox_demo(())  # the demo template, once
    campaign = campaigns.create({"name": name, "templateId": DEMO_TEMPLATE["templateId"], "channel": "in_app",
                                 "variables": {"headline": headline}}, ACTOR)
    recipients.add_manual(campaign.id, users, None, ACTOR)
    lifecycle.send(campaign.id, None, ACTOR)
    drain()
    return campaign.id


def read_at(note_id: int):
    db.session.expire_all()
    return db.session.get(Notification, note_id).read_at


def feed_row(campaign_id: int, user: str) -> Notification:
    db.session.expire_all()
    return db.session.scalar(select(Notification).where(Notification.campaign_id == campaign_id,
                                                        Notification.user_id == user))


def read_count(campaign_id: int) -> int:
    db.session.expire_all()
    return db.session.get(Campaign, campaign_id).read_count


# -- the tests ------------------------------------------------------------------------------------

def test_the_widget_shows_the_users_feed_and_unread_count(page, host):
    add_item(USER, "Welcome to Acme", minutes_ago=3 * 24 * 60, read_at=utcnow() - timedelta(days=2))
    add_item(USER, "Your Q3 report is ready", minutes_ago=125, image_url=f"{host.url}/banner.svg",
             body="Revenue, churn and the projects that moved: everything in one page.")
    add_item(USER, "Maria commented on “Launch plan”", minutes_ago=2, body="“Looks good — ship it on Monday?”")
    add_item(OTHER, "Only for demo-002")

    open_host(page, host)
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, 2 unread")
    expect(badge(page)).to_have_text("2")
    expect(bell(page)).to_have_attribute("aria-expanded", "false")
    expect(panel(page)).to_be_hidden()

    bell(page).focus()
    page.keyboard.press("Enter")  # a button: the keyboard opens it
    expect(bell(page)).to_have_attribute("aria-expanded", "true")
    expect(titles(page)).to_have_text(["Maria commented on “Launch plan”", "Your Q3 report is ready",
                                       "Welcome to Acme"])
    expect(panel(page)).not_to_contain_text("Only for demo-002")
    items = page.locator("herald-inbox li.item")
    expect(items.nth(0).locator("time")).to_have_text("2 min ago")
    expect(items.nth(1).locator("time")).to_have_text("2 h ago")
    expect(items.nth(2).locator("time")).to_have_text("3 days ago")
    assert items.nth(0).locator("time").get_attribute("datetime").endswith("Z")
    assert items.nth(0).locator("time").get_attribute("title")  # the full date and time on hover
    image = items.nth(1).locator("img.image")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") > 0
    expect(items.nth(0)).to_have_class(re.compile(r"\bunread\b"))
    expect(items.nth(2)).not_to_have_class(re.compile(r"\bunread\b"))
    expect(panel(page).get_by_role("button", name="Archive: Welcome to Acme")).to_be_visible()
    shoot(page, "panel-open")

    page.keyboard.press("Escape")
    expect(bell(page)).to_have_attribute("aria-expanded", "false")
    expect(panel(page)).to_be_hidden()
    assert page.evaluate("document.activeElement.shadowRoot.activeElement.className") == "bell"
    assert_no_csp_violations(page)
    # The probe itself works: an inline style the host's CSP forbids is reported.
    page.evaluate("document.head.append(Object.assign(document.createElement('style'), {textContent: 'b{}'}))")
    wait_for(lambda: page.evaluate("window.__csp.length") == 1, 5, "the control violation to be reported")


def test_a_campaign_sent_from_the_dashboard_arrives_live(browser, page, host, herald, worker, make_account):
    seed_inbox_demo(())
    open_host(page, host)
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, no unread")
    expect(badge(page)).to_be_hidden()
    open_panel(page)
    expect(panel(page)).to_contain_text("You're all caught up")
    shoot(page, "empty")
    page.keyboard.press("Escape")
    page.evaluate("window.__noReload = 'still here'")

    marketer = make_account("marketer")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    dashboard = context.new_page()
    _sign_in(dashboard, herald, marketer.email)
    dashboard.goto(f"{herald}/campaigns/new")
    dashboard.get_by_label("Campaign name").fill("Weekly summary")
    dashboard.get_by_label("Template").select_option(DEMO_TEMPLATE["templateId"])
    dashboard.get_by_role("button", name="Create draft").click()
    dashboard.get_by_label("User IDs").fill(USER)
    dashboard.get_by_role("button", name="Add user IDs").click()
    expect(dashboard.get_by_text("Added 1 recipient")).to_be_visible()
    dashboard.locator("#review").get_by_role("button", name="Send now").click()
    dashboard.get_by_role("dialog").get_by_role("button", name="Send now").click()
    sent = time.monotonic()
    committed = shown = None
    while shown is None and time.monotonic() - sent < 30:  # when the row is in the database, when on screen
        if committed is None and db.session.scalar(select(func.count()).select_from(Notification)):
            committed = time.monotonic()
        if badge(page).is_visible() and badge(page).text_content() == "1":
            shown = time.monotonic()
        db.session.rollback()
        time.sleep(0.02)
    assert shown is not None, "the item never arrived"
    print(f"send -> row committed {committed - sent:.2f} s, -> on screen {shown - sent:.2f} s")
    expect(titles(page)).to_have_text(["Your weekly summary is ready"], timeout=500)
    assert shown - sent <= 2.0, f"on screen {shown - sent:.2f} s after Send (row in {committed - sent:.2f} s)"
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, 1 unread")
    expect(page.locator("herald-inbox [aria-live]")).to_have_text("New notification: Your weekly summary is ready")
    expect(page.locator("#events")).to_contain_text("herald-notification “Your weekly summary is ready”")
    assert page.evaluate("window.__noReload") == "still here"
    shoot(page, "badge")
    expect(dashboard.get_by_test_id("status-badge")).to_have_text("sent", timeout=15_000)
    context.close()
    assert_no_csp_violations(page)


def test_reading_in_the_widget_persists_and_the_dashboards_read_counts_follow(browser, page, host, herald,
                                                                               make_account):
    older = send_campaign("Older digest", [USER, OTHER], "Your monthly digest")
    for i in range(24):
        add_item(USER, f"Comment {i + 1} on the launch plan", minutes_ago=60 - i)
    newer = send_campaign("Spring launch", [USER, OTHER, "demo-003"], "Spring launch is live")
    shown, hidden = feed_row(newer, USER), feed_row(older, USER)

    open_host(page, host)
    expect(badge(page)).to_have_text("26")
    assert read_at(shown.id) is None
    open_panel(page)  # the newest items are in view: read on view
    wait_for(lambda: read_at(shown.id) is not None, 10, "the item in view to be marked read")
    expect(titles(page).first).to_have_text("Spring launch is live")
    assert read_count(newer) == 1
    assert read_at(hidden.id) is None  # 21st item: not even loaded yet

    def unread_rows() -> int:
        db.session.expire_all()
        return db.session.scalar(select(func.count()).select_from(Notification).where(
            Notification.user_id == USER, Notification.read_at.is_(None)))
    page.wait_for_timeout(500)  # the marks of what is in view are in flight
    settled = wait_for(lambda: (n := unread_rows()) == int(badge(page).text_content() or 0) and n, 10,
                       "the badge to show the database's unread count")
    assert 0 < settled < 26  # what is in view, not the whole feed

    expect(titles(page)).to_have_count(20)
    panel(page).get_by_role("button", name="Load more").click()
    expect(titles(page)).to_have_count(26)
    expect(panel(page).get_by_role("button", name="Load more")).to_be_hidden()

    panel(page).get_by_role("button", name="Mark all as read").click()
    expect(badge(page)).to_be_hidden()
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, no unread")
    expect(panel(page).get_by_role("button", name="Mark all as read")).to_be_disabled()
    wait_for(lambda: read_at(hidden.id) is not None, 5, "mark all read to reach the database")
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == USER, Notification.read_at.is_(None))) == 0
    assert read_count(older) == 1 and read_count(newer) == 1
    assert feed_row(older, OTHER).read_at is None  # another user's copy is theirs

    support = make_account("support")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    dashboard = context.new_page()
    _sign_in(dashboard, herald, support.email)
    for campaign_id in (older, newer):
        dashboard.goto(f"{herald}/campaigns/{campaign_id}")
        expect(dashboard.get_by_test_id("eng-read")).to_have_text("1")
    context.close()

    page.reload()  # and it stays read
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, no unread")
    assert_no_csp_violations(page)


def test_clicking_follows_only_http_links_and_archive_removes_the_item(page, host):
    archived = add_item(USER, "Old news", minutes_ago=30)
    trap = add_item(USER, "A link that is not a web page", minutes_ago=20,
                    action_url="javascript:alert(document.domain)")
    link = add_item(USER, "Read the release notes", minutes_ago=10, action_url=f"{host.url}/?from=inbox")
    open_host(page, host)
    page.evaluate("window.__clicks = []; document.getElementById('inbox').addEventListener('herald-click', "
                  "(e) => window.__clicks.push(e.detail.actionUrl))")
    open_panel(page)

    panel(page).get_by_role("button", name="Archive: Old news").click()
    expect(titles(page)).to_have_text(["Read the release notes", "A link that is not a web page"])
    db.session.expire_all()
    assert db.session.get(Notification, archived.id).archived_at is not None

    panel(page).get_by_role("button", name=re.compile("^A link that is not a web page")).click()
    wait_for(lambda: page.evaluate("window.__clicks") == [None], 5, "herald-click without a URL to follow")
    assert page.url == f"{host.url}/?user={USER}"  # javascript: is never followed
    db.session.expire_all()
    assert db.session.get(Notification, trap.id).clicked_at is not None

    panel(page).get_by_role("button", name=re.compile("^Read the release notes")).click()
    page.wait_for_url(f"{host.url}/?from=inbox")
    db.session.expire_all()
    followed = db.session.get(Notification, link.id)
    assert followed.clicked_at is not None and followed.read_at is not None


def test_notification_text_is_only_text_and_the_host_can_keep_its_page(page, host):
    markup = '<img src=x onerror="window.__xss = 1"><b>Sale</b>'
    note = add_item(USER, markup, body='<script>window.__xss = 2</script>Body', action_url=f"{host.url}/?away=1",
                    image_url="javascript:window.__xss = 3")
    open_host(page, host)
    page.evaluate("document.getElementById('inbox').addEventListener('herald-click', (e) => e.preventDefault())")
    open_panel(page)
    expect(titles(page)).to_have_text([markup])
    item = page.locator("herald-inbox li.item").first
    expect(item.locator(".body")).to_have_text('<script>window.__xss = 2</script>Body')
    assert item.locator("b, script, img").count() == 0  # no element from the text, no image from a javascript: URL
    item.locator("button.open").click()
    wait_for(lambda: db.session.get(Notification, note.id).clicked_at is not None or db.session.expire_all(), 5,
             "the click to be recorded")
    page.wait_for_timeout(300)
    assert page.url == f"{host.url}/?user={USER}"  # the host prevented the navigation
    assert page.evaluate("window.__xss") is None
    assert_no_csp_violations(page)


def test_an_expired_token_shows_the_expired_state_until_the_host_gives_a_new_one(page, app, host):
    add_item(USER, "Waiting behind a good token")
    expired, _ = inbox.issue_token(USER, 1)
    time.sleep(1.2)
    host.mint = lambda user: expired  # the host's own server has nothing better to give either

    open_host(page, host)
    expect(notice(page)).to_contain_text("Your session expired")
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, session expired")
    expect(badge(page)).to_be_hidden()
    expect(page.locator("#events")).to_contain_text("herald-token-required (token_expired)")
    open_panel(page)
    expect(titles(page)).to_have_count(0)
    shoot(page, "expired")

    fresh, _ = inbox.issue_token(USER)
    page.locator("herald-inbox").evaluate("(el, token) => el.setAttribute('token', token)", fresh)
    expect(titles(page)).to_have_text(["Waiting behind a good token"])
    expect(notice(page)).to_be_hidden()
    assert_no_csp_violations(page)


def test_a_token_that_expires_while_open_is_renewed_through_the_hosts_token_provider(page, app, host):
    short, _ = inbox.issue_token(USER, 3)
    minted = []

    def mint(user):
        if not minted:
            minted.append(short)
            return short  # the page starts with a token that lives 3 s
        with app.app_context():
            minted.append(inbox.issue_token(user)[0])
        return minted[-1]
    host.mint = mint

    open_host(page, host)
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, no unread")
    # The stream says `expired`, the widget asks the host's /token, and goes on with the new token.
    expect(page.locator("#events")).to_contain_text("herald-token-required (token_expired)", timeout=10_000)
    wait_for(lambda: len(minted) >= 2, 5, "the page's tokenProvider to fetch a new token")
    page.wait_for_timeout(500)
    send_campaign("After renewal", [USER], "Arrived on the renewed stream")
    expect(titles(page)).to_have_text(["Arrived on the renewed stream"], timeout=5000)
    expect(badge(page)).to_have_text("1")
    expect(notice(page)).to_be_hidden()
    assert_no_csp_violations(page)


def test_a_token_reads_and_marks_only_its_own_users_feed(page, host, herald):
    add_item(USER, "Mine")
    theirs = add_item(OTHER, "Theirs")
    open_host(page, host)
    open_panel(page)
    expect(titles(page)).to_have_text(["Mine"])

    # From the host page, with demo-001's token, at demo-002's item.
    answer = page.evaluate("""async ([base, id]) => {
        const token = document.getElementById('inbox').getAttribute('token');
        const r = await fetch(`${base}/inbox/v1/notifications/${id}/read`,
                              {method: 'POST', headers: {Authorization: `Bearer ${token}`}});
        return [r.status, (await r.json()).error.code];
    }""", [herald, theirs.id])
    assert answer == [404, "not_found"]
    assert read_at(theirs.id) is None

    # demo-001's token edited to name demo-002 (the signature no longer matches): refused.
    token = page.locator("herald-inbox").get_attribute("token")
    payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["u"] = OTHER
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode().rstrip("=")
    host.mint = lambda user: f"{forged}.{signature}"  # and the host has nothing better
    page.locator("herald-inbox").evaluate("(el, token) => el.setAttribute('token', token)", f"{forged}.{signature}")
    expect(notice(page)).to_contain_text("Your session expired")
    expect(titles(page)).to_have_count(0)
    expect(panel(page)).not_to_contain_text("Theirs")
    assert read_at(theirs.id) is None
    assert_no_csp_violations(page)


def test_a_host_origin_that_is_not_allowed_is_refused_by_cors(page, make_host, herald):
    add_item(USER, "Not for strangers")
    make_host()  # an allowed one exists: the list is not empty
    stranger = make_host(allowed=False)
    open_host(page, stranger)
    expect(notice(page)).to_contain_text("Notifications are unavailable here")
    expect(notice(page)).to_contain_text(stranger.url)
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, unavailable")
    expect(badge(page)).to_be_hidden()
    open_panel(page)
    expect(titles(page)).to_have_count(0)
    shoot(page, "refused")
    # The browser itself refuses the answer: no CORS headers for this origin.
    refused = page.evaluate("""async (base) => {
        const token = document.getElementById('inbox').getAttribute('token');
        try {
            await fetch(`${base}/inbox/v1/unread-count`, {headers: {Authorization: `Bearer ${token}`}});
            return 'read';
        } catch (e) { return e.name; }
    }""", herald)
    assert refused == "TypeError"
    assert_no_csp_violations(page)


def test_the_widget_goes_offline_and_resumes_without_gaps_or_duplicates(page, host, herald_server):
    add_item(USER, "Before the outage")
    open_host(page, host)
    open_panel(page)
    expect(titles(page)).to_have_text(["Before the outage"])

    herald_server.stop()
    expect(notice(page)).to_contain_text("Offline — reconnecting…", timeout=15_000)
    expect(bell(page)).to_have_attribute("aria-label", "Notifications, no unread, offline")
    shoot(page, "offline")
    send_campaign("During the outage", [USER], "Sent while you were offline")
    send_campaign("Still down", [USER], "Also sent while you were offline")

    herald_server.start()  # same port: the widget's next try finds it and resumes from the newest id it holds
    expect(titles(page)).to_have_text(["Also sent while you were offline", "Sent while you were offline",
                                       "Before the outage"], timeout=40_000)
    expect(notice(page)).to_be_hidden()
    expect(bell(page)).not_to_have_attribute("aria-label", re.compile("offline"))
    send_campaign("Back", [USER], "Live again")
    expect(titles(page)).to_have_text(["Live again", "Also sent while you were offline", "Sent while you were offline",
                                       "Before the outage"], timeout=5000)
    page.wait_for_timeout(1500)  # a late duplicate would show by now
    expect(titles(page)).to_have_count(4)
    assert_no_csp_violations(page)


def test_an_item_arriving_in_a_background_tab_is_read_only_once_the_tab_is_seen(page, host):
    open_host(page, host)
    open_panel(page)
    page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                  "document.dispatchEvent(new Event('visibilitychange'))")
    campaign_id = send_campaign("While away", [USER], "Arrived while you were away")
    expect(titles(page)).to_have_text(["Arrived while you were away"])
    expect(badge(page)).to_have_text("1")
    page.wait_for_timeout(1000)
    note = feed_row(campaign_id, USER)
    assert note.read_at is None  # in the open panel, but nobody was looking

    page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
                  "document.dispatchEvent(new Event('visibilitychange'))")
    wait_for(lambda: read_at(note.id) is not None, 5, "the item to be read once the tab is seen")
    expect(badge(page)).to_be_hidden()
    assert read_count(campaign_id) == 1


@pytest.mark.parametrize("width", (1280, 390))
def test_axe_finds_no_serious_violation_in_the_widget(browser, host, width):
    add_item(USER, "Your Q3 report is ready", minutes_ago=90, image_url=f"{host.url}/banner.svg",
             action_url=f"{host.url}/reports")
    add_item(USER, "Maria commented on “Launch plan”", minutes_ago=2)
    # axe goes in as a script tag, which the host's CSP (rightly) refuses: this context ignores it.
    context = browser.new_context(viewport={"width": width, "height": 844}, bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(f"{host.url}/?user={USER}")
        expect(badge(page)).to_have_text("2")
        assert _axe(page) == []
        open_panel(page)
        expect(titles(page)).to_have_count(2)
        assert _axe(page) == []
        host.mint = lambda user: "not-a-token"
        page.locator("herald-inbox").evaluate("(el) => el.setAttribute('token', 'not-a-token')")
        expect(notice(page)).to_contain_text("Your session expired")
        assert _axe(page) == []
    finally:
        context.close()
