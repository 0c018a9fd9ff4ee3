"""One way to show time: dashboard/web/timefmt.py, the viewer's zone preference, the schedule
form (picked zone kept, typed offsets honoured or refused) and every page using the helper."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import g

from dashboard.extensions import db
from dashboard.models import Account, AuditEvent, Campaign
from dashboard.services import campaigns, lifecycle, notifications, recipients
from dashboard.services.actor import Actor
from dashboard.web import timefmt
from tests.conftest import csrf_from
from tests.engine import drain
from tests.test_api_campaigns import make_template

ACTOR = Actor.system("test")
NY = ZoneInfo("America/New_York")


def test_relative_time_reads_naturally():
    now = datetime(2026, 11, 27, 0, 52, tzinfo=UTC)
    cases = {timedelta(minutes=2, seconds=5): "in 2 min", -timedelta(hours=3, minutes=10): "3 h ago",
             timedelta(seconds=20): "in under a minute", -timedelta(seconds=5): "just now",
             timedelta(minutes=95): "in 95 min", timedelta(hours=47): "in 47 h", timedelta(days=3): "in 3 days",
             -timedelta(days=90): "3 mo ago", timedelta(days=800): "in 2 yr"}
    for delta, text in cases.items():
        assert timefmt.relative(now + delta, now) == text


def test_zone_list_is_canonical_with_offsets():
    zones = timefmt.canonical_zones()
    assert 350 <= len(zones) <= 450
    for name in ("America/New_York", "Asia/Kolkata", "Asia/Tokyo", "Europe/Oslo", "Europe/Kyiv", "UTC"):
        assert name in zones
    for alias in ("US/Eastern", "Asia/Calcutta", "Europe/Kiev", "Etc/GMT+5", "EST5EDT"):
        assert alias not in zones
    assert timefmt.canonical("Asia/Calcutta") == "Asia/Kolkata"  # what some browsers still report
    assert timefmt.canonical("US/Eastern") == "America/New_York"
    assert timefmt.canonical("Etc/UTC") == "UTC"
    assert timefmt.canonical("Mars/Olympus") is None
    choices = dict(timefmt.zone_choices(datetime(2026, 11, 27, tzinfo=UTC)))
    assert choices["Asia/Tokyo"] == "(UTC+09:00) Asia/Tokyo"
    assert choices["America/New_York"] == "(UTC-05:00) America/New York"
    assert choices["Asia/Kolkata"] == "(UTC+05:30) Asia/Kolkata"
    order = list(choices)
    assert order.index("America/New_York") < order.index("UTC") < order.index("Asia/Tokyo")


def test_when_shows_the_picked_zone_the_viewers_and_utc_on_hover(app):
    moment = datetime(2026, 11, 27, 0, 54, tzinfo=UTC)
    now = moment - timedelta(minutes=2)
    with app.test_request_context():
        g.viewer_zone = "Europe/Oslo"
        p = timefmt.parts(moment, "America/New_York", now)
        assert (p["main"], p["relative"], p["yours"]) == ("Thu 26 Nov 19:54 New York", "in 2 min",
                                                          "Fri 01:54 your time")
        g.viewer_zone = "America/Toronto"  # same offset as New York: no second clock
        assert timefmt.parts(moment, "America/New_York", now)["yours"] == ""
        g.viewer_zone = "Asia/Tokyo"
        html = str(timefmt.when(datetime.now(UTC) - timedelta(hours=3, minutes=1)))
        assert re.search(r'<time class="when" datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" title="[^"]+ UTC" data-when>'
                         r'\w{3} \d+ \w{3} \d\d:\d\d Tokyo · <span data-rel>3 h ago</span></time>', html), html
        assert str(timefmt.when(None, default="never")) == "never"
        assert timefmt.parts(moment, "-05:00", now)["main"] == "Thu 26 Nov 19:54 UTC-05:00"  # an API caller's offset


def _client_as(client, logged_in, zone=None):
    account = logged_in("marketer")
    if zone:
        db.session.execute(db.update(Account).where(Account.id == account.id).values(timezone=zone))
        db.session.commit()
    return account, csrf_from(client.get("/").get_data(as_text=True))


def test_browser_zone_is_remembered_once_and_the_choice_wins(client, logged_in):
    account, token = _client_as(client, logged_in)
    home = client.get("/").get_data(as_text=True)
    assert 'data-zone=""' in home and "Times in: UTC" in home
    answer = client.post("/account/timezone", data={"timezone": "Asia/Calcutta", "auto": "1", "csrf_token": token})
    assert answer.get_json() == {"timezone": "Asia/Kolkata", "changed": True}
    answer = client.post("/account/timezone", data={"timezone": "Europe/Oslo", "auto": "1", "csrf_token": token})
    assert answer.get_json()["changed"] is False  # the browser's guess never overrides a set zone
    db.session.expire_all()
    assert db.session.get(Account, account.id).timezone == "Asia/Kolkata"
    page = client.post("/account/timezone", data={"timezone": "Europe/Oslo", "csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "Times are now shown in Europe/Oslo." in page and "Times in: Oslo" in page
    db.session.expire_all()
    assert db.session.get(Account, account.id).timezone == "Europe/Oslo"
    page = client.post("/account/timezone", data={"timezone": "US/Nowhere", "csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "is not a time zone in the list" in page
    assert client.post("/account/timezone", data={"timezone": "x", "auto": "1", "csrf_token": token}).status_code == 400
    assert client.post("/account/timezone", data={"timezone": "UTC"}).status_code == 400  # CSRF


def _draft():
    make_template()
    campaign = campaigns.create({"name": "Spring", "templateId": "promo", "variables": {"offer": "10%"}}, ACTOR)
    recipients.add_manual(campaign.id, ["u1", "u2"], {}, ACTOR)
    return campaign


def _schedule(client, token, campaign_id, local, zone):
    return client.post(f"/campaigns/{campaign_id}/send", data={"intent": "schedule", "scheduled_local": local,
                                                               "timezone": zone, "csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)


def test_schedule_in_new_york_reads_right_in_tokyo(client, logged_in):
    _, token = _client_as(client, logged_in, "Asia/Tokyo")
    campaign = _draft()
    local = (datetime.now(NY) + timedelta(days=3)).replace(hour=19, minute=54, second=0, microsecond=0)
    page = _schedule(client, token, campaign.id, local.strftime("%Y-%m-%dT%H:%M"), "America/New_York")
    tokyo = local.astimezone(ZoneInfo("Asia/Tokyo"))
    expected = f"{local:%a} {local.day} {local:%b} 19:54 New York · in "
    assert f"Scheduled for {expected}" in page
    assert f"{tokyo:%a} {tokyo:%H:%M} your time" in page
    status = re.search(r'data-testid="schedule-when">(.*?)</time></span>', page, re.S).group(1)
    assert "19:54 New York" in status and f"{tokyo:%H:%M} your time" in status
    assert f'title="{local.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"' in page
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).scheduled_at == local.astimezone(UTC)
    details = db.session.scalars(db.select(AuditEvent.details).where(AuditEvent.action == "campaign.schedule")).one()
    assert details["timezone"] == "America/New_York"


def test_typed_offset_is_honoured_or_refused(client, logged_in):
    _, token = _client_as(client, logged_in, "Asia/Tokyo")
    campaign = _draft()
    day = (datetime.now(NY) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    offset = day.strftime("%z")
    typed = f"{day:%Y-%m-%dT%H:%M}{offset[:3]}:{offset[3:]}"
    page = _schedule(client, token, campaign.id, typed.replace("-05:00", "+01:00").replace("-04:00", "+01:00"),
                     "America/New_York")
    assert "The time typed ends in UTC+01:00, but America/New_York is UTC-0" in page
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).status == "draft"
    page = _schedule(client, token, campaign.id, typed, "America/New_York")
    assert "Scheduled for" in page and "09:00 New York" in page
    db.session.expire_all()
    assert db.session.get(Campaign, campaign.id).scheduled_at == day.astimezone(UTC)


def test_a_time_the_clocks_skip_is_refused(client, logged_in):
    _, token = _client_as(client, logged_in)
    campaign = _draft()
    gap = next(d for d in (datetime.now(UTC) + timedelta(days=n) for n in range(1, 366))
               if d.month == 3 and d.weekday() == 6 and 8 <= d.day <= 14)  # US spring-forward Sunday
    page = _schedule(client, token, campaign.id, f"{gap:%Y-%m-%d}T02:30", "America/New_York")
    assert "does not exist in America/New_York" in page


def test_every_page_uses_the_one_format(client, logged_in):
    _, token = _client_as(client, logged_in, "Asia/Tokyo")
    campaign = _draft()
    lifecycle.send(campaign.id, None, ACTOR)
    notifications.send({"templateId": "promo", "targets": ["u1"], "variables": {"offer": "1"}, "channel": "in_app"},
                       ACTOR)
    drain()
    pattern = re.compile(r'<time class="when" datetime="[^"]+Z" title="[^"]+ UTC" data-when>[^<]+ Tokyo · ')
    for url in ("/", "/campaigns", f"/campaigns/{campaign.id}", f"/campaigns/{campaign.id}/_recipients",
                "/templates", "/templates/promo", "/audit", "/support?userId=u1", "/users/u1", "/notifications",
                "/account/preferences"):
        body = client.get(url).get_data(as_text=True)
        if url != "/account/preferences":
            assert pattern.search(body), url
        shown = re.sub(r'(title|datetime)="[^"]*"', "", body)  # the exact UTC belongs in the title only
        assert not re.search(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d", shown), url


def test_templates_have_no_ad_hoc_date_formats():
    root = Path(__file__).resolve().parent.parent / "templates"
    for path in root.rglob("*.html"):
        text = path.read_text()
        for pattern in ("strftime", "isoformat", "data-local"):
            assert pattern not in text, (path, pattern)
